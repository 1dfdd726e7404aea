"""Send a system notification or error from the command line (same events as the endpoint).

    python -m api.notify_cli info "Maintenance at 22:00 UTC" [--action "Save your work"]
    python -m api.notify_cli critical "Writing is paused" --user u1 --user u2
    python -m api.notify_cli warning "Your session ends soon" --user u1 --session s1
    python -m api.notify_cli --error high "Generation is slow" --scope "chapter generation"

Journals the events in the audit table of ``DATABASE_URL`` (the outbox), then writes them to the
Redis in ``REDIS_URL`` with the key prefix in ``PROGRESS_KEY_PREFIX``. When the journal cannot
be written nothing is sent (exit status 1): running the command again sends it once.
"""

from __future__ import annotations

import argparse
import sys

from pydantic import ValidationError

from api.notifications import (
    ErrorRequest,
    NotificationRequest,
    Target,
    TargetAudience,
    build_events,
)
from workers import contracts


def parse(argv: list[str]) -> NotificationRequest | ErrorRequest:
    """The request the arguments describe; SystemExit(2) with the reason when invalid."""
    parser = argparse.ArgumentParser(prog="python -m api.notify_cli", description=__doc__)
    parser.add_argument("level", help="info|warning|critical (with --error: low..critical)")
    parser.add_argument("message")
    parser.add_argument("--error", action="store_true", help="send system.error")
    parser.add_argument("--scope", help="affected scope (system.error)")
    parser.add_argument("--action", help="suggested action (a link when it holds a URL)")
    parser.add_argument("--user", action="append", default=[], help="recipient (repeatable)")
    parser.add_argument("--session", help="only this session of the one --user")
    args = parser.parse_args(argv)
    audience: TargetAudience = "session" if args.session else "users" if args.user else "everyone"
    try:
        target = Target(audience=audience, user_ids=args.user, session_id=args.session)
        if args.error:
            return ErrorRequest(
                severity=args.level,
                message=args.message,
                affected_scope=args.scope or "platform",
                suggested_action=args.action,
                target=target,
            )
        return NotificationRequest(
            level=args.level, message=args.message, suggested_action=args.action, target=target
        )
    except ValidationError as exc:
        parser.error(str(exc))
        raise


def main(argv: list[str] | None = None) -> int:
    """Store and push the events; print their ids."""
    request = parse(sys.argv[1:] if argv is None else argv)
    events = build_events(request)
    try:
        # Journal first: if the database is down, nothing is sent and running it again is safe.
        contracts.send_journaled([(event, ()) for event in events])
    finally:
        contracts.close()
    for event in events:
        sys.stdout.write(f"{event.type} {event.event_id}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
