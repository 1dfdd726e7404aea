"""The Redis scripts are ``.lua`` files shipped as package data: each one in the tree is listed
by ``pyproject.toml``'s ``[tool.setuptools.package-data]`` (else an installed package, such as
the Docker image's, would lack it) and is the source of a script constant, or a part of some
(the functions several scripts share, ``*_lib.lua``, joined ahead of them)."""

from __future__ import annotations

import tomllib
from pathlib import Path

from api.auth import rate_limits
from api.hub import leases
from api.stream import admission
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
    admission.OPEN_LUA,
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


def _made_of(script: str, parts: set[str]) -> bool:
    """True when ``script`` is ``parts`` (each any number of times) put end to end."""
    return not script or any(
        part and script.startswith(part) and _made_of(script[len(part) :], parts) for part in parts
    )


def test_every_script_file_is_a_loaded_script_or_part_of_one() -> None:
    texts = {path.read_text(encoding="utf-8") for path in _lua_files()}
    assert all(any(text in script for script in SCRIPTS) for text in texts)
    assert all(_made_of(script, texts) for script in SCRIPTS)
    libraries = {p.read_text(encoding="utf-8") for p in _lua_files() if p.stem.endswith("_lib")}
    assert libraries and not libraries & SCRIPTS
