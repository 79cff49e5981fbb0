"""Errors that the CLI and the pytest plugin turn into one clear line and an exit code.

Exit codes (DESIGN.md): 0 pass, 1 gate failed / regression, 2 bad input or usage. Every error
raised on bad input is a ``TunegateError`` whose message is one line naming the file and field::

    RecordError("runs/base.json: missing field 'suites'")
    SuiteError("suite 'math': unknown variant 'algebra' (known: gsm8k, organism)")
"""

from __future__ import annotations


class TunegateError(Exception):
    """Bad input or usage: the message is one line naming the file and field. Exit code 2."""

    exit_code = 2


class RecordError(TunegateError, ValueError):
    """A record or comparison file that cannot be read; the message names the file and field."""


class SuiteError(TunegateError, ValueError):
    """Bad suite name, option or data; the message names the suite and the file, line or field."""


class GateFailed(Exception):
    """The gate failed (a regression or a missed target). Exit code 1."""

    exit_code = 1
