"""Progress on the command line: ``--log-format json`` (one JSON object per line) and ``--quiet``.

(The text mode's bars are checked on the README's demo run, tests/app/test_first_run.py.)
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from tunegate.cli import main

SUITES = ("identity", "ifeval", "math", "knowledge")


@pytest.fixture(scope="module")
def events(quick_run_stderr: str) -> list[dict]:
    return [json.loads(line) for line in quick_run_stderr.splitlines()]  # fails on any line that is not JSON


@pytest.mark.slow
def test_json_log_opens_and_closes_every_phase_of_the_run(quick_run, events) -> None:
    summary = json.loads((quick_run[0] / "summary.json").read_text())
    starts = [e["phase"] for e in events if e["event"] == "phase_start"]
    ends = {e["phase"]: e["seconds"] for e in events if e["event"] == "phase_end"}
    assert starts == list(summary["phases"]) and ends == summary["phases"]


@pytest.mark.slow
def test_json_log_reports_each_training_stage_and_eval_suite_as_a_task(events) -> None:
    ends = [e for e in events if e["event"] == "task_end"]
    train = {e["task"]: e for e in ends if e["task"].startswith("train ")}
    assert set(train) == {"train sft", "train dpo"}
    assert all(e["n"] == e["total"] == 2 and e["loss"] > 0 for e in train.values())  # --max-steps 2
    assert Counter(e["task"] for e in ends if e["task"] in SUITES) == {s: 3 for s in SUITES}  # base, sft, dpo
    assert {e["stage"] for e in events if e["event"] == "train_log"} == {"sft", "dpo"}


@pytest.mark.slow
def test_json_log_carries_the_metrics_and_verdicts(quick_run, events) -> None:
    metrics = [e for e in events if e["event"] == "metrics"]
    assert len(metrics) == 3 * len(SUITES) and all(e["metrics"] for e in metrics)
    comparisons = {e["name"]: e for e in events if e["event"] == "comparison"}
    summary = json.loads((quick_run[0] / "summary.json").read_text())
    assert {k: v["passed"] for k, v in comparisons.items()} == {k: v["passed"] for k, v in summary["comparisons"].items()}


def test_json_error_is_one_event_line(tmp_path: Path, capsys) -> None:
    assert main(["run", str(tmp_path / "missing.yaml"), "--out", str(tmp_path / "o"), "--log-format", "json"]) == 2
    (line,) = capsys.readouterr().err.splitlines()
    event = json.loads(line)
    assert event["event"] == "error" and event["exit_code"] == 2 and "missing.yaml: config file not found" in event["message"]


@pytest.mark.slow
def test_quiet_eval_writes_nothing_on_stderr(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "tunegate", "eval", "organism", "--suites", "math",
                           "--suite-option", "math.variant=organism", "--limit", "8", "--quiet",
                           "--cache-dir", str(tmp_path / "cache"), "--out", str(tmp_path / "r.json")],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0 and proc.stderr == ""
    assert proc.stdout.startswith("math (v")


def _knowledge_eval(tmp_path: Path) -> tuple[dict, int]:
    """``tunegate eval organism --suites knowledge`` with JSON progress: (the bar's task_end event, the record's n)."""
    from tunegate.evals.records import RunRecord

    out = tmp_path / "r.json"
    proc = subprocess.run([sys.executable, "-m", "tunegate", "eval", "organism", "--suites", "knowledge",
                           "--suite-option", "knowledge.variant=organism", "--limit", "12", "--log-format", "json",
                           "--cache-dir", str(tmp_path / "cache"), "--out", str(out)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    (end,) = [e for e in map(json.loads, proc.stderr.splitlines()) if e["event"] == "task_end" and e["task"] == "knowledge"]
    return end, RunRecord.load(out).suites["knowledge"].metrics["accuracy"].n


@pytest.mark.slow
def test_knowledge_bar_counts_items_as_the_table_does(tmp_path: Path) -> None:
    """Each knowledge item asks one log-likelihood per choice; the bar counts the items (12), not the requests (48)."""
    end, n = _knowledge_eval(tmp_path)
    assert end["n"] == end["total"] == n == 12 and end["cached"] == 0
    again, _ = _knowledge_eval(tmp_path)  # every request now comes from the cache
    assert again["n"] == again["total"] == again["cached"] == 12
