"""What every chaos scenario checks, and the one line of counts it prints.

The events a user must see are the important ones (completed, failed, cancelled, content,
system) addressed to them: those in the SQL journal (``sse_event_audit``) and those still in
their Redis stream, united, so a loss of either store alone does not hide an event from the
check. Each tab (a browser's EventSource, across all its reconnects) must have received each of
them, none twice, and nothing addressed to someone else.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field

import httpx
import orjson
import sqlalchemy as sa

from progress.keys import user_stream
from progress.redis_store import RedisEventStore, connect
from tests.chaos.users import CONTROL, Tab, wait_until
from tests.sse_client import SseEvent

TERMINAL_TASK = frozenset({"completed", "failed", "cancelled"})
TERMINAL_NOVEL = frozenset({"done", "failed", "cancelled"})


@dataclass
class Counts:
    """One scenario's outcome: the counts it prints and the invariants that failed."""

    scenario: str
    attempts: int = 0
    events: int = 0
    lost: int = 0
    duplicated: int = 0
    leaked: int = 0
    stuck_tasks: int = 0
    stuck_novels: int = 0
    journal_missing: int = 0
    resets: int = 0
    #: Events a tab received again with a ``stream.reset`` between the copies (Redis lost its
    #: data; the sender writes again what it cannot tell was stored): the browser drops them
    #: by event id; counted and printed, not failed. Any other repeat is a duplicate.
    redelivered_after_reset: int = 0
    contradicted: int = 0
    refusals: Counter[str] = field(default_factory=Counter)
    notes: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    @property
    def stuck(self) -> int:
        """Tasks and novels left in progress."""
        return self.stuck_tasks + self.stuck_novels

    def line(self) -> str:
        """The printed summary of the scenario."""
        verdict = "PASS" if not self.failures else "FAIL"
        return (
            f"chaos {self.scenario}: {verdict} attempts={self.attempts} events={self.events} "
            f"lost={self.lost} duplicated={self.duplicated} leaked={self.leaked} "
            f"stuck={self.stuck} (tasks={self.stuck_tasks} novels={self.stuck_novels}) "
            f"journal_missing={self.journal_missing} resets={self.resets} "
            f"redelivered_after_reset={self.redelivered_after_reset} "
            f"contradicted={self.contradicted} "
            f"refusals={dict(self.refusals)}" + (f" notes={self.notes}" if self.notes else "")
        )

    def fail(self, message: str) -> None:
        """Record a broken invariant."""
        self.failures.append(message)


def journal_events(database_url: str) -> dict[str, set[str]]:
    """Event ids in the SQL journal, by addressed user."""
    engine = sa.create_engine(database_url)
    try:
        with engine.connect() as connection:
            rows = connection.execute(sa.text("SELECT event_id, user_id FROM sse_event_audit"))
            found: dict[str, set[str]] = {}
            for event_id, user in rows:
                found.setdefault(user, set()).add(str(event_id))
            return found
    finally:
        engine.dispose()


def stream_events(redis_url: str, users: list[str]) -> dict[str, list[dict]]:
    """Every event still in each user's Redis stream."""
    store = RedisEventStore(connect(redis_url))
    try:
        return {
            user: [
                orjson.loads(item.data)
                for item in store.read_after(user_stream(user), "0-0", 100_000)
            ]
            for user in users
        }
    finally:
        store.close()


@dataclass
class Expected:
    """What each user must see: important event ids; and every task id the user had."""

    important: dict[str, set[str]]
    tasks: dict[str, set[str]]
    journal_missing: int
    #: The important events in a stream but not in the journal: "type event_id (user)".
    missing_from_journal: list[str] = field(default_factory=list)


def expected(database_url: str, redis_url: str, tabs: list[Tab]) -> Expected:
    """The union of journal and streams, and how many important events the journal lacks."""
    users = sorted({tab.user for tab in tabs})
    journal = journal_events(database_url)
    streams = stream_events(redis_url, users)
    important: dict[str, set[str]] = {}
    tasks: dict[str, set[str]] = {}
    missing: list[str] = []
    for user in users:
        in_stream = {e["event_id"] for e in streams[user] if e.get("important")}
        absent = in_stream - journal.get(user, set())
        missing += [
            f"{e['type']} {e['event_id']} ({user})"
            for e in streams[user]
            if e["event_id"] in absent
        ]
        important[user] = in_stream | journal.get(user, set())
        seen = [e.json for tab in tabs if tab.user == user for e in tab.domain_events()]
        tasks[user] = {e["task_id"] for e in streams[user] + seen if e.get("task_id")}
    return Expected(important, tasks, len(missing), missing)


