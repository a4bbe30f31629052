"""The ``mixopt`` command line: thin verbs that parse, validate and call into the library.

Each verb lives in a module of :mod:`mixopt.commands` with a ``register(subparsers)`` function; the
module's handler takes the parsed ``argparse.Namespace`` and returns an exit code. A
:class:`~mixopt.errors.MixoptError` becomes ``error: <one line>`` on stderr and exit status 2; so does an
``OSError`` the verbs did not anticipate (a path that is a file, a full disk, no permission), naming the
path (``-v`` shows its traceback).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from mixopt.errors import MixoptError

__all__ = ["build_parser", "main"]

# Order here is the order in `mixopt --help`.
_COMMAND_MODULES = [
    "mixopt.commands.data",  # demo-data, prepare, plan
    "mixopt.commands.search",  # search, status, report, propose, ui
    "mixopt.commands.fit",  # fit
    "mixopt.commands.replay",  # replay
    "mixopt.commands.service",  # submit, logs
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mixopt",
        description="Data-mixture optimisation for LM pretraining: proxy search, surrogates, online mixing.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in _COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s"
    )
    if not getattr(args, "handler", None):
        parser.print_help()
        return 0
    try:
        return int(args.handler(args) or 0)
    except MixoptError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        if args.verbose:
            raise
        where = f"{e.filename}: " if e.filename else ""
        print(f"error: {where}{e.strerror or e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
