"""Errors that the CLI and the pytest plugin turn into one clear line and an exit code.

Exit codes (DESIGN.md): 0 pass, 1 gate failed / regression, 2 bad input or usage. Every error
raised on bad input is a ``TunegateError`` whose message is one line naming the file and field::

    RecordError("runs/base.json: missing field 'suites'")
    SuiteError("suite 'math': unknown variant 'algebra' (known: gsm8k, organism)")
"""

from __future__ import annotations

from typing import Any, Mapping


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