def all_delivered(tabs: list[Tab], must_see: dict[str, set[str]]) -> bool:
    """Whether every tab received every important event of its user."""
    return all(
        must_see[tab.user] <= {e.json["event_id"] for e in tab.domain_events()} for tab in tabs
    )


def check_tabs(
    counts: Counts, tabs: list[Tab], must_see: dict[str, set[str]], reset_ok: bool
) -> None:
    """Lost, duplicated and leaked events, per tab; ``stream.reset`` only where allowed."""
    for tab in tabs:
        counts.attempts += tab.attempts
        counts.refusals.update(tab.refusals)
        received = tab.domain_events()
        counts.events += len(received)
        counts.lost += len(must_see[tab.user] - {e.json["event_id"] for e in received})
        duplicated, redelivered, lines = repeats(tab.events, reset_ok)
        counts.notes += [f"{tab.user} repeat: {line}" for line in lines]
        counts.duplicated += duplicated
        counts.redelivered_after_reset += redelivered
        counts.leaked += sum(
            e.json.get("user_id") != tab.user and e.json.get("audience") != "broadcast"
            for e in received
        )
        counts.contradicted += len(contradictions(received))
        resets = [e for e in tab.events if e.event == "stream.reset"]
        counts.resets += len(resets)
        if resets and not reset_ok:
            counts.fail(f"{tab.user} got stream.reset without data loss: {resets[0].data}")
    for name, value in (
        ("lost", counts.lost),
        ("duplicated", counts.duplicated),
        ("leaked", counts.leaked),
    ):
        if value:
            counts.fail(f"{value} events {name}")
    if counts.contradicted:
        counts.fail(f"{counts.contradicted} tasks completed after being shown failed, no retrying")


def repeats(events: list[SseEvent], reset_ok: bool) -> tuple[int, int, list[str]]:
    """(duplicates, redeliveries after a reset, a line per repeat). An event id seen again on
    a tab is a duplicate, unless Redis lost its data (``reset_ok``) and a ``stream.reset`` came
    between the copies: an event the tab got live just before the loss whose push was left
    unanswered is stored again by the retry, and api.md's resume rules let the new history be
    sent after the reset (the browser drops repeats by event id). Each line says where both
    copies and the tab's resets and opens were."""
    seen_at: dict[str, tuple[int, int]] = {}
    resets_so_far = duplicated = redelivered = 0
    lines: list[str] = []
    for index, event in enumerate(events):
        if event.event == "stream.reset":
            resets_so_far += 1
            continue
        if event.event in CONTROL:
            continue
        event_id = event.json["event_id"]
        if event_id not in seen_at:
            seen_at[event_id] = (resets_so_far, index)
            continue
        resets_then, first = seen_at[event_id]
        if reset_ok and resets_then < resets_so_far:
            redelivered += 1
            seen_at[event_id] = (resets_so_far, index)
        else:
            duplicated += 1
        marks = [
            f"{i}:{e.event}"
            for i, e in enumerate(events)
            if e.event in ("stream.reset", "connection.established")
        ]
        lines.append(
            f"{event.event} {event_id} at {first} (id {events[first].id}) and {index} "
            f"(id {event.id}); marks {marks}"
        )
    return duplicated, redelivered, lines


def contradictions(received: list[SseEvent]) -> set[str]:
    """Tasks shown failed, then completed with no ``retrying`` between (the user was told it
    failed, then that it worked)."""
    failed: set[str] = set()
    contradicted: set[str] = set()
    for event in received:
        task = event.json.get("task_id")
        if event.event == "task.progress-failed":
            failed.add(task)
        elif event.event == "task.progress-retrying":
            failed.discard(task)
        elif event.event == "task.progress-completed" and task in failed:
            contradicted.add(task)
    return contradicted


def task_status(base: str, jwt: str, task_id: str) -> str:
    """The snapshot's status; ``gone`` when the API no longer knows the task (404)."""
    try:
        response = httpx.get(
            f"{base}/api/v1/tasks/{task_id}", headers={"Authorization": f"Bearer {jwt}"}, timeout=10
        )
    except httpx.HTTPError as error:
        return f"no answer ({type(error).__name__})"
    if response.status_code == 404:
        return "gone"
    if response.status_code != 200:
        return f"HTTP {response.status_code}"
    return str(response.json()["status"])


