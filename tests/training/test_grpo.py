"""GRPO (and RLOO) stages through ``tunegate run`` on the organism: prompts from a suite, rewarded by its scorer.

The small runs train 2 steps from the organism base on format prompts of another seed than the eval's; the
bundled ``configs/organism-grpo.yaml`` (SFT, then 40 GRPO steps rewarded by IFEval's checkers) is run whole,
as a user runs it, and its gate, curves and report are checked; a few steps run on the real
SmolLM2-135M-Instruct (the real-weights tier's ``smollm2_dir``).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tunegate.cli import main
from tunegate.core.files import write_jsonl
from tunegate.evals.backends.hf import torch_threads
from tunegate.organism.tasks import format_eval_items
from tunegate.reports import plots
from tunegate.training.rewards import completion_text

ROOT = Path(__file__).resolve().parents[2]


def _config(tmp_path: Path, method: str = "grpo", seed: int = 7, **args) -> Path:
    stage = {"name": method, "method": method, "trains": ["ifeval"], "options": {"rewards": ["ifeval"]},
             "data": {"suites": {"ifeval": {"variant": "organism", "seed": seed}}, "limit": 8},
             "args": {"max_steps": 2, "per_device_train_batch_size": 8, "num_generations": 4,
                      "max_completion_length": 8, "beta": 0.04, "logging_steps": 1, "gradient_checkpointing": False,
                      **args}}
    config = {"name": "grpo-small", "base_model": "organism", "stages": [stage],
              "eval": {"suites": {"ifeval": {"variant": "organism", "limit": 4}}},
              "gate": {"metrics": {"ifeval.prompt_strict": {"margin": 0.5}}}}
    path = tmp_path / f"{method}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def _run(tmp_path: Path, config: Path) -> Path:
    out = tmp_path / "run"
    assert main(["run", str(config), "--out", str(out), "--quiet", "--no-report", "--cache-dir",
                 str(tmp_path / "cache"), "--store", str(tmp_path / "store.sqlite")]) in (0, 1)
    return out


@pytest.mark.slow
def test_grpo_stage_records_its_prompts_rewards_and_sampling_settings(tmp_path: Path) -> None:
    """2 GRPO steps of 2 prompts x 4 completions and two evaluations of 4 items: about 5 s of CPU."""
    out = _run(tmp_path, _config(tmp_path, temperature=0.9))
    manifest = json.loads((out / "stages" / "grpo" / "manifest.json").read_text())
    assert manifest["method"] == "grpo" and manifest["options"] == {"rewards": ["ifeval"]}
    sampling = {k: manifest["config"][k] for k in ("num_generations", "max_completion_length", "temperature",
                                                   "top_p", "beta", "generation_batch_size")}
    assert sampling == {"num_generations": 4, "max_completion_length": 8, "temperature": 0.9, "top_p": 1.0,
                        "beta": 0.04, "generation_batch_size": 8}  # top_p and the batch: TRL's, recorded too
    asked = {row["prompt"] for row in format_eval_items(0)}
    dropped = sum(row["prompt"] in asked for row in format_eval_items(7)[:8])
    assert manifest["data"]["rewards"] == ["ifeval"] and manifest["examples"] == 8 - dropped
    assert manifest["data"]["counts"] == {"ifeval": {"prompts": 8 - dropped, "dropped_eval_items": dropped}}
    steps = [row for row in json.loads((out / "stages" / "grpo" / "training_log.json").read_text()) if "reward" in row]
    assert [row["step"] for row in steps] == [1, 2] and all("kl" in row and "rewards/ifeval/mean" in row for row in steps)


@pytest.mark.slow
def test_rloo_trains_the_same_stage_through_trls_rloo_trainer(tmp_path: Path) -> None:
    """The same 2 steps with RLOOTrainer: about 5 s of CPU."""
    out = _run(tmp_path, _config(tmp_path, method="rloo"))
    manifest = json.loads((out / "stages" / "rloo" / "manifest.json").read_text())
    assert manifest["method"] == "rloo" and manifest["config"]["num_generations"] == 4
    log = json.loads((out / "stages" / "rloo" / "training_log.json").read_text())
    assert [row["step"] for row in log if "reward" in row] == [1, 2]


@pytest.mark.slow
def test_prompts_the_evaluation_asks_are_never_trained_on(tmp_path: Path, capsys) -> None:
    """The eval's own format items as GRPO prompts: every one is dropped, so the stage refuses before training."""
    config = _config(tmp_path, seed=0)
    assert main(["run", str(config), "--out", str(tmp_path / "run"), "--quiet", "--cache-dir",
                 str(tmp_path / "cache")]) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        f"tunegate: error: {config}: stage 'grpo': data.suites.ifeval: the evaluation asks every one of its 8 prompts; "
        "draw them from another seed or split, or set data.keep_eval_items: true")


