"""Mint a development JWT: ``python -m api.devtoken USER [--session S] [--ttl SECONDS]``."""

from __future__ import annotations

import argparse
import sys

from api.auth.tokens import mint_jwt
from api.settings import ApiSettings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("user_id")
    parser.add_argument("--session", default=None)
    parser.add_argument("--ttl", type=int, default=3600)
    parser.add_argument("--role", action="append", default=[])
    options = parser.parse_args(argv)
    token = mint_jwt(
        ApiSettings().jwt_secret,
        options.user_id,
        options.session,
        options.ttl,
        tuple(options.role),
    )
    sys.stdout.write(token + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
