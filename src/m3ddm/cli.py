"""The `m3ddm` command: a thin front that parses arguments and hands over to one module per subcommand.

Each subcommand lives in ``m3ddm.commands.<name>`` and exposes ``register(subparsers)``, which adds its
parser and sets ``func`` (called with the parsed namespace, returning an exit code). User mistakes raise
``m3ddm.errors.UserError``; they become one line on stderr and exit code 2, never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from m3ddm import __version__
from m3ddm.errors import UserError

SUBCOMMANDS = ("outpaint", "plan", "train", "evaluate", "score", "bench", "app")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="m3ddm", description="Video outpainting with M3DDM.")
    parser.add_argument("--version", action="version", version=f"m3ddm {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in SUBCOMMANDS:
        importlib.import_module(f"m3ddm.commands.{name}").register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except UserError as exc:
        print(f"m3ddm {args.command}: error: {exc}", file=sys.stderr)
        return UserError.exit_code
    except KeyboardInterrupt:
        print(f"m3ddm {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
