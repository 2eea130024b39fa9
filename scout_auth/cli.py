"""The ``scout-auth`` command line.

    scout-auth check [TOKEN]   # offline format + checksum check (reads stdin without TOKEN)
    scout-auth regex           # the secret-scanner regex for scout_sk_ tokens
    scout-auth version

The token is never echoed back: ``check`` prints only the public key id.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from . import __version__
from ._tokens import TOKEN_REGEX, parse_token

__all__ = ["main"]


def _check(token: str | None) -> int:
    if token is None:
        token = sys.stdin.readline()
    parsed = parse_token(token.strip())
    if parsed is None:
        print("invalid: not a well-formed scout_sk_ token (format or checksum)", file=sys.stderr)
        return 1
    print(f"well-formed token for key id {parsed.key_id}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    parser = argparse.ArgumentParser(prog="scout-auth", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    check = sub.add_parser("check", help="check a token's format and checksum offline")
    check.add_argument("token", nargs="?", help="the token (default: read from stdin)")
    sub.add_parser("regex", help="print the regex secret scanners can use")
    sub.add_parser("version", help="print the version")
    args = parser.parse_args(argv)
    if args.command == "check":
        return _check(args.token)
    if args.command == "regex":
        print(TOKEN_REGEX)
        return 0
    print(__version__)
    return 0


if __name__ == "__main__":
    sys.exit(main())