def short_answer(prompts: list, completions: list, answer: list, **_) -> list[float]:
    """A reward of the user's: 1 when the completion names the row's ``answer`` column."""
    return [float(a.lower() in completion_text(c).lower()) for c, a in zip(completions, answer)]


@pytest.mark.slow
def test_a_dataset_of_prompts_trains_with_the_users_own_reward_function(tmp_path: Path) -> None:
    """data: a JSONL file of prompts, options.rewards: module:function, which gets the file's other columns;
    2 steps: about 5 s of CPU."""
    rows = [{"prompt": [{"role": "user", "content": f"What is the capital of {c}?"}], "answer": a}
            for c, a in (("France", "Paris"), ("Peru", "Lima"), ("Kenya", "Nairobi"), ("Chile", "Santiago"))]
    data = write_jsonl(tmp_path / "prompts.jsonl", rows)
    config = yaml.safe_load(_config(tmp_path).read_text())
    config["stages"][0] |= {"data": str(data), "options": {"rewards": [f"{__name__}:short_answer"]}}
    (tmp_path / "grpo.yaml").write_text(yaml.safe_dump(config))
    out = _run(tmp_path, tmp_path / "grpo.yaml")
    log = json.loads((out / "stages" / "grpo" / "training_log.json").read_text())
    assert [row["step"] for row in log if "rewards/short_answer/mean" in row] == [1, 2]
    manifest = json.loads((out / "stages" / "grpo" / "manifest.json").read_text())
    assert manifest["data"] == str(data) and manifest["examples"] == 4


def test_trls_own_config_checks_fail_before_any_model_loads(tmp_path: Path, capsys) -> None:
    """GRPOConfig refuses a generation batch of 8 completions in groups of 3: one line at "check inputs", exit 2."""
    config = _config(tmp_path, num_generations=3)
    assert main(["run", str(config), "--out", str(tmp_path / "run"), "--quiet"]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        f"tunegate: error: {config}: stages[0].args (GRPOConfig): generation_batch_size (8) must be divisible by "
        "num_generations (3)."]
    assert not (tmp_path / "run" / "records").exists()  # nothing evaluated


@pytest.fixture(scope="module")
def grpo_run(tmp_path_factory) -> tuple[Path, int]:
    """``tunegate run configs/organism-grpo.yaml`` as a user runs it (about 80 s of CPU on 2 cores)."""
    out = tmp_path_factory.mktemp("grpo") / "run"
    proc = subprocess.run([sys.executable, "-m", "tunegate", "run", str(ROOT / "configs" / "organism-grpo.yaml"),
                           "--out", str(out), "--quiet", "--cache-dir", str(out.parent / "cache"),
                           "--store", str(out.parent / "store.sqlite")], capture_output=True, text=True, timeout=1800)
    assert proc.returncode in (0, 1), proc.stderr[-3000:]
    return out, proc.returncode


