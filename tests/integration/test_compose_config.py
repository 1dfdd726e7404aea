"""docker-compose.yml is valid and every service of it is health-checked.

Validated with Debian's ``docker-compose`` (v1.29): ``config`` needs no Docker engine.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = "docker-compose.yml"
LONG_RUNNING = {"redis", "postgres", "api", "nginx", "worker", "beat", "flower"}
#: What an operator must set (docs/security.md); compose has no public default for them.
REQUIRED = {
    "JWT_SECRET": "an-operator-chosen-secret-0123456789abcdef",
    "AUDIT_ENCRYPTION_KEYS": "bm90LWEtcmVhbC1rZXktYnV0LTMyLWJ5dGVzLWxvbmc=",
    "POSTGRES_PASSWORD": "an-operator-chosen-postgres-password",
    "FLOWER_BASIC_AUTH": "admin:an-operator-chosen-flower-password",
}


@pytest.fixture(scope="module")
def docker_compose() -> str:
    """The docker-compose binary; its absence is a failure, not a skip."""
    path = shutil.which("docker-compose")
    if path is None:
        pytest.fail(
            "docker-compose is missing: install Debian's docker-compose "
            "(`apt-get install -y docker-compose`; `make system-deps` / "
            "scripts/install-system-deps.sh does it when run as root)",
            pytrace=False,
        )
    return path


def run_compose(
    docker_compose: str, *args: str, env: dict[str, str] = REQUIRED
) -> subprocess.CompletedProcess[str]:
    unset = {name: value for name, value in os.environ.items() if name not in REQUIRED}
    return subprocess.run(
        [docker_compose, "-f", COMPOSE_FILE, *args],
        cwd=ROOT,
        env={**unset, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture(scope="module")
def services(docker_compose: str) -> dict[str, dict[str, Any]]:
    """The services as docker-compose resolves them (anchors merged, variables filled in)."""
    result = run_compose(docker_compose, "config")
    assert result.returncode == 0, result.stderr
    return yaml.safe_load(result.stdout)["services"]


def test_config_is_valid(docker_compose: str) -> None:
    result = run_compose(docker_compose, "config", "-q")
    assert result.returncode == 0, f"docker-compose config -q failed:\n{result.stderr}"


def test_every_service_has_a_healthcheck(services: dict[str, dict[str, Any]]) -> None:
    assert set(services) >= LONG_RUNNING | {"migrate"}
    for name, service in services.items():
        check = service.get("healthcheck")
        assert check, f"service {name} has no healthcheck"
        assert not check.get("disable"), f"service {name} disables its healthcheck"
        assert check.get("test"), f"service {name}'s healthcheck has no test"


def test_restart_policies(services: dict[str, dict[str, Any]]) -> None:
    for name in LONG_RUNNING:
        assert services[name].get("restart") in {"unless-stopped", "always"}, name
    assert services["migrate"].get("restart") == "no"


def test_api_starts_after_redis_and_migrations(services: dict[str, dict[str, Any]]) -> None:
    depends = services["api"]["depends_on"]
    assert depends["redis"]["condition"] == "service_healthy"
    assert depends["migrate"]["condition"] == "service_completed_successfully"
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"


def test_processes_share_the_environment(services: dict[str, dict[str, Any]]) -> None:
    for name in ("migrate", "api", "worker", "beat", "flower"):
        env = services[name]["environment"]
        for variable in ("REDIS_URL", "DATABASE_URL", "JWT_SECRET"):
            assert env.get(variable), f"service {name} lacks {variable}"
        assert len(env["JWT_SECRET"]) >= 32, name


def test_nginx_is_the_only_public_port_and_the_api_trusts_only_it(
    services: dict[str, dict[str, Any]],
) -> None:
    assert "ports" not in services["api"], "the API must be reached through nginx only"
    public = {
        name
        for name, service in services.items()
        for port in service.get("ports", [])
        if (port.get("host_ip") if isinstance(port, dict) else None) not in {"127.0.0.1"}
        and not str(port).startswith("127.0.0.1:")
    }
    assert public == {"nginx"}
    nginx = services["nginx"]
    mounts = {
        str(v.get("source") if isinstance(v, dict) else v).split(":")[0] for v in nginx["volumes"]
    }
    assert str(ROOT / "deploy/nginx/realtime.conf") in mounts
    address = nginx["networks"]["edge"]["ipv4_address"]
    assert services["api"]["environment"]["SSE_TRUSTED_PROXIES"] == f'["{address}"]'
    assert "--limit-concurrency" in services["api"]["command"]


@pytest.mark.parametrize("missing", sorted(REQUIRED))
def test_config_refuses_to_run_without_each_secret(docker_compose: str, missing: str) -> None:
    given = {name: value for name, value in REQUIRED.items() if name != missing}
    result = run_compose(docker_compose, "config", "-q", env=given)
    assert result.returncode != 0
    assert f"set {missing}" in result.stderr


def test_the_secrets_given_are_the_ones_every_process_gets(
    services: dict[str, dict[str, Any]],
) -> None:
    for name in ("migrate", "api", "worker", "beat", "flower"):
        env = services[name]["environment"]
        for variable in ("JWT_SECRET", "AUDIT_ENCRYPTION_KEYS"):
            assert env[variable] == REQUIRED[variable], (name, variable)
        assert REQUIRED["POSTGRES_PASSWORD"] in env["DATABASE_URL"], name
