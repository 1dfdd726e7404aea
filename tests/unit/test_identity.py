"""Issue 2: identity headers survive a round trip and bad ones never raise."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from progress.identity import Identity, acting_as, current_identity

pytestmark = pytest.mark.unit


def test_header_round_trip() -> None:
    identity = Identity("u1", "s1", novel_id="n1")
    assert Identity.from_header(identity.to_header()) == identity


@pytest.mark.parametrize(
    "value", [None, "u1", {}, {"session_id": "s"}, {"user_id": "{bad}"}, {"user_id": 7}]
)
def test_malformed_headers_give_no_identity(value: object) -> None:
    assert Identity.from_header(value) is None


def test_acting_as_sets_and_restores() -> None:
    with acting_as("u1", "s1") as outer:
        assert current_identity.get() == outer
        with acting_as("u2"):
            assert current_identity.get() == Identity("u2")
        assert current_identity.get() == outer
    assert current_identity.get() is None


def test_ids_that_would_break_key_names_are_refused() -> None:
    with pytest.raises(ValidationError):
        Identity("a}b")
