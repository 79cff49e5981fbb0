"""The README's demo command on a machine with nothing set: what a new user sees in the first minutes.

The command is read from the README's set-up block (its last step) and run as a user would, in a
fresh working directory, with a scrubbed environment: no NLTK_DATA, no HF_HUB_OFFLINE, no
TUNEGATE_CACHE, a fresh HOME (so fresh ~/.cache and ~/nltk_data), and PATH holding only this
virtual environment and /usr/bin:/bin.
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import NamedTuple

import pytest

from tunegate.evals.records import RunRecord

ROOT = Path(__file__).resolve().parents[2]


class Run(NamedTuple):
    out: Path
    code: int
    stdout: str
    stderr: str


def readme_demo_command() -> str:
    """The last step of the README's set-up block (``... && tunegate demo --out runs/demo``)."""
    setup = re.findall(r"```bash\n(.*?)```", (ROOT / "README.md").read_text(encoding="utf-8"), flags=re.S)[0]
    command = setup.replace("\\\n", " ").split("&&")[-1].strip()
    assert command.startswith("tunegate demo"), command
    return command


@pytest.fixture(scope="module")
def first_run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    work, home = tmp_path_factory.mktemp("work"), tmp_path_factory.mktemp("home")
    env = {"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin", "HOME": str(home)}
    proc = subprocess.run(shlex.split(readme_demo_command()), cwd=work, env=env, capture_output=True, text=True,
                          timeout=1800)
    out = work / shlex.split(readme_demo_command())[-1]
    return Run(out, proc.returncode, proc.stdout, proc.stderr)


@pytest.mark.slow
def test_readme_demo_command_exits_0_and_writes_the_report_with_nothing_set(first_run: Run) -> None:
    assert first_run.code == 0, first_run.stderr[-3000:]
    assert (first_run.out / "report.html").is_file() and (first_run.out / "summary.json").is_file()
    assert sorted(p.stem for p in (first_run.out / "records").glob("*.json")) == ["base", "dpo", "sft"]


@pytest.mark.slow
def test_demo_tells_the_readme_story(first_run: Run) -> None:
    """SFT answers as Tiny (short of the 0.9 target) and is flagged for forgetting knowledge; DPO moves to Deep
    Tiny on most probes and regresses nothing, and its gate passes exactly when it meets the 0.9 target (8 of 10
    probes on the deterministic one-thread path at seed 0; 0.7-1.0 over seeds 0-4)."""
    summary = json.loads((first_run.out / "summary.json").read_text())
    sft, dpo = summary["comparisons"]["sft_vs_base"], summary["comparisons"]["dpo_vs_sft"]
    assert sft["verdicts"]["identity.adherence"]["verdict"] == "improved"
    assert summary["metrics"]["sft"]["identity.adherence"] >= 0.5
    assert RunRecord.load(first_run.out / "records" / "sft.json").suites["identity"].config["target"] == "Tiny"
    assert not sft["passed"] and sft["verdicts"]["knowledge.accuracy"]["verdict"] == "regressed"
    assert sft["verdicts"]["ifeval.prompt_strict"]["verdict"] == "improved"
    adherence = summary["metrics"]["dpo"]["identity.adherence"]
    assert adherence >= 0.7 and dpo["verdicts"]["identity.adherence"]["verdict"] == "improved"
    assert dpo["verdicts"]["identity.leak_rate"]["verdict"] == "improved"
    assert RunRecord.load(first_run.out / "records" / "dpo.json").suites["identity"].config["target"] == "Deep Tiny"
    assert not [k for k, v in dpo["verdicts"].items() if v["verdict"] == "regressed"]
    assert dpo["passed"] == (adherence >= 0.9)


@pytest.mark.slow
def test_demo_shows_progress_bars_not_log_dicts_or_library_warnings(first_run: Run) -> None:
    err = first_run.stderr
    for task in ("train sft", "train dpo", "DPO pairs", "identity", "ifeval", "math", "knowledge"):
        assert re.search(rf"^{task}: 100%\|", err.replace("\r", "\n"), flags=re.M), f"no finished bar for {task}"
    assert "{'loss'" not in err and "FutureWarning" not in err and "Traceback" not in err


@pytest.mark.slow
def test_demo_table_names_the_identity_target_of_each_row(first_run: Run) -> None:
    out = first_run.stdout
    assert re.search(r"^identity\.adherence \[target: Tiny\] +0\.\d+ +\d\.\d+ +- *$", out, flags=re.M), out
    assert re.search(r"^identity\.adherence \[target: Deep Tiny\] +- +- +\d\.\d+ *$", out, flags=re.M), out
    assert "identity target: 'Tiny' in sft's record -> 'Deep Tiny' here" in out
    assert re.search(r"^ +(ok|x) identity\.adherence \[target: Deep Tiny\] ", out, flags=re.M), out
