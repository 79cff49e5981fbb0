"""The ``tunegate`` command line.

Subcommands are registered by the modules that own them: each exposes
``register(subparsers)`` that adds its parser and sets ``func`` to a handler
``handler(args) -> int`` (the exit code). Errors become one line on stderr:
TunegateError (and the suite/record errors) exit 2, a failed gate exits 1.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import Sequence

from evals.errors import TunegateError

#: Modules that add subcommands, in the order they appear in --help.
COMMAND_MODULES = (
    "training.cli",  # demo, run, organism
    "evals.cli_evaluate",  # eval
    "evals.cli_score",  # score
    "evals.cli_compare",  # compare, history
    "reports.cli",  # report
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tunegate",
        description="Train (SFT/DPO via TRL), evaluate before and after, gate regressions, render reports.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:
                continue
            raise
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("tunegate: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # one clear line for the errors we raise on bad input
        code = _exit_code(exc)
        if code is None:
            raise
        print(f"tunegate: error: {exc}", file=sys.stderr)
        return code


def _exit_code(exc: Exception) -> int | None:
    from evals.suites.base import SuiteError
    from evals.types import RecordError

    if isinstance(exc, (TunegateError, SuiteError, RecordError)):
        return getattr(exc, "exit_code", 2)
    return getattr(exc, "exit_code", None)


if __name__ == "__main__":
    sys.exit(main())
