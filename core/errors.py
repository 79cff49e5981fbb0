"""Errors that the CLI and the pytest plugin turn into one clear line and an exit code.

Exit codes (DESIGN.md): 0 pass, 1 gate failed / regression (only that), 2 bad input or usage, 3 internal
error (an unexpected exception: a bug). Every error raised on bad input is a ``TunegateError`` whose
message is one line naming the file and field::

    RecordError("runs/base.json: missing field 'suites'")
    SuiteError("suite 'math': unknown variant 'algebra' (known: gsm8k, organism)")
"""

from __future__ import annotations

import os
import sys
import traceback
from typing import Any, Mapping

#: Set to 1 to see the traceback behind an error line (an internal error's, exit code 3, above all).
DEBUG_ENV = "TUNEGATE_DEBUG"


class TunegateError(Exception):
    """Bad input or usage: the message is one line naming the file and field. Exit code 2."""

    exit_code = 2


class RecordError(TunegateError, ValueError):
    """A record or comparison file that cannot be read; the message names the file and field."""


class SuiteError(TunegateError, ValueError):
    """Bad suite name, option or data; the message names the suite and the file, line or field."""


class BackendError(TunegateError):
    """A backend failed part-way (its server went away, say): one line, and the results it had finished.

    ``partial`` maps the index of each finished request (in the list the backend was given) to its
    result, so the runner can cache them before the run stops:
    ``BackendError("http://127.0.0.1:8000/v1: cannot reach the server ...", partial={0: "72", 3: "18"})``.
    """

    def __init__(self, message: str, partial: Mapping[int, Any] | None = None) -> None:
        super().__init__(message)
        self.partial = dict(partial or {})


class GateFailed(Exception):
    """The gate failed (a regression or a missed target). Exit code 1."""

    exit_code = 1


def exit_code(exc: BaseException) -> int:
    """The exit code an exception ends a command with: its own (bad input 2, gate failed 1); 2 for an
    operating-system refusal (disk full, permission denied); 3 for anything else, a bug."""
    if isinstance(exc, (TunegateError, GateFailed)):
        return exc.exit_code
    return 2 if isinstance(exc, OSError) else 3


def error_line(exc: BaseException) -> str:
    """The one line an exception is shown as: ``error: ...``, or ``internal error: KeyError: 'x' (set
    TUNEGATE_DEBUG=1 for the traceback)``; the traceback itself goes to stderr only under TUNEGATE_DEBUG."""
    if os.environ.get(DEBUG_ENV, "").strip() not in ("", "0"):
        traceback.print_exception(exc, file=sys.stderr)
    if exit_code(exc) != 3:
        return f"error: {exc}"
    first = (str(exc).strip().splitlines() or [""])[0][:300]
    what = f"{type(exc).__name__}: {first}" if first else type(exc).__name__
    return f"internal error: {what} (set {DEBUG_ENV}=1 for the traceback)"
