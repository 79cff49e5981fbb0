"""``tunegate --help`` imports no model library, and ``tunegate eval --help`` lists every suite's options.

The help screens are built from the declarations (each suite's options dataclass, ``BackendOptions``),
so they import the declaring modules only: torch, transformers, datasets, lm-eval and TRL load when a
command runs, not for its help. Checked by the modules a fresh interpreter holds after printing the help
(no timing: a busy machine would make a timed test flaky).
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys

import pytest

from tunegate.cli import main
from tunegate.evals.suites import SuiteOptions, suite_names, variants

HEAVY = ("torch", "transformers", "datasets", "lm_eval", "trl", "peft", "scipy", "matplotlib")
PROBE = """
import json, sys
from tunegate.cli import main
try:
    main(sys.argv[1:])
except SystemExit:
    pass
print(json.dumps(sorted(m for m in {heavy} if m in sys.modules)), file=sys.stderr)
"""


@pytest.mark.parametrize("argv", [["--help"], ["eval", "--help"], ["run", "--help"], ["noise", "--help"]],
                         ids=lambda a: " ".join(a))
def test_help_imports_no_model_library(argv: list[str]) -> None:
    proc = subprocess.run([sys.executable, "-c", PROBE.format(heavy=HEAVY), *argv], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "usage: tunegate" in proc.stdout
    assert json.loads(proc.stderr.strip().splitlines()[-1]) == []


def test_eval_help_lists_every_suite_with_each_option_and_its_default(capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit):
        main(["eval", "--help"])
    text = capsys.readouterr().out
    common = {f.name for f in dataclasses.fields(SuiteOptions)}
    for name in suite_names():
        for variant, cls in variants(name).classes.items():
            head = next(i for i, line in enumerate(text.splitlines())
                        if line.startswith(f"{name}:") or line.startswith(f"{name} variant={variant}"))
            block = "\n".join(text.splitlines()[head + 1:])
            for f in dataclasses.fields(cls.Options):
                if f.name not in common:
                    default = json.dumps(f.default, default=lambda v: v.given())  # BackendOptions: the fields set
                    assert f"    {f.name} (default: {default})" in block, (name, variant, f.name)
    assert "limit (default: null)" in text and "math variant=gsm8k (the default)" in text


def test_limit_means_the_same_in_every_help(capsys: pytest.CaptureFixture) -> None:
    from tunegate.evals.spec import LIMIT_HELP

    for command in ("eval", "noise", "run"):
        with pytest.raises(SystemExit):
            main([command, "--help"])
        assert " ".join(LIMIT_HELP.split()) in " ".join(capsys.readouterr().out.split()), command
