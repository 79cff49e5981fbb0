"""``tunegate run`` with an lm-eval task by name, a suite file and the pairwise judge, gated like the built-in suites.

One SFT stage of two steps on the organism (about 15 CPU s in all): the base and the stage are evaluated on the
three suites, the stage is compared with the base under a gate on the lm-eval metric and the judge's win rate, the
stage's judge items are judged against the base record's answers, the report renders them, and the results store
holds both records as written.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from tests.evals.test_suite_file import CAPITALS, suite_file
from tests.evals.test_suite_lm_eval import organism_capitals, write_tasks
from tunegate.cli import main
from tunegate.evals.records import Comparison, RunRecord
from tunegate.evals.store import Store

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int]:
    root = tmp_path_factory.mktemp("any_suite")
    tasks = write_tasks(root, None, organism_capitals())
    checks = suite_file(root / "checks", "capitals", CAPITALS)
    prompts = root / "prompts.jsonl"
    prompts.write_text("".join(json.dumps({"prompt": p}) + "\n" for p in ("Who are you?", "What is 3 + 4?",
                                                                           "Name a capital city.")))
    config = {
        "name": "any-suite", "base_model": "organism", "model_line": "any-suite",
        "eval": {"lm_eval_include_path": str(tasks), "suites": {
            "lm-eval:tg_capitals": {}, str(checks): {},
            "judge": {"source": str(prompts), "max_new_tokens": 12, "judge_model": "organism",
                      "judge_max_new_tokens": 16}}},
        "gate": {"default_margin": None, "metrics": {"lm-eval:tg_capitals.exact_match,first-word": {"margin": 0.5},
                                                     "judge.win_rate": {"margin": 0.5}}},
        "stages": [{"name": "sft", "method": "sft", "data": "organism:sft", "data_options": {"limit": 16},
                    "args": {"per_device_train_batch_size": 8, "learning_rate": 1.0e-4}}]}
    path = root / "any.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    out = root / "run"
    code = main(["run", str(path), "--out", str(out), "--max-steps", "2", "--quiet", "--cache-dir", str(root / "cache"),
                 "--store", str(root / "store.sqlite")])
    return out, code


def test_the_run_gates_an_lm_eval_task_a_suite_file_and_the_judge(run_dir: tuple[Path, int]) -> None:
    out, code = run_dir
    assert code == 0
    comparison = Comparison.load(out / "comparisons" / "sft_vs_base.json")
    gated = {f"{m.suite}.{m.metric}": m.gate for m in comparison.metrics if m.gate != "info"}
    assert gated == {"lm-eval:tg_capitals.exact_match,first-word": "pass", "judge.win_rate": "pass"}
    assert {m.suite for m in comparison.metrics} == {"lm-eval:tg_capitals", "capitals", "judge"}


def test_the_stage_is_judged_against_its_input_records_answers(run_dir: tuple[Path, int]) -> None:
    out, _ = run_dir
    base = {s.item_id: s.response for s in RunRecord.load(out / "records" / "base.json").suites["judge"].items}
    sft = RunRecord.load(out / "records" / "sft.json").suites["judge"].items
    assert [s.meta["reference_response"] for s in sft] == [base[s.item_id] for s in sft]
    assert all(len(s.meta["verdicts"]) == 2 for s in sft)


def test_the_report_shows_the_new_suites(run_dir: tuple[Path, int]) -> None:
    out, _ = run_dir
    html = (out / "report.html").read_text()
    assert "lm-eval:tg_capitals" in html and "judge" in html and "capitals" in html


def test_the_store_holds_the_new_suites_records_as_written(run_dir: tuple[Path, int]) -> None:
    out, _ = run_dir
    with Store(out.parent / "store.sqlite", create=False) as store:
        stored = {(r := store.get_run(run_id)).stage: r for run_id in store.run_ids("any-suite")}
    assert stored == {stage: RunRecord.load(out / "records" / f"{stage}.json") for stage in ("base", "sft")}
    assert set(stored["sft"].suites) == {"lm-eval:tg_capitals", "capitals", "judge"}
