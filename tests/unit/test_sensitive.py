"""Issue 6: the fields marked sensitive in the event schema are split out for encryption."""

from __future__ import annotations

import pytest

from progress.events import ChapterChange, ChapterUpdated, NovelCreated, TaskCompleted, parse_event
from progress.sensitive import merge_sensitive, split_sensitive

pytestmark = pytest.mark.unit


def test_the_premise_of_a_novel_is_split_out_and_put_back() -> None:
    event = NovelCreated(user_id="u1", novel_id="n1", title="Tide", premise="a secret plot")

    data, secrets = split_sensitive(event)

    assert data["premise"] is None and data["title"] == "Tide"
    assert secrets == [(["premise"], "a secret plot")]
    assert parse_event(merge_sensitive(data, secrets)) == event


def test_summaries_inside_the_chapter_list_are_split_out() -> None:
    chapters = [
        ChapterChange(chapter_id=f"c{n}", number=n, title=f"T{n}", summary=f"S{n}") for n in (1, 2)
    ]
    event = ChapterUpdated(user_id="u1", novel_id="n1", chapters=chapters)

    data, secrets = split_sensitive(event)

    assert [c["summary"] for c in data["chapters"]] == [None, None]
    assert [c["title"] for c in data["chapters"]] == ["T1", "T2"]
    assert [value for _, value in secrets] == ["S1", "S2"]
    assert parse_event(merge_sensitive(data, secrets)) == event


def test_an_event_without_sensitive_fields_has_nothing_to_seal() -> None:
    event = TaskCompleted(user_id="u1", task_id="t1", duration_seconds=1)

    assert split_sensitive(event)[1] == []
