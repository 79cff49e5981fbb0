"""Errors that the CLI turns into one clear line and an exit code.

Exit codes (DESIGN.md): 0 pass, 1 gate failed / regression, 2 bad input or usage.
"""

from __future__ import annotations


class TunegateError(Exception):
    """Bad input or usage: the message is one line naming the file and field. Exit code 2."""

    exit_code = 2


class GateFailed(Exception):
    """The gate failed (a regression or a missed target). Exit code 1."""

    exit_code = 1
