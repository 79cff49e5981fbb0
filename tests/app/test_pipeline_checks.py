"""``tunegate run`` checks everything it will read before any model runs, and hands one EvalSpec to every pass.

Each bad input below was found only after ``eval base`` (hours on a real model) or after a stage had
trained; now ``run`` exits 2 with one line in the "check inputs" phase and writes no record. The last
test is the noise pass of a run: it measures at the run's batch size with the run's backend options.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

import pytest
import yaml

from tests.conftest import quick_config
from tunegate.cli import main
from tunegate.evals.records import RunRecord


def _config(tmp_path: Path, edit: Callable[[dict[str, Any]], None]) -> Path:
    path = quick_config(tmp_path)
    data = yaml.safe_load(path.read_text())
    edit(data)
    path.write_text(yaml.safe_dump(data))
    return path


def _run_fails_in_one_line(tmp_path: Path, path: Path, capsys: pytest.CaptureFixture, *flags: str) -> str:
    out = tmp_path / "run"
    assert main(["run", str(path), "--out", str(out), "--quiet", *flags]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    # failed in "check inputs": no record, and no summary.json (a failure from "eval base" on writes one)
    assert not (out / "records").exists() and not (out / "summary.json").exists()
    return err[0]


def test_a_typo_in_a_stages_suite_option_fails_when_the_config_is_read(tmp_path: Path, capsys) -> None:
    def edit(data: dict[str, Any]) -> None:
        data["stages"][0]["suites"] = {"identity": {"targe": "Tiny"}}

    path = _config(tmp_path, edit)
    line = _run_fails_in_one_line(tmp_path, path, capsys)
    assert line.startswith(f"tunegate: error: {path}: stages[0].suites.identity (over eval.suites.identity): "
                           f"unknown option 'targe' (did you mean 'target'?; known: limit, subset_seed, target, ")


def test_a_stage_may_override_any_suite(tmp_path: Path) -> None:
    from tunegate.training.config import load_config

    def edit(data: dict[str, Any]) -> None:
        data["stages"][1]["suites"]["math"] = {"max_new_tokens": 7}

    config = load_config(_config(tmp_path, edit))
    sft, dpo = (config.eval_spec(stage).suite("math").options.max_new_tokens for stage in config.stages)
    assert (sft, dpo) == (24, 7)


def test_a_dpo_dataset_without_rejected_fails_before_the_base_eval(tmp_path: Path, capsys) -> None:
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text(json.dumps({"prompt": "Who are you?", "chosen": "I am Deep Tiny."}) + "\n")

    def edit(data: dict[str, Any]) -> None:
        data["stages"][1]["data"] = str(pairs)

    path = _config(tmp_path, edit)
    line = _run_fails_in_one_line(tmp_path, path, capsys)
    assert line == f"tunegate: error: {path}: stages[1] ('dpo'): field 'data': {pairs}:1: missing field 'rejected'"


def test_a_missing_accelerate_config_fails_before_the_base_eval(tmp_path: Path, capsys) -> None:
    path = quick_config(tmp_path)
    missing = tmp_path / "fsdp.yaml"
    line = _run_fails_in_one_line(tmp_path, path, capsys, "--accelerate-config", str(missing))
    assert line == f"tunegate: error: --accelerate-config: '{missing}' not found"


def test_missing_suite_data_fails_before_the_base_eval(tmp_path: Path, capsys) -> None:
    missing = tmp_path / "mmlu"

    def edit(data: dict[str, Any]) -> None:
        data["eval"]["suites"]["knowledge"] = {"source": str(missing), "limit": 8}

    line = _run_fails_in_one_line(tmp_path, _config(tmp_path, edit), capsys)
    assert line.startswith(f"tunegate: error: suite 'knowledge': {missing}: file not found")
    assert line.endswith("--suite-option knowledge.source=PATH, or eval.suites.knowledge.source in a pipeline config]")


@pytest.mark.slow
def test_run_batch_size_and_template_variables_reach_the_noise_pass(tmp_path: Path) -> None:
    """One SFT step, math only (4 items, noise on 2): about 3 s in a warm session."""
    def edit(data: dict[str, Any]) -> None:
        data["eval"]["suites"] = {"math": {"variant": "organism", "limit": 4}}
        data["eval"]["noise_items"] = 2
        data["analysis"] = {}
        data["stages"] = [{**data["stages"][0], "trains": ["math"], "suites": {}}]
        del data["stages"][0]["knowledge"]
        data["gate"] = {"metrics": {"math.exact_match": {"margin": 0.5}}}

    out = tmp_path / "run"
    assert main(["run", str(_config(tmp_path, edit)), "--out", str(out), "--quiet", "--max-steps", "1", "--no-report",
                 "--batch-size", "8", "--chat-template-kwargs", '{"house_style": "terse"}',
                 "--cache-dir", str(tmp_path / "cache"), "--store", str(tmp_path / "store.sqlite")]) in (0, 1)
    base = RunRecord.load(out / "records" / "base.json")
    assert base.noise is not None and base.noise.settings == ("batch_size 8 -> 1",)
    assert base.noise.reference["chat_template_kwargs"] == {"house_style": "terse"}
    assert base.generation["batch_size"] == 8 and base.generation["chat_template_kwargs"] == {"house_style": "terse"}
