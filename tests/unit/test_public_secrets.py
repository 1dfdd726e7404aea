"""Every JWT secret written in this repository is one the API refuses in production."""

from __future__ import annotations

import ast
from pathlib import Path

from api.settings import is_public_secret

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
