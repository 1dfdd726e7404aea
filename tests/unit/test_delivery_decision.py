"""The delivery decision (``api.stream.delivery.decide``): every rule, with the real authorizer and
preferences, no Redis (novel readers held in memory)."""

from __future__ import annotations

import asyncio

import pytest

from api.auth.authz import NovelMembershipAuthorizer
from api.event_meta import EventMeta
from api.preferences import DEFAULT_PREFERENCES, NotificationPreferences
from api.stream.connection import UpdatePacer
from api.stream.delivery import (
    CHECK,
    DUPLICATE,
    PACE,
    RESET,
    SEND,
    SKIP,
    Delivery,
    Verdict,
    decide,
)
from progress.cursor import StreamPosition

pytestmark = pytest.mark.unit

ME, OTHER = "u1", "u2"


class Readers:
    """Novel readers in memory: who may read which novel."""

    def __init__(self, *pairs: tuple[str, str]) -> None:
        self.pairs = set(pairs)
        self.reads = 0

    async def may_read(self, user_id: str, novel_id: str) -> bool:
        self.reads += 1
        return (user_id, novel_id) in self.pairs


def meta(
    kind: str = "task.progress-completed",
    user: str | None = ME,
    audience: str = "user",
    session: str | None = None,
    novel: str | None = None,
    level: str | None = None,
    event_id: str = "ev1",
) -> EventMeta:
    return EventMeta(
        type=kind,
        user_id=user,
        session_id=session,
        audience=audience,
        task_id="t1",
        novel_id=novel,
        level=level,
        event_id=event_id,
    )


def content(novel: str = "n1") -> EventMeta:
    """Another user's content event for ``novel``, written to my stream."""
    return meta("content.chapter-updated", user=OTHER, novel=novel)


async def verdict(
    event: EventMeta,
    authorizer: NovelMembershipAuthorizer,
    session_id: str | None = None,
) -> Verdict:
    """As the catch-up and the stream's task decide: CHECK asks the authorizer, then again."""
    first = decide(event, session_id, authorizer.known(ME, event), DEFAULT_PREFERENCES)
    if first is not CHECK:
        return first
    allowed = await authorizer.may_receive(ME, event)
    return decide(event, session_id, allowed, DEFAULT_PREFERENCES)


def allow_all() -> NovelMembershipAuthorizer:
    return NovelMembershipAuthorizer(Readers())


# -- who may see it --------------------------------------------------------------------------


def test_own_event_is_sent() -> None:
    assert asyncio.run(verdict(meta(), allow_all())) is SEND


def test_broadcast_is_sent_whoever_wrote_it() -> None:
    event = meta("system.notification", user=None, audience="broadcast", level="info")
    assert asyncio.run(verdict(event, allow_all())) is SEND


def test_session_event_goes_to_its_session_only() -> None:
    event = meta(audience="session", session="s1")
    assert asyncio.run(verdict(event, allow_all(), session_id="s1")) is SEND
    assert asyncio.run(verdict(event, allow_all(), session_id="s2")) is SKIP


def test_token_without_sid_gets_no_session_event() -> None:
    assert asyncio.run(verdict(meta(audience="session", session="s1"), allow_all())) is SKIP


def test_session_rule_comes_before_any_access_check() -> None:
    event = meta("content.chapter-updated", OTHER, audience="session", session="s1", novel="n1")
    assert decide(event, "s2", None) is SKIP  # no Redis read for what the session may not see


def test_other_users_content_event_when_the_user_reads_the_novel() -> None:
    readers = Readers((ME, "n1"))
    authorizer = NovelMembershipAuthorizer(readers)
    assert decide(content(), None, authorizer.known(ME, content())) is CHECK
    assert asyncio.run(verdict(content(), authorizer)) is SEND
    # cached: the next one is decided without I/O
    assert decide(content(), None, authorizer.known(ME, content())) is SEND
    assert readers.reads == 1


def test_other_users_content_event_denied() -> None:
    authorizer = NovelMembershipAuthorizer(Readers())
    assert asyncio.run(verdict(content(), authorizer)) is SKIP
    assert decide(content(), None, authorizer.known(ME, content())) is SKIP  # cached refusal


def test_unknown_access_asks_first() -> None:
    assert decide(content(), None, None) is CHECK


def test_other_users_non_content_event_never() -> None:
    event = meta("task.progress-completed", user=OTHER)
    authorizer = allow_all()
    assert authorizer.known(ME, event) is False
    assert decide(event, None, authorizer.known(ME, event)) is SKIP


def test_revocation_asks_again_and_stops_delivery() -> None:
    readers = Readers((ME, "n1"))
    authorizer = NovelMembershipAuthorizer(readers)
    assert asyncio.run(verdict(content(), authorizer)) is SEND
    readers.pairs.clear()
    authorizer.forget(ME, "n1")  # what the control channel's access-revoked does
    assert decide(content(), None, authorizer.known(ME, content())) is CHECK
    assert asyncio.run(verdict(content(), authorizer)) is SKIP


