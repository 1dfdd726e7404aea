"""How the platform's JWTs are verified: HS256 with ``JWT_SECRET`` (the simple option), or
RS256/ES256 with the keys an identity provider publishes at a JWKS URL (Keycloak, Auth0,
Cognito, any OIDC provider). Either way the issuer and audience are checked when configured,
and the user and roles are read from the configured claims before :class:`Claims` types them.

The JWKS is cached; a token naming a key the cache lacks (the provider rotated its keys) makes
it fetch the set again, at most once per ``min_refresh_seconds``, so a flood of tokens with
made-up ``kid``s costs the provider one request, not one per token.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import dataclass
from typing import Any

import httpx
import jwt

from api.auth.tokens import (
    Claims,
    PlatformJwtVerifier,
    translated_jwt_errors,
    validated_claims,
)
from api.errors import ApiError, unauthorized
from api.settings import ApiSettings

log = logging.getLogger("api.jwks")

_FETCH_TIMEOUT_SECONDS = 5.0
#: A JWKS holds a few keys (a few KiB); anything much larger is not one.
_MAX_JWKS_BYTES = 1024 * 1024
#: Seconds of clock difference with the identity provider tolerated on exp, nbf and iat.
_LEEWAY_SECONDS = 30


@dataclass(frozen=True, slots=True)
class ClaimRules:
    """What a platform JWT must say, and where it says who the user is."""

    issuer: str | None = None
    audience: str | None = None
    #: The claims holding the user id and the roles: a claim of that exact name, else a
    #: dotted path into objects (``realm_access.roles``).
    subject_claim: str = "sub"
    roles_claim: str = "roles"

    def decoder(self) -> jwt.PyJWT:
        """A PyJWT decoder requiring ``exp``, and ``iss``/``aud`` when configured."""
        required = ["exp"] + (["sub"] if self.subject_claim == "sub" else [])
        required += ["iss"] * (self.issuer is not None) + ["aud"] * (self.audience is not None)
        return jwt.PyJWT(options={"require": required})


#: What :func:`claim_at` returns for a claim the token does not have (``null`` is a value).
MISSING = object()


def claim_at(payload: dict[str, Any], name: str) -> Any:
    """The claim ``name``: an exact key first, else a dotted path; MISSING when absent."""
    if name in payload:
        return payload[name]
    value: Any = payload
    for part in name.split("."):
        if not isinstance(value, dict) or part not in value:
            return MISSING
        value = value[part]
    return value


def platform_claims(payload: dict[str, Any], rules: ClaimRules) -> Claims:
    """The typed claims of a verified platform JWT, user and roles read where ``rules`` say
    (no roles claim: no roles; any other value must be a list of role names)."""
    found = {
        "sub": claim_at(payload, rules.subject_claim),
        "roles": claim_at(payload, rules.roles_claim),
    }
    return validated_claims(
        {k: v for k, v in payload.items() if k not in found}
        | {k: v for k, v in found.items() if v is not MISSING}
    )


class SecretJwtVerifier:
    """HS256 platform JWTs signed with ``JWT_SECRET``."""

    def __init__(self, secret: str, rules: ClaimRules) -> None:
        self._secret = secret
        self._rules = rules
        self._jwt = rules.decoder()

    async def verify(self, token: str) -> Claims:
        """The token's claims; 401 saying what is wrong with it."""
        payload = translated_jwt_errors(
            lambda: self._jwt.decode(
                token,
                self._secret,
                algorithms=["HS256"],
                issuer=self._rules.issuer,
                audience=self._rules.audience,
            )
        )
        return platform_claims(payload, self._rules)


@dataclass(frozen=True, slots=True)
class _Key:
    key: jwt.PyJWK
    #: The ``alg`` the provider published for it, if any: then the only one it verifies.
    algorithm: str | None


