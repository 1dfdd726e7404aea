"""Settings of the SSE tier, from the environment (``REDIS_URL``, ``JWT_SECRET``, ``SSE_*``)."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Self
from urllib.parse import urlsplit

from pydantic import AliasChoices, Field, field_validator, model_validator
from pydantic_settings import SettingsConfigDict

from progress.store import StoreSettings

#: Only accepted together with SSE_DEV_TOKENS_ENABLED=true: anyone can read it here.
DEV_JWT_SECRET = "dev-only-insecure-secret-change-me-0123456789"

#: Every JWT secret written in this repository (the API's default, compose's former default,
#: the demo's, the tests' and the benchmarks'): anyone can mint an admin token with them.
#: tests/unit/test_public_secrets.py fails when a new one is not listed.
PUBLIC_JWT_SECRETS = frozenset(
    {
        DEV_JWT_SECRET,
        "dev-only-insecure-jwt-secret-change-me-0123456789",
        "demo-only-secret-do-not-use-in-production-0123",
        "test-secret-0123456789abcdef-0123456789",
        "unit-secret-0123456789abcdef0123456789",
        "bench-secret-" + "0123456789abcdef" * 2,
    }
)
#: A secret starting so is a placeholder someone copied from an example.
PUBLIC_SECRET_PREFIXES = ("dev-only", "demo-only")


#: What ``SSE_JWT_ALGORITHMS`` may name: signatures checked with a public key.
ASYMMETRIC_ALGORITHMS = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
)


def is_public_secret(secret: str) -> bool:
    """True for a JWT secret published in this repository (or shaped like its placeholders)."""
    return secret in PUBLIC_JWT_SECRETS or secret.startswith(PUBLIC_SECRET_PREFIXES)


class ApiSettings(StoreSettings):
    """Everything the API needs; build one in code for tests.

    The store's settings (``PROGRESS_KEY_PREFIX``, ``PROGRESS_RETENTION_SECONDS``,
    ``PROGRESS_MAX_STREAM_LENGTH``, ``PROGRESS_STREAMS_PER_CALL``) come from ``StoreSettings``,
    the model the workers' settings extend too: the API's writes follow the same limits."""

    model_config = SettingsConfigDict(env_prefix="SSE_", extra="ignore", populate_by_name=True)

    redis_url: str = Field(
        default="redis://127.0.0.1:6379/0", validation_alias=AliasChoices("REDIS_URL")
    )
    jwt_secret: str = Field(
        default=DEV_JWT_SECRET,
        validation_alias=AliasChoices("JWT_SECRET"),
        min_length=32,
    )
    #: The identity provider's JWKS URL: platform JWTs are then RS256/ES256 tokens verified
    #: with its published keys. Unset: platform JWTs are HS256 with ``JWT_SECRET``.
    jwks_url: str | None = None
    #: Signature algorithms accepted with ``jwks_url`` (asymmetric only).
    jwt_algorithms: list[str] = Field(default_factory=lambda: ["RS256", "ES256"], min_length=1)
    #: Required ``iss`` and ``aud`` of platform JWTs, when set.
    jwt_issuer: str | None = None
    jwt_audience: str | None = None
    #: The claims naming the user and their roles; a dotted path reaches into an object
    #: (Keycloak: ``realm_access.roles``); a claim named with dots is found first (Auth0's
    #: ``https://example.com/roles``).
    jwt_subject_claim: str = Field(default="sub", min_length=1)
    jwt_roles_claim: str = Field(default="roles", min_length=1)
    #: The JWKS is fetched again after this long, or when a token names a key it lacks, but
    #: at most once per ``jwks_refresh_min_seconds`` (a flood of unknown ``kid``s costs the
    #: provider one request).
    jwks_max_age_seconds: float = Field(default=3600.0, gt=0)
    jwks_refresh_min_seconds: float = Field(default=30.0, ge=1)
    instance_id: str = Field(default_factory=lambda: f"api-{secrets.token_hex(4)}")
    #: Seconds an sse_token stays valid.
    token_ttl_seconds: int = Field(default=60, ge=5)
    heartbeat_seconds: float = Field(default=30.0, gt=0)
    #: What the SSE ``retry:`` field tells clients, in milliseconds.
    retry_ms: int = Field(default=3000, ge=100)
    max_connections_per_user: int = Field(default=2, ge=1)
    #: A connection's lease in the registry; refreshed at a third of it.
    lease_seconds: float = Field(default=90.0, ge=1)
    #: This process says it is alive (``rt:instances``) every ``instance_heartbeat_seconds``,
    #: for ``instance_alive_seconds``: that long after a crash its streams stop counting
    #: against their users' limit (plus a heartbeat, for the others to hear of it).
    instance_alive_seconds: float = Field(default=5.0, gt=0)
    instance_heartbeat_seconds: float = Field(default=1.5, gt=0)
    #: A user's channel stays subscribed this long after their last stream here ended, so
    #: quick reconnects (deploys, network blips) skip the UNSUBSCRIBE/SUBSCRIBE round trip.
    subscription_linger_seconds: float = Field(default=10.0, ge=0)
    #: Events waiting for one slow client before its updates are coalesced / it is closed.
    queue_size: int = Field(default=1000, ge=10)
    #: A write to a client that takes longer than this ends its stream (it resumes later).
    send_timeout_seconds: float = Field(default=30.0, gt=0)
    #: Most events replayed on resume before the client is told to reset instead.
    max_replay: int = Field(default=5000, ge=1)
    #: ``auth.expiring`` goes out this long before the JWT behind a stream expires.
    expiry_notice_seconds: float = Field(default=30.0, ge=0)
    #: Objects alive this long are frozen out of garbage collection (see api/ops/gc_tuning.py).
    #: Short: a ramp of 10,000 opens must not reach a full collection (1 s pause) unfrozen.
    gc_freeze_seconds: float = Field(default=5.0, gt=0)
    #: A full collection (one planned pause) this often, to reclaim frozen garbage.
    gc_full_seconds: float = Field(default=900.0, gt=0)
    #: The database holding the audit of important events (replay beyond Redis, admin audit).
    database_url: str = Field(
        default="sqlite:///infinitescribe.db", validation_alias=AliasChoices("DATABASE_URL")
    )
    #: Keys opening the sealed fields of audited events, newest first, comma-separated.
    audit_encryption_keys: str = Field(
        default="", validation_alias=AliasChoices("AUDIT_ENCRYPTION_KEYS")
    )
    #: Development only: seal with the public key when AUDIT_ENCRYPTION_KEYS is unset (the
    #: workers read the same variable); otherwise the API refuses to start without keys.
    audit_allow_dev_key: bool = Field(
        default=False, validation_alias=AliasChoices("AUDIT_ALLOW_DEV_KEY")
    )
    #: Redis connections for commands (the pub/sub link is one more), whatever the streams.
    redis_pool_size: int = Field(default=3, ge=1)
    #: Enables POST /api/v1/auth/dev-token. Never in production.
    dev_tokens_enabled: bool = False
    #: False: every browser polls (GET /api/v1/realtime/config says so; streams are refused).
    enabled: bool = True
    #: A stream open's token, limits and lease in one script on a single Redis
    #: (api/stream/admission.py). False: three round trips, for a Redis-compatible server or
    #: proxy that refuses keys a script does not declare.
    open_script: bool = True
    #: How often a polling browser polls, and while a task it shows is running.
    poll_interval_seconds: float = Field(default=30.0, gt=0)
    active_poll_interval_seconds: float = Field(default=3.0, gt=0)
    #: Flower's address, for the links from each task to its page (None: no links).
    flower_url: str | None = Field(default=None, validation_alias=AliasChoices("FLOWER_URL"))
    #: The built frontend served at ``/``; not served when the directory does not exist.
    frontend_dir: Path = Path(__file__).resolve().parent.parent / "frontend" / "dist"
    #: Streams this process accepts; beyond it new ones get 429 ``instance_full``.
    max_connections_per_instance: int = Field(default=10_000, ge=1)
    #: Larger request bodies get 413 ``body_too_large`` before authentication or parsing
    #: (the largest legitimate body, a notification to 1,000 users, is about 70 KB).
    max_body_bytes: int = Field(default=128 * 1024, ge=1024)
    #: Proxies (addresses or networks) whose X-Forwarded-For names the client.
    trusted_proxies: list[str] = Field(default_factory=list)
    #: Token buckets, per second and burst: per IP and per user, for sse_token and stream.
    rate_token_ip_per_second: float = Field(default=10.0, gt=0)
    rate_token_ip_burst: int = Field(default=50, ge=1)
    rate_token_user_per_second: float = Field(default=1.0, gt=0)
    rate_token_user_burst: int = Field(default=10, ge=1)
    rate_stream_ip_per_second: float = Field(default=10.0, gt=0)
    rate_stream_ip_burst: int = Field(default=50, ge=1)
    rate_stream_user_per_second: float = Field(default=1.0, gt=0)
    rate_stream_user_burst: int = Field(default=10, ge=1)
    #: Every write request (POST/PUT/PATCH/DELETE under /api/v1) of one user: 429 beyond it.
    rate_write_user_per_second: float = Field(default=1.0, gt=0)
    rate_write_user_burst: int = Field(default=20, ge=1)
    #: Chapters a user's unfinished novels may hold at once (queued or being written); a
    #: novel that would pass it gets 429 ``too_many_active_chapters``.
    max_active_chapters_per_user: int = Field(default=60, ge=1)
    #: An IP with this many strikes (auth failures, rate refusals) in the window is banned.
    ban_after_strikes: int = Field(default=20, ge=1)
    ban_strike_window_seconds: float = Field(default=60.0, gt=0)
    ban_seconds: float = Field(default=300.0, gt=0)
    #: Backpressure: saturated when the event loop lags this much or a queue is this deep.
    backpressure_enabled: bool = True
    backpressure_lag_seconds: float = Field(default=0.2, gt=0)
    backpressure_queue_depth: int = Field(default=200, ge=1)
    #: ... or when the hub reads events this old (it reads behind what Redis sent).
    backpressure_fanout_lag_seconds: float = Field(default=0.5, gt=0)
    backpressure_recover_seconds: float = Field(default=3.0, ge=0)
    #: While saturated, progress updates go out at most once per this per stream.
    backpressure_progress_interval_seconds: float = Field(default=2.0, gt=0)
    #: ... doubled every second while the hub still reads behind, up to this.
    backpressure_max_progress_interval_seconds: float = Field(default=8.0, gt=0)
    #: Every this often the API pings Redis (sse_redis_rtt_seconds, sse_redis_up).
    redis_probe_seconds: float = Field(default=5.0, gt=0)
    #: ... and this often while Redis is down: opens and sse_token requests are refused at
    #: once (503) until a PING answers again.
    redis_down_probe_seconds: float = Field(default=0.5, gt=0)
    #: A PING (probe, health) that takes longer counts as Redis down.
    redis_ping_timeout_seconds: float = Field(default=1.0, gt=0)
    #: Connecting to Redis (each attempt of the command pool) gives up after this.
    redis_connect_timeout_seconds: float = Field(default=0.5, gt=0)
    #: Every this often the API runs ``SELECT 1`` on the database (sse_database_up); when it
    #: answers again after an outage, the journal spill is written to the audit table.
    database_probe_seconds: float = Field(default=5.0, gt=0)
    #: Health and the probe call the database down when ``SELECT 1`` takes longer than this;
    #: health waits as long for its write of the journal spill.
    database_ping_timeout_seconds: float = Field(default=1.0, gt=0)
    #: Serve /docs, /redoc and /openapi.json (off: they map the API for anyone who asks).
    docs_enabled: bool = False
    #: FastAPI's own OpenTelemetry spans, metrics and logs per request, for an operator who
    #: configures an OpenTelemetry SDK. Off: its check costs every request (a stream open
    #: included) a provider lookup even with no SDK, and /metrics is this tier's telemetry.
    otel_enabled: bool = False
    #: ``GET /metrics`` needs ``Authorization: Bearer <this>``. Unset: /metrics answers only
    #: loopback clients whose request no proxy relayed (no X-Forwarded-For / Forwarded).
    metrics_token: str | None = Field(
        default=None,
        min_length=16,
        validation_alias=AliasChoices("METRICS_TOKEN", "SSE_METRICS_TOKEN"),
    )
    #: Log lines as JSON objects (one per line) on stderr.
    log_json: bool = True

    @field_validator("metrics_token", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        return None if value == "" else value  # compose passes an unset variable as ""

    @model_validator(mode="after")
    def _no_public_secret_in_production(self) -> Self:
        # With a JWKS the platform's keys check every JWT: the secret signs nothing.
        if (
            self.jwks_url is None
            and is_public_secret(self.jwt_secret)
            and not self.dev_tokens_enabled
        ):
            raise ValueError(
                "JWT_SECRET is unset or a secret published in this repository (anyone could "
                "mint an admin token): set it to 32+ random characters, or set "
                "SSE_DEV_TOKENS_ENABLED=true for a development server"
            )
        return self

    @field_validator("jwt_algorithms")
    @classmethod
    def _asymmetric_only(cls, value: list[str]) -> list[str]:
        refused = [name for name in value if name not in ASYMMETRIC_ALGORITHMS]
        if refused:
            raise ValueError(
                f"{refused} cannot verify an identity provider's tokens: use "
                f"{sorted(ASYMMETRIC_ALGORITHMS)} (HS256 is JWT_SECRET without SSE_JWKS_URL)"
            )
        return value

    @field_validator("jwks_url", "jwt_issuer", "jwt_audience", mode="before")
    @classmethod
    def _empty_is_none(cls, value: object) -> object:
        return None if value == "" else value  # compose passes an unset variable as ""

    @field_validator("jwks_url")
    @classmethod
    def _keys_over_tls(cls, value: str | None) -> str | None:
        if value is None:
            return value
        url = urlsplit(value)
        loopback = url.hostname in {"127.0.0.1", "::1", "localhost"}
        if not url.hostname or not (url.scheme == "https" or (url.scheme == "http" and loopback)):
            raise ValueError(
                f"SSE_JWKS_URL must be an https:// URL (http:// on loopback only: anyone on "
                f"the path could swap in keys of their own), not {value!r}"
            )
        return value

    @model_validator(mode="after")
    def _dev_tokens_need_the_secret(self) -> Self:
        if self.dev_tokens_enabled and self.jwks_url is not None:
            raise ValueError(
                "SSE_DEV_TOKENS_ENABLED=true cannot go with SSE_JWKS_URL: dev tokens are HS256 "
                "with JWT_SECRET, and with a JWKS only the identity provider's tokens are accepted"
            )
        return self

    @model_validator(mode="after")
    def _heartbeat_within_alive(self) -> Self:
        if self.instance_heartbeat_seconds >= self.instance_alive_seconds:
            raise ValueError(
                "SSE_INSTANCE_HEARTBEAT_SECONDS must be shorter than SSE_INSTANCE_ALIVE_SECONDS "
                "(a live instance would be taken for dead between two heartbeats)"
            )
        return self

    def startup_warnings(self) -> list[str]:
        """What makes this server unfit for production, said once at start."""
        warnings = []
        if self.dev_tokens_enabled:
            warnings.append(
                "SSE_DEV_TOKENS_ENABLED=true: POST /api/v1/auth/dev-token mints a JWT for any "
                "user and any role: development only"
            )
        if self.jwks_url is None and is_public_secret(self.jwt_secret):
            warnings.append(
                "JWT_SECRET is a secret published in this repository: anyone can mint tokens "
                "for any user, admins included. Development only: set a private JWT_SECRET"
            )
        if self.jwks_url is not None and self.jwt_issuer is None:
            warnings.append(
                "SSE_JWKS_URL without SSE_JWT_ISSUER: any token the provider signs is accepted, "
                "including those it issues for other applications; set SSE_JWT_ISSUER (and "
                "SSE_JWT_AUDIENCE)"
            )
        if self.audit_allow_dev_key and not self.audit_encryption_keys.replace(",", "").strip():
            warnings.append(
                "AUDIT_ENCRYPTION_KEYS is not set: sensitive fields of audited events are "
                "sealed with the PUBLIC development key: development only"
            )
        return warnings
