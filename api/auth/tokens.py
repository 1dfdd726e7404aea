"""Platform JWTs (Bearer) and the short-lived, single-use ``sse_token`` that opens a stream.

An EventSource cannot send headers, so the browser trades its JWT for an ``sse_token`` and puts
that in the stream URL. The token is opaque: ``sst1_<expiry>_<32 random characters>``. Redis
holds who it opens a stream for (user, session, roles, the JWT's own expiry) under a digest of
it, for the token's lifetime; opening a stream takes that entry (``GETDEL``), so the token is
spent on first use and a token leaked through a log or a URL is worthless once used. No
signature is checked on the open (the hot path): the entry in Redis is the proof.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated, Any, Protocol

import jwt
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from api.errors import ApiError, unauthorized
from progress.errors import StoreUnavailable
from progress.keys import KeyLayout
from progress.redis_store import AsyncClient

_ALGORITHM = "HS256"


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: user, session, roles, and when their JWT expires (epoch seconds)."""

    user_id: str
    session_id: str | None
    expires_at: float
    roles: tuple[str, ...] = field(default=())


#: Latest accepted expiry (``exp``): 9999-12-31, far past any real token, and small enough for
#: a float and for every date library.
MAX_EPOCH = 253_402_300_799

_Epoch = Annotated[int, Field(gt=0, le=MAX_EPOCH)]
_Short = Annotated[str, Field(min_length=1, max_length=128)]


class Claims(BaseModel):
    """The claims of a validly signed token, checked once before any code reads them.

    Strict: a claim of the wrong JSON type is refused, never coerced (``roles: {"admin": false}``
    is not a list of roles, ``sub: 7`` is not a user id). Claims this platform does not use
    (``aud``, ``iss``, ``typ``, ``jti``, a name...) are ignored here; PyJWT checks the
    registered ones it knows (``jti`` a string, ``iat`` a number...).
    """

    model_config = ConfigDict(strict=True, frozen=True, extra="ignore")

    #: User ids become Redis hash tags and cursor parts: only what cannot break them.
    sub: Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.@-]+$")]
    exp: _Epoch
    iat: int | None = None
    sid: _Short | None = None
    roles: list[Annotated[str, Field(min_length=1, max_length=64)]] = Field(
        default_factory=list, max_length=64
    )


def validated_claims(payload: dict[str, Any]) -> Claims:
    """The claims of a verified payload, type-checked; 401 naming the first wrong claim."""
    try:
        return Claims.model_validate(payload)
    except ValidationError as exc:
        error = exc.errors()[0]
        claim = ".".join(str(part) for part in error["loc"]) or "claims"
        raise unauthorized(
            "token_invalid", f"the token's claim {claim} is not valid: {error['msg']}"
        ) from None


