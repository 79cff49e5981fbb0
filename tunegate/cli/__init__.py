"""The ``tunegate`` command line: one module per command group, each registering its subcommands.

A command module exposes ``register(subparsers)``, which adds its parsers and sets ``func`` to a
handler ``handler(args) -> int`` (the exit code). Errors become one line on stderr: a
``TunegateError`` (bad input) exits 2, a failed gate (``GateFailed``) exits 1 and nothing else does;
an operating-system error (disk full, permission denied) exits 2; anything unexpected is an internal
error, exit 3, its traceback shown only with ``TUNEGATE_DEBUG=1``::

    $ tunegate compare base.json broken.json
    tunegate: error: broken.json: invalid JSON at line 3 column 1 (Expecting value)     # exit 2
    $ tunegate eval organism --out r.json ...
    tunegate: internal error: KeyError: 'x' (set TUNEGATE_DEBUG=1 for the traceback)  # exit 3
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import sys
import warnings
from typing import Any, Iterator, Sequence

from tunegate.core import progress
from tunegate.core.errors import error_line, exit_code

#: Modules that add subcommands, in the order they appear in --help.
COMMAND_MODULES = (
    "tunegate.cli.pipeline",  # demo, run
    "tunegate.cli.evaluate",  # eval
    "tunegate.cli.score",  # score
    "tunegate.cli.compare",  # compare
    "tunegate.cli.store",  # store add|bless|list, history
    "tunegate.cli.report",  # report
    "tunegate.cli.noise",  # noise
    "tunegate.cli.plan",  # plan
    "tunegate.cli.organism",  # organism build
    "tunegate.cli.analyze",  # analyze shift, analyze knowledge
    "tunegate.cli.twin",  # twin
    "tunegate.cli.models",  # models fetch|list
    "tunegate.cli.data",  # data fetch
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


def add_output_options(p: argparse.ArgumentParser) -> None:
    """``--quiet`` and ``--log-format`` for a command that shows progress (see tunegate.core.progress)."""
    p.add_argument("--quiet", action="store_true", help="no progress bars or phase lines (warnings and errors only)")
    p.add_argument("--log-format", choices=("text", "json"), default="text",
                   help="text: progress bars for people (default); json: one JSON object per line on stderr "
                        "(phase start/end, progress, metrics) for CI logs")


@contextlib.contextmanager
def output(args: argparse.Namespace) -> Iterator[None]:
    """The command's output settings: progress mode, library bars off, library FutureWarnings hidden.

    This is the one place warnings are filtered: library code stays untouched, and a script that
    imports tunegate sees every warning.
    """
    mode = "quiet" if getattr(args, "quiet", False) else getattr(args, "log_format", "text")
    before = os.environ.get(progress.ENV)
    progress.configure(mode)
    _library_bars_off()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=FutureWarning)
        if mode == "json":
            warnings.showwarning = _warning_as_event
        try:
            yield
        finally:
            if before is None:
                os.environ.pop(progress.ENV, None)
            else:
                os.environ[progress.ENV] = before


def _library_bars_off() -> None:
    """The libraries' own bars (weight loading, dataset tokenizing) would interleave with ours: off.

    Environment variables for libraries not imported yet (and for child processes), their switches
    for those already imported.
    """
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")
    for module, switch in (("huggingface_hub.utils", "disable_progress_bars"),
                           ("transformers.utils.logging", "disable_progress_bar"),
                           ("datasets.utils.tqdm", "disable_progress_bars")):
        if module in sys.modules:
            getattr(sys.modules[module], switch)()


def _warning_as_event(message: Any, category: type, filename: str, lineno: int, *_: Any) -> None:
    progress.emit("warning", message=str(message), category=category.__name__, where=f"{filename}:{lineno}")


def _error(line: str, message: str, exit_code: int) -> None:
    """``tunegate: <line>`` on stderr, or an ``error`` event in json mode."""
    if progress.mode() == "json":
        progress.emit("error", message=message, exit_code=exit_code)
    else:
        print(f"tunegate: {line}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    try:
        parser = build_parser()
    except Exception as exc:  # noqa: BLE001 - a command module that cannot load: one line, exit 3 (never 1)
        print(f"tunegate: {error_line(exc)}", file=sys.stderr)
        return exit_code(exc)
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    with output(args):
        try:
            return int(args.func(args) or 0)
        except KeyboardInterrupt:
            _error("interrupted", "interrupted", 130)
            return 130
        except Exception as exc:  # noqa: BLE001 - one line each: bad input 2, gate 1, OS refusal 2, a bug 3 (never 1)
            code, line = exit_code(exc), error_line(exc)
            _error(line, line.removeprefix("error: "), code)
            return code
