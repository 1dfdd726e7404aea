"""docs/integrate.md shows code that the tests run: every snippet marked
``<!-- from: <path> -->`` is, line for line, in that file."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
GUIDE = ROOT / "docs" / "integrate.md"
SNIPPET = re.compile(r"<!-- from: (?P<path>[^ ]+) -->\n```[a-z]*\n(?P<code>.*?)```", re.S)


def snippets() -> list[tuple[str, str]]:
    return [(m["path"], m["code"]) for m in SNIPPET.finditer(GUIDE.read_text())]


def test_the_guide_marks_its_snippets() -> None:
    assert len(snippets()) >= 5


@pytest.mark.parametrize(("path", "code"), snippets())
def test_each_marked_snippet_is_in_the_file_the_tests_run(path: str, code: str) -> None:
    source = (ROOT / path).read_text()
    assert code.strip("\n") in source, f"docs/integrate.md's snippet from {path} drifted"
