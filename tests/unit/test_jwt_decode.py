"""Every HS256 platform JWT is decided by PyJWT and then the typed claims: which are accepted,
and the 401 code and message of each refusal."""

from __future__ import annotations

import asyncio
import base64
import time

import jwt
import orjson
import pytest

from api.auth.platform_jwt import ClaimRules, SecretJwtVerifier
from api.auth.tokens import Claims
from api.errors import ApiError

SECRET = "unit-secret-0123456789abcdef0123456789"


def _segment(value: dict) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(value)).rstrip(b"=").decode()


def _tokens() -> dict[str, str]:
    now = int(time.time())
    good = {"sub": "ann", "iat": now, "exp": now + 600}
    typed = good | {"sid": "s1", "roles": ["a"], "jti": "j"}
    # Claims only the old JWT sse_token had, of any type: not this platform's, so ignored.
    unused = good | {"typ": {"kind": "at"}, "jexp": "soon"}
    token = jwt.encode(good, SECRET, algorithm="HS256")
    header, payload, signature = token.split(".")
    return {
        "platform": token,
        "typed": jwt.encode(typed, SECRET, algorithm="HS256"),
        "unused_claims": jwt.encode(unused, SECRET, algorithm="HS256"),
        "expired": jwt.encode(good | {"exp": now - 1}, SECRET, algorithm="HS256"),
        "other_secret": jwt.encode(good, SECRET + "x", algorithm="HS256"),
        "tampered": f"{header}.{_segment(good | {'sub': 'bob'})}.{signature}",
        "padded_signature": f"{token}=",
        "junk_signature": f"{token[:-2]}!!",
        "kid_header": jwt.encode(good, SECRET, algorithm="HS256", headers={"kid": "k1"}),
        "hs512": jwt.encode(good, SECRET + "x" * 40, algorithm="HS512"),
        "audience": jwt.encode(good | {"aud": "x"}, SECRET, algorithm="HS256"),
        "not_before": jwt.encode(good | {"nbf": now + 600}, SECRET, algorithm="HS256"),
        "float_exp": jwt.encode(good | {"exp": now + 600.5}, SECRET, algorithm="HS256"),
        "future_iat": jwt.encode(good | {"iat": now + 600}, SECRET, algorithm="HS256"),
        "int_subject": jwt.encode(good | {"sub": 7}, SECRET, algorithm="HS256"),
        "int_jti": jwt.encode(good | {"jti": 7}, SECRET, algorithm="HS256"),
        "no_exp": jwt.encode({"sub": "ann"}, SECRET, algorithm="HS256"),
        "null_sub": jwt.encode(good | {"sub": None}, SECRET, algorithm="HS256"),
        "not_a_jwt": "abc",
        "two_segments": f"{header}.{payload}",
        "empty": "",
    }


#: What each token gets: accepted (None) or the 401's code and message.
EXPECTED: dict[str, tuple[str, str] | None] = {
    "platform": None,
    "typed": None,
    "unused_claims": None,
    "kid_header": None,
    "padded_signature": None,
    "expired": ("token_expired", "the token has expired"),
    "other_secret": ("token_invalid_signature", "the token's signature is wrong"),
    "tampered": ("token_invalid_signature", "the token's signature is wrong"),
    "junk_signature": ("token_malformed", "the token is not a well-formed JWT"),
    "not_a_jwt": ("token_malformed", "the token is not a well-formed JWT"),
    "two_segments": ("token_malformed", "the token is not a well-formed JWT"),
    "empty": ("token_malformed", "the token is not a well-formed JWT"),
    "hs512": ("token_invalid", "the token is not valid: The specified alg value is not allowed"),
    "audience": ("token_invalid", "the token is not valid: Invalid audience"),
    "not_before": ("token_invalid", "the token is not valid: The token is not yet valid (nbf)"),
    "future_iat": ("token_invalid", "the token is not valid: The token is not yet valid (iat)"),
    "int_subject": ("token_invalid", "the token is not valid: Subject must be a string"),
    "int_jti": ("token_invalid", "the token is not valid: JWT ID must be a string"),
    "no_exp": ("token_invalid", 'the token is not valid: Token is missing the "exp" claim'),
    "null_sub": ("token_invalid", 'the token is not valid: Token is missing the "sub" claim'),
    "float_exp": (
        "token_invalid",
        "the token's claim exp is not valid: Input should be a valid integer",
    ),
}


def test_every_token_kind_has_an_expectation() -> None:
    assert sorted(EXPECTED) == sorted(_tokens())


def _verify(token: str) -> Claims:
    return asyncio.run(SecretJwtVerifier(SECRET, ClaimRules()).verify(token))


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_each_token_is_accepted_or_refused_with_its_code(name: str) -> None:
    token = _tokens()[name]
    try:
        claims = _verify(token)
    except ApiError as exc:
        assert (exc.status, exc.code, exc.message) == (401, *EXPECTED[name])
    else:
        assert EXPECTED[name] is None, name
        assert claims.sub == "ann"


def test_a_valid_token_keeps_its_typed_claims() -> None:
    claims = _verify(_tokens()["typed"])
    assert (claims.sid, claims.roles) == ("s1", ["a"])
