"""Every command the README and docs/ show is one tunegate accepts.

Each ``tunegate ...`` line of a ``bash`` block (continuations joined, ``&&`` chains split, comments dropped) is
parsed by tunegate's own argument parser, and each ``pytest ... --gate-*`` line's flags by the plugin's own
options, so a renamed command or flag fails here instead of on a reader's machine. The quickstart's commands
are also run, end to end, in tests/app/test_quickstart.py.
"""

from __future__ import annotations

import contextlib
import io
import re
import shlex
from pathlib import Path

import pytest

from tunegate.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def bash_commands(text: str) -> list[list[str]]:
    """The commands of a page's ``bash`` blocks, as argv lists."""
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S):
        for line in block.replace("\\\n", " ").splitlines():
            for part in re.split(r"\s(?:&&|;)\s", line):
                words = shlex.split(part, comments=True)
                if words:
                    commands.append(words)
    return commands


def documented(program: str) -> list[tuple[str, list[str]]]:
    return [(f"{page.relative_to(ROOT)}: {shlex.join(argv)}", argv) for page in PAGES
            for argv in bash_commands(page.read_text(encoding="utf-8")) if argv[0] == program]


def test_the_pages_show_commands() -> None:
    assert len(documented("tunegate")) >= 30 and documented("pytest")
    assert bash_commands("```bash\ntunegate eval m \\\n  --out r.json  # why\na && b\n```") == [
        ["tunegate", "eval", "m", "--out", "r.json"], ["a"], ["b"]]


@pytest.mark.parametrize("where, argv", documented("tunegate"), ids=lambda v: v if isinstance(v, str) else "")
def test_every_tunegate_command_shown_parses(where: str, argv: list[str]) -> None:
    stderr = io.StringIO()
    with contextlib.redirect_stderr(stderr):
        try:
            build_parser().parse_args(argv[1:])
        except SystemExit as exc:
            pytest.fail(f"{where}\n{stderr.getvalue()}(exit {exc.code})")


def plugin_options() -> set[str]:
    from tunegate import pytest_plugin

    parser = pytest.Parser()
    pytest_plugin.pytest_addoption(parser)
    return {name for option in parser.getgroup("tunegate").options for name in option.names()}


@pytest.mark.parametrize("where, argv", documented("pytest"), ids=lambda v: v if isinstance(v, str) else "")
def test_every_plugin_flag_shown_is_the_plugins(where: str, argv: list[str]) -> None:
    flags = {word.split("=")[0] for word in argv if word.startswith("--gate")}
    assert flags <= plugin_options(), f"{where}: unknown {sorted(flags - plugin_options())}"
