"""Issue 17 (4): platform JWTs from an identity provider (RS256 and ES256, keys published as a
JWKS that rotates), against a real uvicorn API and a real local JWKS server."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from progress.redis_server import RedisServer, free_port
from tests.servers import ApiServer
from tests.sse_client import SseClient
from workers.migrate import upgrade

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

ISSUER = "https://login.example.test/realms/writers"
AUDIENCE = "infinitescribe"

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


class Jwks:
    """A JWKS endpoint on a loopback port: serves the public halves of ``keys`` (kid -> key)
    and counts the requests it answered."""

    def __init__(self) -> None:
        self.keys: dict[str, tuple[str, PrivateKey]] = {}
        #: Keys published without their ``alg`` (as some providers do).
        self.without_alg: set[str] = set()
        #: While True the endpoint answers 503 (the provider is down).
        self.failing = False
        self.requests = 0
        provider = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                provider.requests += 1
                if provider.failing:
                    self.send_error(503)
                    return
                body = json.dumps(provider.document()).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_port}/protocol/openid-connect/certs"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def document(self) -> dict[str, Any]:
        keys = []
        for kid, (alg, private) in list(self.keys.items()):
            public = private.public_key()
            if isinstance(public, rsa.RSAPublicKey):
                entry = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(public))
            else:
                entry = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(public))
            published = {"kid": kid, "use": "sig"} | (
                {} if kid in self.without_alg else {"alg": alg}
            )
            keys.append(entry | published)
        return {"keys": keys}

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def new_key(alg: str) -> PrivateKey:
    if alg == "ES256":
        return ec.generate_private_key(ec.SECP256R1())
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def claims(user: str, ttl: float = 600, roles: tuple[str, ...] = (), **extra: Any) -> dict:
    now = int(time.time())
    return {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": user,
        "iat": now,
        "exp": int(now + ttl),
        "realm_access": {"roles": list(roles)},
        "typ": "Bearer",
    } | extra


def signed(jwks: Jwks, kid: str, body: dict) -> str:
    alg, private = jwks.keys[kid]
    return jwt.encode(body, private, algorithm=alg, headers={"kid": kid})


def hs256_with_public_key(jwks: Jwks, kid: str, body: dict) -> str:
    """The classic confusion attack: HS256 with the provider's public key as the secret."""
    pem = (
        jwks.keys[kid][1]
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )

    def part(value: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    head = f"{part({'alg': 'HS256', 'typ': 'JWT', 'kid': kid})}.{part(body)}"
    signature = hmac.new(pem, head.encode(), hashlib.sha256).digest()
    return f"{head}.{base64.urlsafe_b64encode(signature).rstrip(b'=').decode()}"


def unsigned(body: dict) -> str:
    return jwt.encode(body, None, algorithm="none")


@pytest.fixture
def jwks() -> Iterator[Jwks]:
    provider = Jwks()
    provider.keys = {"rsa-1": ("RS256", new_key("RS256")), "ec-1": ("ES256", new_key("ES256"))}
    yield provider
    provider.close()


def start_api(jwks: Jwks, redis_server: RedisServer, tmp_path: Path, **env: str) -> ApiServer:
    """An API that trusts the provider's keys only, Keycloak-style claims (roles under
    ``realm_access.roles``)."""
    database = f"sqlite:///{tmp_path / 'api.db'}"
    upgrade(database)
    return ApiServer(
        f"{redis_server.url}/0",
        DATABASE_URL=database,
        JWT_SECRET=secrets.token_urlsafe(48),
        SSE_DEV_TOKENS_ENABLED="false",
        SSE_JWKS_URL=jwks.url,
        SSE_JWT_ISSUER=ISSUER,
        SSE_JWT_AUDIENCE=AUDIENCE,
        SSE_JWT_ROLES_CLAIM="realm_access.roles",
        SSE_JWKS_REFRESH_MIN_SECONDS="1",
        SSE_EXPIRY_NOTICE_SECONDS="3",
        # Many addresses in real life; one here: the flood test must reach the key cache,
        # not the per-address ban that would stop a single attacker first.
        SSE_BAN_AFTER_STRIKES="1000",
        # Its own keys: the strikes of these refused tokens stay out of other tests' way.
        PROGRESS_KEY_PREFIX=f"idp{secrets.token_hex(4)}",
        **env,
    ).start()


@pytest.fixture
def api(jwks: Jwks, redis_server: RedisServer, tmp_path: Path) -> Iterator[ApiServer]:
    server = start_api(jwks, redis_server, tmp_path)
    yield server
    server.close()


def sse_token(api: ApiServer, token: str) -> httpx.Response:
    return httpx.post(
        f"{api.url}/api/v1/auth/sse-token",
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )


def whoami(api: ApiServer, token: str) -> httpx.Response:
    """GET /auth/me: a token check with no issuance budget to run out of."""
    return httpx.get(
        f"{api.url}/api/v1/auth/me", headers={"Authorization": f"Bearer {token}"}, timeout=10
    )


def open_stream(api: ApiServer, token: str) -> SseClient:
    issued = sse_token(api, token)
    assert issued.status_code == 200, issued.text
    client = SseClient(f"{api.url}/api/v1/events/stream?sse_token={issued.json()['sse_token']}")
    client.wait_for(lambda events: any(e.event == "connection.established" for e in events))
    return client


def test_rs256_and_es256_tokens_of_the_provider_open_streams_with_their_roles(
    api: ApiServer, jwks: Jwks
) -> None:
    user = f"kc-{uuid.uuid4().hex[:8]}"
    for kid in ("rsa-1", "ec-1"):
        stream = open_stream(api, signed(jwks, kid, claims(user)))
        stream.close()

    admin = signed(jwks, "rsa-1", claims("ops", roles=("admin",)))
    writer = signed(jwks, "ec-1", claims("ann", roles=("writer",)))
    health = f"{api.url}/api/v1/events/health"
    assert "report" in httpx.get(health, headers={"Authorization": f"Bearer {admin}"}).json()
    me = httpx.get(f"{api.url}/api/v1/auth/me", headers={"Authorization": f"Bearer {admin}"})
    assert (me.json()["user_id"], me.json()["roles"]) == ("ops", ["admin"])
    refused = httpx.get(health, headers={"Authorization": f"Bearer {writer}"})
    assert refused.status_code == 403, refused.text
    assert jwks.requests == 1, "the keys are fetched once, then cached"


def test_forged_or_foreign_tokens_are_refused_with_what_is_wrong(
    api: ApiServer, jwks: Jwks
) -> None:
    jwks.keys["rsa-bare"] = ("RS256", new_key("RS256"))
    jwks.without_alg.add("rsa-bare")
    body = claims("ann")
    other_provider = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    cases = {
        "alg none": (unsigned(body), "token_invalid", "algorithm 'none' is not accepted"),
        "HS256 with the public key": (
            hs256_with_public_key(jwks, "rsa-1", body),
            "token_invalid",
            "algorithm 'HS256' is not accepted",
        ),
        "wrong issuer": (
            signed(jwks, "rsa-1", body | {"iss": "https://evil.example.test"}),
            "token_invalid",
            "Invalid issuer",
        ),
        "wrong audience": (
            signed(jwks, "rsa-1", body | {"aud": "another-app"}),
            "token_invalid",
            "Audience doesn't match",
        ),
        "another provider's key, same kid": (
            jwt.encode(body, other_provider, algorithm="RS256", headers={"kid": "rsa-1"}),
            "token_invalid_signature",
            "signature is wrong",
        ),
        "unknown kid": (
            jwt.encode(body, other_provider, algorithm="RS256", headers={"kid": "nope"}),
            "token_unknown_key",
            "no signing key 'nope'",
        ),
        "ES256 header on an RSA key published without alg": (
            jwt.encode(body, jwks.keys["ec-1"][1], algorithm="ES256", headers={"kid": "rsa-bare"}),
            "token_invalid",
            "does not match the key's algorithm",
        ),
        "ES256 header on the RSA key": (
            jwt.encode(body, jwks.keys["ec-1"][1], algorithm="ES256", headers={"kid": "rsa-1"}),
            "token_invalid",
            "signs RS256, not ES256",
        ),
    }
    for name, (token, code, message) in cases.items():
        answer = sse_token(api, token)
        assert answer.status_code == 401, (name, answer.text)
        error = answer.json()["error"]
        assert error["code"] == code and message in error["message"], (name, error)


def test_a_flood_of_unknown_kids_costs_the_provider_one_request_per_refresh_window(
    api: ApiServer, jwks: Jwks
) -> None:
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    started = time.monotonic()
    for n in range(30):
        token = jwt.encode(claims("ann"), other, algorithm="RS256", headers={"kid": f"k{n}"})
        assert sse_token(api, token).json()["error"]["code"] == "token_unknown_key"
    windows = int(time.monotonic() - started) + 1  # SSE_JWKS_REFRESH_MIN_SECONDS=1
    assert jwks.requests <= 1 + windows, (jwks.requests, windows)


def test_rotated_keys_new_tokens_work_and_streams_of_the_old_key_end_with_auth_expiring(
    api: ApiServer, jwks: Jwks
) -> None:
    user = f"kc-{uuid.uuid4().hex[:8]}"
    old_token = signed(jwks, "rsa-1", claims(user, ttl=8))
    old_stream = open_stream(api, old_token)
    time.sleep(1.1)  # past SSE_JWKS_REFRESH_MIN_SECONDS: the next unknown kid may refetch
    jwks.keys = {"rsa-2": ("RS256", new_key("RS256"))}  # the provider rotated

    try:
        new_stream = open_stream(api, signed(jwks, "rsa-2", claims(user)))
        new_stream.close()
        assert jwks.requests == 2, "the unknown kid made the API fetch the keys again"
        refused = sse_token(api, old_token)
        assert refused.status_code == 401
        assert refused.json()["error"]["code"] == "token_unknown_key"

        events = old_stream.wait_for(
            lambda got: any(e.event == "auth.expiring" for e in got), timeout=15
        )
        assert old_stream.ended.wait(5), "the old key's stream went on after auth.expiring"
        assert [e.event for e in events][0] == "connection.established"
    finally:
        old_stream.close()


def test_while_the_provider_is_down_tokens_get_503_at_once_then_old_keys_keep_working(
    jwks: Jwks, redis_server: RedisServer, tmp_path: Path
) -> None:
    jwks.failing = True
    api = start_api(jwks, redis_server, tmp_path, SSE_JWKS_MAX_AGE_SECONDS="1")
    try:
        token = signed(jwks, "rsa-1", claims("ann"))
        started = time.monotonic()
        answers = [whoami(api, token) for _ in range(20)]
        elapsed = time.monotonic() - started
        assert {a.status_code for a in answers} == {503}
        assert answers[0].json()["error"]["code"] == "identity_provider_unavailable"
        assert answers[0].headers["Retry-After"]
        assert jwks.requests <= 2 + int(elapsed), "the API hammered a provider that is down"

        jwks.failing = False
        deadline = time.monotonic() + 10
        while whoami(api, token).status_code != 200:
            assert time.monotonic() < deadline, (
                "the keys were never read after the provider came back"
            )
            time.sleep(0.2)

        jwks.failing = True  # down again, the cached keys past their max age
        time.sleep(1.1)
        before = jwks.requests
        started = time.monotonic()
        for _ in range(20):
            assert whoami(api, token).status_code == 200, "cached keys stopped working"
        elapsed = time.monotonic() - started
        assert jwks.requests - before <= 1 + int(elapsed), "stale keys refetched per request"
    finally:
        api.close()
