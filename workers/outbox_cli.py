"""Operator commands for the outbox and audit log (settings from the environment)::

    python -m workers.outbox_cli list-failed [--limit N]
    python -m workers.outbox_cli resend ID [ID ...]
    python -m workers.outbox_cli resend-all           # every failed row
    python -m workers.outbox_cli dispatch             # what the beat dispatcher does, now
    python -m workers.outbox_cli rotate-keys          # re-seal under the newest key
    python -m workers.outbox_cli purge                # what the retention task does, now

Output is one JSON document on stdout.
"""

from __future__ import annotations

import argparse
import sys
from datetime import timedelta
from typing import Any

import orjson

from progress.outbox import dispatch_pending, drain_spill, resend
from progress.sql import utcnow_naive
from workers import resources


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m workers.outbox_cli")
    commands = parser.add_subparsers(dest="command", required=True)
    listing = commands.add_parser("list-failed", help="failed pushes, newest first")
    listing.add_argument("--limit", type=int, default=100)
    one = commands.add_parser("resend", help="push these audit rows again")
    one.add_argument("ids", type=int, nargs="+")
    commands.add_parser("resend-all", help="push every failed row again")
    commands.add_parser(
        "dispatch",
        help="write the journal spill, then push rows still pending or failed (attempts left)",
    )
    commands.add_parser("rotate-keys", help="re-seal sensitive fields under the newest key")
    commands.add_parser("purge", help="delete rows older than the retention")
    return parser


def run(argv: list[str]) -> dict[str, Any]:
    """Run one command; its result as a JSON-ready dict."""
    args = _parser().parse_args(argv)
    audit, store, current = resources.audit_log(), resources.progress_store(), resources.settings()
    if args.command == "list-failed":
        return {"failed": [row.summary() for row in audit.recent("failed", None, args.limit)]}
    if args.command == "resend":
        return {"resent": resend(audit, store, args.ids)}
    if args.command == "resend-all":
        return {"resent": resend(audit, store)}
    if args.command == "dispatch":
        grace, attempts = current.outbox_grace_seconds, current.outbox_max_attempts
        drained = drain_spill(resources.journal_spill(), audit)
        return {"drained": drained, "pushed": dispatch_pending(audit, store, grace, attempts)}
    if args.command == "rotate-keys":
        return {"rotated": audit.rotate_keys()}
    cutoff = utcnow_naive() - timedelta(days=current.audit_retention_days)
    return {"deleted": audit.delete_before(cutoff, current.audit_delete_batch)}


def main() -> None:
    """Entry point: print the result, exit 0."""
    try:
        sys.stdout.write(orjson.dumps(run(sys.argv[1:]), option=orjson.OPT_INDENT_2).decode())
        sys.stdout.write("\n")
    finally:
        resources.close()


if __name__ == "__main__":
    main()
