"""Issue 15 (security 1, 3): no process runs on a secret or key published in this repository
unless it is explicitly a development one, and then it says so at start."""

from __future__ import annotations

import json
import secrets
from pathlib import Path

import httpx
import pytest
from cryptography.fernet import Fernet

from api.auth.tokens import mint_jwt
from progress.audit_log import AuditLog
from progress.redis_server import RedisServer
from progress.sealing import DEV_AUDIT_KEY, Sealer, SealError
from progress.sql import make_engine, make_sessions
from tests.integration.conftest import MakeWorkerStack
from tests.servers import JWT_SECRET, ApiServer
from workers.migrate import upgrade

pytestmark = pytest.mark.integration

PRIVATE_SECRET = secrets.token_urlsafe(32)
#: A production-like server: no dev tokens, no public audit key.
PRODUCTION = {"SSE_DEV_TOKENS_ENABLED": "false", "AUDIT_ALLOW_DEV_KEY": "false"}


def refusal(server: ApiServer) -> str:
    """The log of a server that must refuse to start."""
    with pytest.raises(RuntimeError, match="did not come up"):
        server.start(timeout=30)
    try:
        return server.log_text
    finally:
        server.close()


@pytest.mark.parametrize(
    "secret",
    [
        "dev-only-insecure-jwt-secret-change-me-0123456789",  # compose's former default
        "dev-only-insecure-secret-change-me-0123456789",  # the API's default
        JWT_SECRET,  # the tests'
        "dev-only-" + "x" * 40,
    ],
)
def test_the_api_refuses_a_public_jwt_secret_without_dev_tokens(
    redis_server: RedisServer, secret: str
) -> None:
    keys = Fernet.generate_key().decode()
    server = ApiServer(
        f"{redis_server.url}/0", JWT_SECRET=secret, AUDIT_ENCRYPTION_KEYS=keys, **PRODUCTION
    )
    assert "JWT_SECRET is unset or a secret published in this repository" in refusal(server)


def test_dev_tokens_with_a_public_secret_warn_at_start(redis_server: RedisServer) -> None:
    with ApiServer(f"{redis_server.url}/0") as server:
        lines = [json.loads(line) for line in server.log_text.splitlines() if line[:1] == "{"]
    warnings = [line["message"] for line in lines if line["level"] == "warning"]
    assert any("JWT_SECRET is a secret published in this repository" in w for w in warnings)
    assert any("PUBLIC development key" in w for w in warnings)


def test_the_api_refuses_to_start_without_audit_keys(redis_server: RedisServer) -> None:
    server = ApiServer(f"{redis_server.url}/0", JWT_SECRET=PRIVATE_SECRET, **PRODUCTION)
    assert "AUDIT_ENCRYPTION_KEYS is not set" in refusal(server)


def test_the_worker_refuses_to_start_without_audit_keys(worker_stack: MakeWorkerStack) -> None:
    stack = worker_stack(11, 12)
    with pytest.raises(RuntimeError, match="worker exited") as refused:
        stack.worker(AUDIT_ALLOW_DEV_KEY="false")
    assert "AUDIT_ENCRYPTION_KEYS is not set" in str(refused.value)


def test_a_real_key_seals_what_the_public_key_cannot_open(
    redis_server: RedisServer, tmp_path: Path, user_id: str
) -> None:
    database = f"sqlite:///{tmp_path / 'sealed.db'}"
    upgrade(database)
    key = Fernet.generate_key().decode()
    env = {"DATABASE_URL": database, "AUDIT_ENCRYPTION_KEYS": key, "WORKER_BROKER_DB": "13"}
    with ApiServer(
        f"{redis_server.url}/0", JWT_SECRET=PRIVATE_SECRET, **PRODUCTION, **env
    ) as server:
        assert "PUBLIC development key" not in server.log_text
        bearer = {"Authorization": f"Bearer {mint_jwt(PRIVATE_SECRET, user_id)}"}
        novel = {"title": "Sealed", "premise": "a secret premise", "chapter_count": 1}
        response = httpx.post(f"{server.url}/api/v1/novels", json=novel, headers=bearer, timeout=10)
        assert response.status_code == 202, response.text
    engine = make_engine(database)
    try:
        with pytest.raises(SealError):
            AuditLog(make_sessions(engine), Sealer([DEV_AUDIT_KEY])).recent(user_id=user_id)
        opened = AuditLog(make_sessions(engine), Sealer([key])).recent(user_id=user_id)
        assert [record.event.premise for record in opened] == ["a secret premise"]  # type: ignore[attr-defined]
    finally:
        engine.dispose()
