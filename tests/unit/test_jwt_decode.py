"""The shortcut for plain HS256 tokens decides every token exactly as PyJWT alone does."""

from __future__ import annotations

import base64
import hmac
import time
from collections.abc import Callable

import jwt
import orjson
import pytest

from api import security
from api.errors import ApiError

SECRET = "unit-secret-0123456789abcdef0123456789"


def _segment(value: dict) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(value)).rstrip(b"=").decode()


def _tokens() -> dict[str, str]:
    now = int(time.time())
    good = {"sub": "ann", "iat": now, "exp": now + 600}
    sse = good | {"typ": "sse", "sid": "s1", "jexp": now + 3600.5, "roles": ["a"], "jti": "j"}
    token = jwt.encode(good, SECRET, algorithm="HS256")
    header, payload, signature = token.split(".")
    return {
        "platform": token,
        "sse": jwt.encode(sse, SECRET, algorithm="HS256"),
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


def _outcome(decode: Callable[[str, str], dict], token: str) -> object:
    try:
        return decode(token, SECRET)
    except ApiError as exc:
        return (exc.status, exc.code, exc.message)


@pytest.mark.parametrize("name", sorted(_tokens()))
def test_each_token_gets_what_pyjwt_alone_gives(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    token = _tokens()[name]
    fast = _outcome(security._decode, token)
    monkeypatch.setattr(security, "_plain_claims", lambda *_: None)
    assert fast == _outcome(security._decode, token)


def test_the_shortcut_takes_the_platforms_own_tokens() -> None:
    tokens = _tokens()
    key = SECRET.encode()
    for name in ("platform", "sse"):
        assert security._plain_claims(tokens[name], key) is not None, name
    for name in ("expired", "other_secret", "tampered", "kid_header", "audience", "float_exp"):
        assert security._plain_claims(tokens[name], key) is None, name


def test_each_signature_of_the_shortcut_covers_its_own_message_only() -> None:
    key = b"k" * 40
    for message in (b"eyJhIjoxfQ.eyJzdWIiOiJhbm4ifQ", b"eyJhIjoxfQ.eyJzdWIiOiJib2IifQ") * 2:
        assert security._hs256(key, message) == hmac.digest(key, message, "sha256")
