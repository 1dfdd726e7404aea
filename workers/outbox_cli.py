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
from typing import Any

import orjson

from progress.outbox import resend
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
    journaling = resources.journaling()
    audit, store = journaling.audit_log(), journaling.store()
    if args.command == "list-failed":
        return {"failed": [row.summary() for row in audit.recent("failed", None, args.limit)]}
    if args.command == "resend":
        return {"resent": resend(audit, store, args.ids)}
    if args.command == "resend-all":
        return {"resent": resend(audit, store)}
    if args.command == "dispatch":
        return journaling.dispatch()
    if args.command == "rotate-keys":
        return {"rotated": audit.rotate_keys()}
    return journaling.retain()


def main() -> None:
    """Entry point: print the result, exit 0."""
    try:
        sys.stdout.write(orjson.dumps(run(sys.argv[1:]), option=orjson.OPT_INDENT_2).decode())
        sys.stdout.write("\n")
    finally:
        resources.close()


if __name__ == "__main__":
    main()
