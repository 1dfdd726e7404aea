"""The Redis scripts are ``.lua`` files shipped as package data: each one in the tree is listed
by ``pyproject.toml``'s ``[tool.setuptools.package-data]`` (else an installed package, such as
the Docker image's, would lack it) and is the source of a script constant."""

from __future__ import annotations

import tomllib
from pathlib import Path

from api.auth import rate_limits
from api.hub import leases
from progress import redis_store, workflow
from workers import outages

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = {
    redis_store.APPEND_LUA,
    redis_store.STATE_LUA,
    workflow.WORKFLOW_LUA,
    leases.ACQUIRE_LUA,
    leases.REFRESH_LUA,
    leases.RELEASE_LUA,
    leases.HEARTBEAT_LUA,
    rate_limits.BUCKET_LUA,
    rate_limits.STRIKE_LUA,
    outages.OUTAGE_LUA,
}


def _lua_files() -> list[Path]:
    return sorted(p for top in ("progress", "api", "workers") for p in (ROOT / top).rglob("*.lua"))


def test_every_script_file_is_package_data() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    package_data = config["tool"]["setuptools"]["package-data"]
    shipped = {
        path
        for package, patterns in package_data.items()
        for pattern in patterns
        for path in (ROOT / package.replace(".", "/")).glob(pattern)
    }
    assert _lua_files() and set(_lua_files()) <= shipped


def test_every_script_file_is_a_loaded_script() -> None:
    assert {path.read_text(encoding="utf-8") for path in _lua_files()} == SCRIPTS
