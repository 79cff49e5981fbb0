"""The ``tunegate`` command line: one module per command group, each registering its subcommands.

A command module exposes ``register(subparsers)``, which adds its parsers and sets ``func`` to a
handler ``handler(args) -> int`` (the exit code). Errors become one line on stderr: a
``TunegateError`` (bad input) exits 2, a failed gate (``GateFailed``) exits 1::

    $ tunegate compare base.json broken.json
    tunegate: error: broken.json: invalid JSON at line 3 column 1 (Expecting value)     # exit 2
"""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import Sequence

from tunegate.evals.errors import GateFailed, TunegateError

#: Modules that add subcommands, in the order they appear in --help.
COMMAND_MODULES = (
    "tunegate.cli.pipeline",  # demo, run
    "tunegate.cli.evaluate",  # eval
    "tunegate.cli.score",  # score
    "tunegate.cli.compare",  # compare, history
    "tunegate.cli.report",  # report
    "tunegate.cli.organism",  # organism build
    "tunegate.cli.twin",  # twin
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tunegate",
        description="Train (SFT/DPO via TRL), evaluate before and after, gate regressions, render reports.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
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
    except (TunegateError, GateFailed) as exc:  # one clear line for bad input and for a failed gate
        print(f"tunegate: error: {exc}", file=sys.stderr)
        return exc.exit_code