# -- preferences -----------------------------------------------------------------------------


def notification(level: str) -> EventMeta:
    return meta("system.notification", user=None, audience="broadcast", level=level)


def test_min_level_skips_lower_notifications() -> None:
    prefs = NotificationPreferences(min_level="warning")
    assert decide(notification("info"), None, True, prefs) is SKIP
    assert decide(notification("warning"), None, True, prefs) is SEND


def test_error_severity_counts_as_its_level() -> None:
    prefs = NotificationPreferences(min_level="warning")
    assert decide(meta("system.error", level="medium"), None, True, prefs) is SKIP
    assert decide(meta("system.error", level="high"), None, True, prefs) is SEND


def test_muted_types_are_skipped() -> None:
    prefs = NotificationPreferences(muted_types=["task.progress-completed"])
    assert decide(meta(), None, True, prefs) is SKIP
    assert decide(meta("task.progress-failed"), None, True, prefs) is SEND


def test_critical_always_goes_through() -> None:
    prefs = NotificationPreferences(min_level="critical", muted_types=["system.notification"])
    assert decide(notification("critical"), None, True, prefs) is SEND
    assert decide(meta("system.error", level="critical"), None, True, prefs) is SEND
    assert decide(notification("warning"), None, True, prefs) is SKIP


def test_no_preferences_where_they_do_not_apply() -> None:
    """``/events/history`` passes none: nothing is muted there."""
    assert decide(notification("info"), None, True, None) is SEND


def test_muted_event_is_skipped_before_any_access_check() -> None:
    prefs = NotificationPreferences(muted_types=["content.chapter-updated"])
    assert decide(content(), None, None, prefs) is SKIP


# -- pacing ----------------------------------------------------------------------------------


def test_pacing_holds_only_progress_updates() -> None:
    update = meta("task.progress-updated")
    assert decide(update, None, True, None, frozenset(), True) is PACE
    assert decide(update, None, True, None, frozenset(), False) is SEND
    for kind in ("task.progress-started", "task.progress-completed", "task.progress-failed"):
        assert decide(meta(kind), None, True, None, frozenset(), True) is SEND


def test_pacing_never_sends_what_may_not_be_seen() -> None:
    update = meta("task.progress-updated", user=OTHER)
    assert decide(update, None, False, None, frozenset(), True) is SKIP


def test_terminal_event_goes_out_after_its_tasks_held_update() -> None:
    """PACE and SEND as the connection applies them with its pacer."""
    pacer = UpdatePacer(5.0)
    updates = [_delivery("task.progress-updated", n) for n in (1, 2)]
    done = _delivery("task.progress-completed", 3)
    for item in updates:
        assert decide(item.meta, None, True, None, frozenset(), True) is PACE
    assert pacer.admit(updates[0], now=0.0)
    assert not pacer.admit(updates[1], now=0.1)  # held
    assert decide(done.meta, None, True, None, frozenset(), True) is SEND
    held = pacer.take(done)
    assert held is updates[1]  # flushed just before the terminal event


# -- the cursor: duplicates and epoch changes ------------------------------------------------


AT = StreamPosition("e1", "100-0")


def live(event: EventMeta, epoch: str, stream_id: str, position: StreamPosition | None) -> Verdict:
    return decide(event, None, True, None, frozenset(), False, position, epoch, stream_id)


def test_ids_at_or_below_the_cursor_are_duplicates() -> None:
    assert live(meta(), "e1", "100-0", AT) is DUPLICATE
    assert live(meta(), "e1", "99-5", AT) is DUPLICATE
    assert live(meta(), "e1", "100-1", AT) is SEND


def test_stream_new_to_the_cursor_takes_everything() -> None:
    assert live(meta(), "e1", "1-0", None) is SEND


def test_epoch_change_resets() -> None:
    assert live(meta(), "e2", "1-0", AT) is RESET
    assert live(meta(), "e2", "500-0", AT) is RESET


def test_events_sent_from_the_archive_are_duplicates() -> None:
    sent = frozenset({"ev1"})
    assert decide(meta(event_id="ev1"), None, True, None, sent) is DUPLICATE
    assert decide(meta(event_id="ev2"), None, True, None, sent) is SEND
    # also when the stream's epoch changed meanwhile: it was delivered all the same
    assert decide(meta(), None, True, None, sent, False, AT, "e2", "1-0") is DUPLICATE


def test_duplicates_are_decided_before_access() -> None:
    assert decide(content(), None, None, None, frozenset(), False, AT, "e1", "50-0") is DUPLICATE


def test_verdict_constants_are_the_enum_members() -> None:
    assert [DUPLICATE, SKIP, SEND, PACE, CHECK, RESET] == list(Verdict)


def _delivery(kind: str, n: int) -> Delivery:
    return Delivery("u:u1", "e1", f"{n}-0", meta(kind), b"{}")
