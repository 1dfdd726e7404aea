"""docker-compose.yml is valid and every service of it is health-checked.

Validated with Debian's ``docker-compose`` (v1.29): ``config`` needs no Docker engine.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from cryptography.fernet import Fernet

from api.settings import is_public_secret
from progress.redis_server import RedisServer
from tests.servers import ApiServer
from workers.migrate import upgrade

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = "docker-compose.yml"
LONG_RUNNING = {
    "redis",
    "postgres",
    "api",
    "nginx",
    "worker",
    "beat",
    "flower",
    "prometheus",
    "alertmanager",
}
DEPLOY = ROOT / "deploy"
#: What an operator must set (docs/security.md); compose has no public default for them.
REQUIRED = {
    "JWT_SECRET": "an-operator-chosen-secret-0123456789abcdef",
    "AUDIT_ENCRYPTION_KEYS": "bm90LWEtcmVhbC1rZXktYnV0LTMyLWJ5dGVzLWxvbmc=",
    "POSTGRES_PASSWORD": "an-operator-chosen-postgres-password",
    "FLOWER_BASIC_AUTH": "admin:an-operator-chosen-flower-password",
    "METRICS_TOKEN": "an-operator-chosen-metrics-token-0123456789",
}
#: Not a secret, but required too: where Alertmanager sends alerts (docs/operations.md).
RECEIVER = {"ALERT_WEBHOOK_URL": "http://alerts.example.test/hook?team=realtime&x=1"}


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
    docker_compose: str,
    *args: str,
    env: dict[str, str] | None = None,
    files: tuple[str, ...] = (COMPOSE_FILE,),
    env_file: Path | None = None,
) -> subprocess.CompletedProcess[str]:
    """``docker-compose [--env-file F] -f FILE... ARGS`` with ``env`` (the required values by
    default) in place of any the caller's shell has."""
    env = {**REQUIRED, **RECEIVER} if env is None else env
    unset = {name: value for name, value in os.environ.items() if name not in REQUIRED | RECEIVER}
    options = ["--env-file", str(env_file)] if env_file is not None else []
    options += [arg for name in files for arg in ("-f", name)]
    return subprocess.run(
        [docker_compose, *options, *args],
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


@pytest.mark.parametrize("missing", sorted(REQUIRED | RECEIVER))
def test_config_refuses_to_run_without_each_secret(docker_compose: str, missing: str) -> None:
    given = {name: value for name, value in (REQUIRED | RECEIVER).items() if name != missing}
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


def generate_env(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "scripts.compose_env", "--output", str(path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def resolved_api_env(docker_compose: str, env_file: Path, *files: str) -> dict[str, str]:
    """The API's environment as compose resolves it from ``env_file`` and ``files``."""
    result = run_compose(docker_compose, "config", env=RECEIVER, files=files, env_file=env_file)
    assert result.returncode == 0, result.stderr
    return {
        k: str(v)
        for k, v in yaml.safe_load(result.stdout)["services"]["api"]["environment"].items()
    }


def test_the_generated_env_file_holds_fresh_secrets_and_never_replaces_them(
    tmp_path: Path,
) -> None:
    env_file = tmp_path / ".env"
    assert generate_env(env_file).returncode == 0
    written = env_file.read_text()
    values = dict(line.split("=", 1) for line in written.splitlines() if "=" in line)
    assert set(values) == set(REQUIRED)
    assert not is_public_secret(values["JWT_SECRET"]) and len(values["JWT_SECRET"]) >= 32
    Fernet(values["AUDIT_ENCRYPTION_KEYS"].encode())  # a valid key, or this raises
    assert env_file.stat().st_mode & 0o077 == 0, "the secrets file is readable by others"

    again = generate_env(env_file)
    assert again.returncode == 1 and "kept" in again.stderr
    assert env_file.read_text() == written


def test_the_dev_override_turns_dev_tokens_on_and_the_default_stack_keeps_them_off(
    docker_compose: str, tmp_path: Path, redis_server: RedisServer
) -> None:
    env_file = tmp_path / ".env"
    assert generate_env(env_file).returncode == 0
    dev = resolved_api_env(docker_compose, env_file, COMPOSE_FILE, "docker-compose.dev.yml")
    production = resolved_api_env(docker_compose, env_file, COMPOSE_FILE)
    assert dev["SSE_DEV_TOKENS_ENABLED"] == "true"
    assert production["SSE_DEV_TOKENS_ENABLED"] == "false"

    # The API itself, with what compose gives it (its own Redis and database here).
    for name, env in (("dev", dev), ("production", production)):
        given = {
            k: env[k] for k in ("JWT_SECRET", "AUDIT_ENCRYPTION_KEYS", "SSE_DEV_TOKENS_ENABLED")
        }
        database = f"sqlite:///{tmp_path / name}.db"
        upgrade(database)
        with ApiServer(
            f"{redis_server.url}/0",
            DATABASE_URL=database,
            AUDIT_ALLOW_DEV_KEY="false",
            # Its own keys: strikes other tests left for 127.0.0.1 must not refuse it.
            PROGRESS_KEY_PREFIX=f"compose{name}{os.getpid()}",
            **given,
        ) as api:
            minted = httpx.post(
                f"{api.url}/api/v1/auth/dev-token", json={"user_id": "ada"}, timeout=5
            )
            if name == "dev":
                assert minted.status_code == 200, minted.text
                assert "SSE_DEV_TOKENS_ENABLED=true" in api.log_text
                bearer = {"Authorization": f"Bearer {minted.json()['access_token']}"}
                issued = httpx.post(f"{api.url}/api/v1/auth/sse-token", headers=bearer, timeout=5)
                assert issued.status_code == 200, issued.text
            else:
                assert minted.status_code == 404
                assert minted.json()["error"]["message"] == "development tokens are disabled"
                assert "SSE_DEV_TOKENS_ENABLED=true" not in api.log_text


def test_prometheus_scrapes_what_compose_runs_and_alerts_go_to_the_webhook(
    services: dict[str, dict[str, Any]],
) -> None:
    config = yaml.safe_load((DEPLOY / "prometheus/prometheus.yml").read_text())
    scraped = {
        job["job_name"]: {
            (name, sd["port"]) for sd in job.get("dns_sd_configs", []) for name in sd["names"]
        }
        | {
            tuple(target.rsplit(":", 1))
            for static in job.get("static_configs", [])
            for target in static["targets"]
        }
        for job in config["scrape_configs"]
    }
    concurrency = int(services["worker"]["command"][-1].split("=")[1])
    base = int(services["worker"]["environment"]["WORKER_METRICS_PORT"])
    # the main process and each prefork child, no more, no fewer
    assert scraped["workers"] == {("worker", base + n) for n in range(concurrency + 1)}
    assert scraped["sse-api"] == {("api", 8000)}
    assert scraped["alertmanager"] == {("alertmanager", "9093")}
    assert scraped["prometheus"] == {("localhost", "9090")}
    assert config["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"] == [
        "alertmanager:9093"
    ]
    # the token file the sse-api job reads is the one the service writes, with the API's token
    token_file = config["scrape_configs"][0]["authorization"]["credentials_file"]
    prometheus = services["prometheus"]
    assert token_file in prometheus["command"][0]
    assert prometheus["environment"]["METRICS_TOKEN"] == REQUIRED["METRICS_TOKEN"]
    assert services["api"]["environment"]["METRICS_TOKEN"] == REQUIRED["METRICS_TOKEN"]
    mounts = {
        str(v["source"] if isinstance(v, dict) else v).split(":")[0] for v in prometheus["volumes"]
    }
    assert {
        str(DEPLOY / "prometheus/prometheus.yml"),
        str(DEPLOY / "prometheus/alerts.yml"),
    } <= mounts

    alertmanager = services["alertmanager"]
    assert alertmanager["environment"]["ALERT_WEBHOOK_URL"] == RECEIVER["ALERT_WEBHOOK_URL"]
    shipped = (DEPLOY / "alertmanager/alertmanager.yml").read_text()
    placeholder = "http://alert-webhook-url.invalid/"
    assert shipped.count(placeholder) == 1 and placeholder in alertmanager["command"][0]


def test_the_alertmanager_command_writes_the_webhook_url_into_its_config(
    services: dict[str, dict[str, Any]], tmp_path: Path
) -> None:
    """The service's own shell command (paths moved to tmp_path, ``exec`` left out) with a URL
    holding the characters sed or awk's gsub would mangle."""
    command = services["alertmanager"]["command"][0].replace("$$", "$")
    command = command.split(" && exec ")[0]
    command = command.replace("> /alertmanager/", f"> {tmp_path}/")
    command = command.replace("/etc/alertmanager/", f"{DEPLOY}/alertmanager/")
    url = "http://hooks.example.test/a?b=1&c=2|3"
    subprocess.run(["sh", "-c", command], env={"ALERT_WEBHOOK_URL": url}, check=True, timeout=10)
    written = yaml.safe_load((tmp_path / "alertmanager.yml").read_text())
    assert written["receivers"][0]["webhook_configs"][0]["url"] == url


def test_the_api_links_to_flower_and_flower_asks_for_credentials(
    services: dict[str, dict[str, Any]],
) -> None:
    assert services["api"]["environment"]["FLOWER_URL"].startswith("http")
    assert services["flower"]["environment"]["FLOWER_BASIC_AUTH"] == REQUIRED["FLOWER_BASIC_AUTH"]
    assert "FLOWER_UNAUTHENTICATED_API" not in services["flower"]["environment"]
