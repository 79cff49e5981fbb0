"""constraints.txt pins the whole stack CI tested, and the README's install uses it.

A fresh machine must install what CI tested, not the newest releases of the day (transformers 5.25 once
broke a test on a fresh install while CI's cached stack passed); ``.ci/latest`` is where new releases are
tried.
"""

from __future__ import annotations

import re
import tomllib
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~\[; ]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def _pins() -> dict[str, str]:
    lines = (ROOT / "constraints.txt").read_text().splitlines()
    return {_name(line): line.split("==", 1)[1] for line in lines if line and not line.startswith("#")}


def test_every_line_of_constraints_is_an_exact_pin() -> None:
    lines = [line for line in (ROOT / "constraints.txt").read_text().splitlines() if line and not line.startswith("#")]
    assert lines and all(re.fullmatch(r"[A-Za-z0-9_.\-]+==[A-Za-z0-9_.\-]+", line) for line in lines), lines


def test_every_direct_dependency_and_dev_extra_is_pinned() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = {_name(r) for r in project["dependencies"] + project["optional-dependencies"]["dev"]}
    assert not wanted - set(_pins()), f"not pinned in constraints.txt: {sorted(wanted - set(_pins()))}"


def test_installed_stack_is_the_pinned_one() -> None:
    """The packages tunegate imports are installed at the pinned versions (what `.ci/run` installs)."""
    pins = _pins()
    for name in ("torch", "transformers", "trl", "datasets", "accelerate", "peft", "lm-eval"):
        assert metadata.version(name).split("+")[0] == pins[name], name


def test_readme_install_and_ci_use_the_constraints() -> None:
    readme = (ROOT / "README.md").read_text()
    assert "pip install -c constraints.txt -e '.[dev]'" in readme
    assert "-c constraints.txt -e '.[dev]'" in (ROOT / ".ci" / "run").read_text()