class JwksKeys:
    """An identity provider's signing keys, fetched from ``url`` and cached.

    Requests to the provider are rate-limited whatever happens: at most one per
    ``min_refresh_seconds`` (a failed one counts), callers meanwhile share the one under way.
    Keys older than ``max_age_seconds`` keep verifying while a refresh runs in the background;
    a failed refresh keeps them. Only while no key was ever read do token checks wait for the
    provider, and then answer 503 at once until the next attempt is due.
    """

    def __init__(self, url: str, max_age_seconds: float, min_refresh_seconds: float) -> None:
        self.url = url
        self._max_age = max_age_seconds
        self._min_refresh = min_refresh_seconds
        self._keys: dict[str | None, _Key] | None = None
        self._fetched_at = float("-inf")
        self._attempted_at = float("-inf")
        self._fetching: asyncio.Task[None] | None = None

    async def key(self, kid: str | None, algorithm: str) -> jwt.PyJWK:
        """The key that signed a token with header ``kid`` and ``alg``; 401 when the
        provider has no such key (after a refresh, if one is under way or allowed now); 503
        when its keys could not be read yet."""
        if self._keys is None:
            await self._refreshed(wanted=True)
            if self._keys is None:
                raise ApiError(
                    503,
                    "identity_provider_unavailable",
                    "the identity provider's signing keys (SSE_JWKS_URL) could not be read",
                    {"Retry-After": str(max(1, round(self._min_refresh)))},
                )
        elif time.monotonic() - self._fetched_at >= self._max_age:
            self._start_refresh()  # verify with the keys at hand meanwhile
        found = self._match(kid)
        if found is None:
            await self._refreshed(wanted=True)  # rotated keys: the set may name it now
            found = self._match(kid)
        if found is None:
            raise unauthorized(
                "token_unknown_key", f"the identity provider has no signing key {kid!r}"
            )
        if found.algorithm is not None and found.algorithm != algorithm:
            raise unauthorized(
                "token_invalid",
                f"the token is not valid: key {kid!r} signs {found.algorithm}, not {algorithm}",
            )
        return found.key

    def _match(self, kid: str | None) -> _Key | None:
        keys = self._keys or {}
        if kid is None and len(keys) == 1:
            return next(iter(keys.values()))  # a provider with one key may omit kids
        return keys.get(kid)

    def _start_refresh(self) -> bool:
        """Start a fetch unless one is under way or the last began too recently."""
        if self._fetching is not None and not self._fetching.done():
            return True
        if time.monotonic() - self._attempted_at < self._min_refresh:
            return False
        self._attempted_at = time.monotonic()
        self._fetching = asyncio.get_running_loop().create_task(self._fetch())
        return True

    async def _refreshed(self, wanted: bool) -> None:
        """Wait for the fetch under way, or for a new one when ``wanted`` and allowed."""
        if (wanted and self._start_refresh()) or (
            self._fetching is not None and not self._fetching.done()
        ):
            assert self._fetching is not None
            await asyncio.shield(self._fetching)

    async def _fetch(self) -> None:
        try:
            async with asyncio.timeout(_FETCH_TIMEOUT_SECONDS):
                document = await _read_json(self.url)
            keys = _signing_keys(document)
        except (TimeoutError, httpx.HTTPError, httpx.InvalidURL, ValueError, TypeError) as exc:
            log.warning("could not read the JWKS at %s: %s", self.url, exc or type(exc).__name__)
            return  # keep what was read before (or nothing: token checks say 503)
        self._keys = keys
        self._fetched_at = time.monotonic()


async def _read_json(url: str) -> Any:
    """The JSON document at ``url``, refused past :data:`_MAX_JWKS_BYTES`."""
    async with (
        httpx.AsyncClient(timeout=_FETCH_TIMEOUT_SECONDS) as client,
        client.stream("GET", url) as response,
    ):
        response.raise_for_status()
        body = bytearray()
        async for chunk in response.aiter_bytes():
            body += chunk
            if len(body) > _MAX_JWKS_BYTES:
                raise ValueError(f"the JWKS is larger than {_MAX_JWKS_BYTES} bytes")
    return json.loads(body)


def _signing_keys(document: Any) -> dict[str | None, _Key]:
    """The signature keys of a JWKS document, by ``kid`` (keys of other uses or of types
    PyJWT cannot use are left out)."""
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise ValueError("not a JWKS document (no keys list)")
    found: dict[str | None, _Key] = {}
    for entry in document["keys"]:
        if not isinstance(entry, dict) or entry.get("use", "sig") != "sig":
            continue
        try:
            key = jwt.PyJWK.from_dict(entry)
        except jwt.PyJWTError:
            continue
        algorithm = entry.get("alg")
        found[key.key_id] = _Key(key, algorithm if isinstance(algorithm, str) else None)
    return found


class JwksJwtVerifier:
    """Platform JWTs signed by an identity provider with one of ``algorithms`` (asymmetric:
    an HS256 token made with the public key as its secret is refused by its ``alg``)."""

    def __init__(self, keys: JwksKeys, algorithms: list[str], rules: ClaimRules) -> None:
        self._keys = keys
        self._algorithms = algorithms
        self._rules = rules
        self._jwt = rules.decoder()

    async def verify(self, token: str) -> Claims:
        """The token's claims; 401 saying what is wrong with it."""
        header = translated_jwt_errors(lambda: jwt.get_unverified_header(token))
        algorithm = header.get("alg")
        if algorithm not in self._algorithms:
            raise unauthorized(
                "token_invalid",
                f"the token is not valid: algorithm {algorithm!r} is not accepted "
                f"(SSE_JWT_ALGORITHMS: {', '.join(self._algorithms)})",
            )
        kid = header.get("kid")
        key = await self._keys.key(kid if isinstance(kid, str) else None, algorithm)
        # The PyJWK itself, not its raw key: PyJWT then refuses a token whose alg is not the
        # key's own (an ES256 header on an RSA key) instead of failing to load the key.
        payload = translated_jwt_errors(
            lambda: self._jwt.decode(
                token,
                key,
                algorithms=[algorithm],
                issuer=self._rules.issuer,
                audience=self._rules.audience,
                leeway=_LEEWAY_SECONDS,
            )
        )
        return platform_claims(payload, self._rules)


def platform_verifier(settings: ApiSettings) -> PlatformJwtVerifier:
    """The verifier ``settings`` ask for: the JWKS's keys when ``SSE_JWKS_URL`` is set, else
    the shared secret."""
    rules = ClaimRules(
        issuer=settings.jwt_issuer,
        audience=settings.jwt_audience,
        subject_claim=settings.jwt_subject_claim,
        roles_claim=settings.jwt_roles_claim,
    )
    if settings.jwks_url is None:
        return SecretJwtVerifier(settings.jwt_secret, rules)
    keys = JwksKeys(
        settings.jwks_url, settings.jwks_max_age_seconds, settings.jwks_refresh_min_seconds
    )
    return JwksJwtVerifier(keys, settings.jwt_algorithms, rules)
