"""The key table in docs/redis.md is the layout's: every key ``KeyLayout`` can build is a row,
and every key in the table is one ``KeyLayout`` builds. A key added to either alone fails here.

The layout is rendered with placeholders named after its methods' parameters (``user_id`` ->
``<user>``, ``ip`` -> ``<ip>``), a ``stream`` as a user's (``u:<user>``) and the broadcast one
(``b``), under the default prefix ``rt``: the spelling the table uses.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Iterator
from pathlib import Path

from progress.keys import BROADCAST, KeyLayout, user_stream

DOC = Path(__file__).resolve().parents[2] / "docs" / "redis.md"

#: Layout methods that build no key: why each is left out of the table.
NOT_KEYS = {
    "stream_of_channel": "maps a channel name back to its stream",
    "all_events": "a SCAN pattern over the events keys, not a key",
}

#: What a ``stream`` parameter stands for: a user's stream and the broadcast stream.
STREAMS = (user_stream("<user>"), BROADCAST)


def placeholder(parameter: str) -> str:
    """``user_id`` -> ``<user>``, ``digest`` -> ``<digest>``."""
    return f"<{parameter.removesuffix('_id')}>"


def rendered(layout: KeyLayout) -> Iterator[tuple[str, str]]:
    """(method, key) for every key the layout builds, with placeholder ids."""
    for name, method in inspect.getmembers(type(layout), inspect.isfunction):
        if name.startswith("_") or name in NOT_KEYS:
            continue
        parameters = list(inspect.signature(method).parameters)[1:]
        if parameters == ["stream"]:
            for stream in STREAMS:
                yield name, method(layout, stream)
        else:
            yield name, method(layout, *map(placeholder, parameters))


def documented(text: str) -> set[str]:
    """The keys in the first column of the table whose header starts ``| key |``."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("| key |"))
    keys: set[str] = set()
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        keys.update(re.findall(r"`([^`]+)`", line.split("|")[1]))
    return keys


def test_every_key_of_the_layout_is_in_the_table() -> None:
    table = documented(DOC.read_text())
    missing = {key: name for name, key in rendered(KeyLayout()) if key not in table}
    assert not missing, f"keys of progress/keys.py missing from docs/redis.md's table: {missing}"


def test_every_key_in_the_table_is_built_by_the_layout() -> None:
    built = {key for _, key in rendered(KeyLayout())}
    unknown = documented(DOC.read_text()) - built
    assert not unknown, (
        f"keys in docs/redis.md's table that progress/keys.py does not build: {unknown}"
    )


def test_the_table_is_found_and_read() -> None:
    table = documented(DOC.read_text())
    assert {"rt:{u:<user>}:events", "rt:{b}:events", "rt:control"} <= table


def test_a_key_missing_from_the_table_is_reported() -> None:
    class Grown(KeyLayout):
        def drafts(self, user_id: str) -> str:
            return f"{self.prefix}:{{{user_stream(user_id)}}}:drafts"

    table = documented(DOC.read_text())
    assert [key for _, key in rendered(Grown()) if key not in table] == ["rt:{u:<user>}:drafts"]