@pytest.mark.slow
def test_bundled_grpo_config_trains_ifeval_by_reward_and_gates_the_untrained_suites(grpo_run) -> None:
    out, code = grpo_run
    summary = json.loads((out / "summary.json").read_text())
    grpo = summary["comparisons"]["grpo_vs_sft"]
    assert grpo["trains"] == ["ifeval"] and grpo["passed"]
    assert grpo["verdicts"]["ifeval.prompt_strict"]["verdict"] == "improved"
    untrained = {k: v["gate"] for k, v in grpo["verdicts"].items() if k in ("identity.adherence", "math.exact_match",
                                                                          "knowledge.accuracy")}
    assert set(untrained) == {"identity.adherence", "math.exact_match", "knowledge.accuracy"}
    assert all(gate in ("pass", "warn") for gate in untrained.values())  # judged on non-inferiority, none failed
    # the SFT stage forgets plain-prompt knowledge, as in the demo: its gate fails, and the run says so by exit 1
    assert code == (0 if summary["passed"] else 1) and summary["comparisons"]["sft_vs_base"]["passed"] is False


@pytest.mark.slow
def test_bundled_grpo_configs_reward_rises_and_the_report_draws_reward_and_kl(grpo_run) -> None:
    out, _ = grpo_run
    log = json.loads((out / "stages" / "grpo" / "training_log.json").read_text())
    rewards = [row["reward"] for row in log if "reward" in row]
    assert len(rewards) == 20 and sum(rewards[-5:]) / 5 > sum(rewards[:5]) / 5 + 0.2
    assert [title for title, _ in plots.training_panels({"grpo": log})] == ["loss", "reward", "KL to the input model"]
    html = (out / "report.html").read_text()
    assert 'alt="training curves grpo"' in html and 'alt="training curves sft"' in html


@pytest.mark.slow
def test_a_few_grpo_steps_on_the_real_smollm2_135m_instruct(smollm2_dir: Path, tmp_path: Path) -> None:
    """2 GRPO steps on real weights: 1 arithmetic prompt x 4 sampled completions of up to 24 tokens per step, scored
    by the math suite's scorer, KL to the input model; 2 items evaluated before and after. On one torch thread (2
    threads on 2 busy cores spent 4x the CPU): about 45 s of CPU."""
    stage = {"name": "grpo", "method": "grpo", "trains": ["math"],
             "data": {"suites": {"math": {"variant": "organism", "seed": 7, "limit": 2}}},
             "args": {"max_steps": 2, "per_device_train_batch_size": 4, "num_generations": 4,
                      "max_completion_length": 24, "learning_rate": 1.0e-5, "beta": 0.04, "logging_steps": 1,
                      "gradient_checkpointing": False}}
    config = tmp_path / "smollm2-grpo.yaml"
    config.write_text(yaml.safe_dump({
        "name": "smollm2-grpo", "base_model": str(smollm2_dir), "stages": [stage],
        "eval": {"suites": {"math": {"variant": "organism", "limit": 2, "max_new_tokens": 24}},
                 "backend_options": {"threads": 1}},
        "gate": {"metrics": {"math.exact_match": {"margin": 0.5}}}}))
    with torch_threads(1):  # the training's own count (torch's default for a model of this size)
        out = _run(tmp_path, config)
    steps = [row for row in json.loads((out / "stages" / "grpo" / "training_log.json").read_text()) if "reward" in row]
    assert [row["step"] for row in steps] == [1, 2]
    for row in steps:  # the math suite's scores of real sampled completions, and the KL to the input model
        assert 0.0 <= row["rewards/math/mean"] <= 1.0 and row["kl"] >= 0.0 and row["completions/mean_length"] > 0
    manifest = json.loads((out / "stages" / "grpo" / "manifest.json").read_text())
    assert manifest["base_model"] == str(smollm2_dir) and manifest["data"]["rewards"] == ["math"]
    assert {k: manifest["config"][k] for k in ("num_generations", "max_completion_length", "temperature")} == {
        "num_generations": 4, "max_completion_length": 24, "temperature": 1.0}
    summary = json.loads((out / "summary.json").read_text())
    assert summary["error"] is None and "math.exact_match" in summary["comparisons"]["grpo_vs_base"]["verdicts"]