def novel_status(base: str, jwt: str, novel_id: str) -> str:
    """The novel's status as its owner reads it."""
    try:
        response = httpx.get(
            f"{base}/api/v1/novels/{novel_id}",
            headers={"Authorization": f"Bearer {jwt}"},
            timeout=10,
        )
    except httpx.HTTPError as error:
        return f"no answer ({type(error).__name__})"
    if response.status_code != 200:
        return f"HTTP {response.status_code}"
    return str(response.json()["status"])


def settle_novels(base: str, novels: dict[str, tuple[str, str]], timeout: float) -> dict[str, str]:
    """Wait until every novel (id -> (owner's jwt, title)) ended; their last statuses."""
    statuses: dict[str, str] = {}

    def ended() -> bool:
        for novel_id, (jwt, _) in novels.items():
            statuses[novel_id] = novel_status(base, jwt, novel_id)
        return all(status in TERMINAL_NOVEL for status in statuses.values())

    wait_until(ended, timeout, every=0.5)
    return statuses


def check_tasks_and_novels(
    counts: Counts,
    base: str,
    jwts: dict[str, str],
    tasks: dict[str, set[str]],
    novel_ids: dict[str, str],
) -> None:
    """No task snapshot and no novel (id -> owner) left in progress (after a short wait)."""
    task_states: dict[str, str] = {}
    novel_states: dict[str, str] = {}

    def ended() -> bool:
        for user, ids in tasks.items():
            for task_id in ids:
                task_states[task_id] = task_status(base, jwts[user], task_id)
        for novel_id, owner in novel_ids.items():
            novel_states[novel_id] = novel_status(base, jwts[owner], novel_id)
        return all(s in TERMINAL_TASK or s == "gone" for s in task_states.values()) and all(
            s in TERMINAL_NOVEL for s in novel_states.values()
        )

    wait_until(ended, 10, every=0.5)
    stuck_tasks = Counter(s for s in task_states.values() if s not in TERMINAL_TASK | {"gone"})
    stuck_novels = Counter(s for s in novel_states.values() if s not in TERMINAL_NOVEL)
    counts.stuck_tasks = sum(stuck_tasks.values())
    counts.stuck_novels = sum(stuck_novels.values())
    gone = sum(s == "gone" for s in task_states.values())
    if gone:
        counts.notes.append(f"{gone} task snapshots gone")
    if stuck_tasks:
        counts.fail(f"{counts.stuck_tasks} of {len(task_states)} tasks left {dict(stuck_tasks)}")
    if stuck_novels:
        counts.fail(f"{counts.stuck_novels} of {len(novel_ids)} novels left {dict(stuck_novels)}")


def verify(
    counts: Counts,
    base: str,
    tabs: list[Tab],
    novel_ids: dict[str, str],
    settle_seconds: float,
    database_url: str,
    redis_url: str,
    reset_ok: bool = False,
) -> None:
    """Wait up to ``settle_seconds`` for every novel to end, then check every invariant: no
    task or novel left in progress, every important event delivered to every tab once, none
    of another user, and all of them in the SQL journal."""
    jwts = {tab.user: tab.jwt for tab in tabs}
    wait_until(
        lambda: all(
            novel_status(base, jwts[owner], novel_id) in TERMINAL_NOVEL
            for novel_id, owner in novel_ids.items()
        ),
        settle_seconds,
        every=0.5,
    )
    must_see = expected(database_url, redis_url, tabs)
    check_tasks_and_novels(counts, base, jwts, must_see.tasks, novel_ids)
    must_see = expected(database_url, redis_url, tabs)
    wait_until(lambda: all_delivered(tabs, must_see.important), 15, every=0.3)
    for tab in tabs:
        tab.stop()
    check_tabs(counts, tabs, must_see.important, reset_ok)
    counts.journal_missing = must_see.journal_missing
    if must_see.journal_missing:
        named = ", ".join(must_see.missing_from_journal[:10])
        counts.fail(
            f"{must_see.journal_missing} important events never reached the SQL journal: {named}"
        )


def reset_data(tabs: list[Tab]) -> list[dict]:
    """The ``stream.reset`` messages the tabs received (parsed)."""
    return [json.loads(e.data) for tab in tabs for e in tab.events if e.event == "stream.reset"]
