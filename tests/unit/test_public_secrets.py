"""Every JWT secret written in this repository is one the API refuses in production."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from pydantic import ValidationError

from api.settings import ApiSettings, is_public_secret

ROOT = Path(__file__).resolve().parents[2]


def _secrets_in(path: Path) -> list[str]:
    """Values of module-level ``*SECRET = <constant expression>`` assignments."""
    found = []
    for node in ast.parse(path.read_text()).body:
        if not isinstance(node, ast.Assign) or not isinstance(node.value, ast.BinOp | ast.Constant):
            continue
        if any(isinstance(t, ast.Name) and t.id.endswith("SECRET") for t in node.targets):
            value = eval(
                compile(ast.Expression(node.value), str(path), "eval"), {"__builtins__": {}}
            )
            if isinstance(value, str):
                found.append(value)
    return found


def test_every_secret_in_the_repository_is_refused() -> None:
    files = [p for d in ("api", "scripts", "tests", "bench") for p in (ROOT / d).rglob("*.py")]
    secrets = {s for path in files for s in _secrets_in(path)}
    assert len(secrets) >= 4  # the API's default, the demo's, the tests', the benchmarks'
    assert [s for s in secrets if not is_public_secret(s)] == []


def test_a_private_secret_is_not_public() -> None:
    assert not is_public_secret("c0ffee" * 8)


def test_without_a_jwks_the_default_secret_is_refused_and_with_one_it_is_not_needed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("JWT_SECRET", raising=False)
    monkeypatch.delenv("SSE_DEV_TOKENS_ENABLED", raising=False)
    with pytest.raises(ValidationError, match="JWT_SECRET is unset"):
        ApiSettings()
    # The identity provider's keys check every JWT; the secret signs nothing then.
    settings = ApiSettings(jwks_url="https://login.example.com/jwks")
    assert not [w for w in settings.startup_warnings() if "JWT_SECRET" in w]