def translated_jwt_errors(decode: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """The payload ``decode`` returns; PyJWT's errors as 401s that say what is wrong."""
    try:
        return decode()
    except jwt.ExpiredSignatureError:
        raise unauthorized("token_expired", "the token has expired") from None
    except jwt.InvalidSignatureError:
        raise unauthorized("token_invalid_signature", "the token's signature is wrong") from None
    except jwt.DecodeError:
        raise unauthorized("token_malformed", "the token is not a well-formed JWT") from None
    except jwt.PyJWTError as exc:  # a wrong issuer or audience, a key of the wrong type...
        raise unauthorized("token_invalid", f"the token is not valid: {exc}") from None
    except (TypeError, ValueError) as exc:  # a key its algorithm cannot load
        raise unauthorized("token_invalid", f"the token is not valid: {exc}") from None


_SSE_TOKEN_PREFIX = "sst1_"
#: ``sst1_<expiry, epoch seconds>_<secrets.token_urlsafe(24)>``.
_SSE_TOKEN = re.compile(r"sst1_(\d{1,12})_[A-Za-z0-9_-]{32}")


def _digest(token: str) -> str:
    return hashlib.blake2b(token.encode(), digest_size=16).hexdigest()


class PlatformJwtVerifier(Protocol):
    """How the platform's JWTs are checked (``api.auth.platform_jwt``): a shared secret, or
    the identity provider's published keys."""

    async def verify(self, token: str) -> Claims:
        """The token's claims; 401 (``ApiError``) saying what is wrong with it."""
        ...


class TokenService:
    """Checks platform JWTs (with ``platform``), issues sse_tokens (held in Redis, so any
    instance can spend them) and spends them once."""

    def __init__(
        self,
        client: AsyncClient,
        prefix: str = "rt",
        ttl: int = 60,
        expiry_notice: float = 0.0,
        *,
        platform: PlatformJwtVerifier,
    ) -> None:
        self._platform = platform
        self._client = client
        self._layout = KeyLayout(prefix)
        self.ttl = ttl
        self._expiry_notice = expiry_notice

    async def principal_from_jwt(self, token: str | None) -> Principal:
        """The caller of a Bearer JWT; 401 saying what is wrong with it."""
        if not token:
            raise unauthorized("token_missing", "an Authorization: Bearer <JWT> header is needed")
        if _SSE_TOKEN.fullmatch(token):
            raise unauthorized("token_wrong_type", "an sse_token cannot be used as a Bearer JWT")
        claims = await self._platform.verify(token)
        return Principal(
            user_id=claims.sub,
            session_id=claims.sid,
            expires_at=float(claims.exp),
            roles=tuple(claims.roles),
        )

    async def issue_sse_token(self, principal: Principal) -> tuple[str, int]:
        """A token for one stream and its lifetime: ``ttl`` seconds, never past the JWT's.

        A JWT about to expire gets 401 ``token_expiring``: its stream would end at once.
        """
        now = time.time()
        expires = min(now + self.ttl, principal.expires_at)
        lifetime_ms = int((expires - now) * 1000)
        if principal.expires_at - now <= self._expiry_notice or lifetime_ms <= 0:
            raise unauthorized("token_expiring", "the JWT is about to expire: refresh it first")
        token = f"{_SSE_TOKEN_PREFIX}{int(expires)}_{secrets.token_urlsafe(24)}"
        holder = [principal.user_id, principal.session_id, principal.expires_at, principal.roles]
        try:
            await self._client.set(
                self._layout.sse_token(_digest(token)), json.dumps(holder), px=lifetime_ms
            )
        except (RedisConnectionError, RedisTimeoutError) as exc:
            raise StoreUnavailable(f"Redis unavailable: {exc}") from exc
        return token, lifetime_ms // 1000

    async def spend_sse_token(self, token: str | None) -> Principal:
        """Take an sse_token's entry; 401 when missing, malformed, expired or already used."""
        key = self.sse_token_key(token)
        try:
            holder = await self._client.getdel(key)
        except (RedisConnectionError, RedisTimeoutError) as exc:
            raise StoreUnavailable(f"Redis unavailable: {exc}") from exc
        return self.holder_principal(holder)

    def sse_token_key(self, token: str | None) -> str:
        """The Redis key of an sse_token's entry; 401 when the token is missing, malformed or
        expired (checked before any Redis call)."""
        if not token:
            raise unauthorized("token_missing", "the sse_token query parameter is required")
        match = _SSE_TOKEN.fullmatch(token)
        if match is None:
            if token.count(".") == 2:
                raise unauthorized("token_wrong_type", "a JWT is not an sse_token")
            raise unauthorized("token_malformed", "this is not an sse_token")
        if int(match[1]) < time.time():
            raise unauthorized("token_expired", "the token has expired")
        return self._layout.sse_token(_digest(token))

    @staticmethod
    def holder_principal(holder: bytes | str | None) -> Principal:
        """Who a spent token's entry names; 401 ``token_reused`` when there was none."""
        if holder is None:
            raise unauthorized("token_reused", "this sse_token was already used or never issued")
        user_id, session_id, jwt_expires_at, roles = json.loads(holder)
        return Principal(user_id, session_id, jwt_expires_at, tuple(roles))

    async def spend_refused(self, token: str | None) -> None:
        """Spend the sse_token of an open refused before it was checked (invalid parameters):
        single use means single use. Anything that is not a valid sse_token is ignored, as is
        Redis being down: the request is refused for its parameters either way."""
        if not token:
            return
        with contextlib.suppress(ApiError, StoreUnavailable):
            await self.spend_sse_token(token)


def mint_jwt(
    secret: str,
    user_id: str,
    session_id: str | None = None,
    ttl_seconds: int = 3600,
    roles: tuple[str, ...] = (),
) -> str:
    """A platform JWT, for development and tests only (the platform issues the real ones)."""
    now = int(time.time())
    claims: dict[str, object] = {"sub": user_id, "iat": now, "exp": now + ttl_seconds}
    if session_id:
        claims["sid"] = session_id
    if roles:
        claims["roles"] = list(roles)
    return jwt.encode(claims, secret, algorithm=_ALGORITHM)
