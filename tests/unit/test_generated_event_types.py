"""Issue 16: the browser's event types are generated from progress/events.py and kept current."""

from __future__ import annotations

from pathlib import Path

import pytest

from progress.events import EVENT_TYPES
from scripts import gen_event_types

pytestmark = pytest.mark.unit


def test_committed_event_types_match_the_pydantic_models(tmp_path: Path) -> None:
    fresh = tmp_path / "events.generated.ts"
    gen_event_types.main(["--out", str(fresh)])
    committed = gen_event_types.TARGET.read_text()
    assert committed == fresh.read_text(), (
        f"{gen_event_types.TARGET.relative_to(gen_event_types.ROOT)} is stale: "
        "run python -m scripts.gen_event_types and commit the result"
    )


def test_every_event_type_is_an_interface_and_listed() -> None:
    text = gen_event_types.render()
    for name in EVENT_TYPES:
        assert f'type: "{name}";' in text
        assert f'  "{name}",\n' in text
