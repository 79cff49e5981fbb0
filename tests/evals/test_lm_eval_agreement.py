"""Fidelity: tunegate's MMLU and GSM8K suites agree item by item with lm-eval's own HF backend.

On the organism, the same items go through ``tunegate.evals.runner.evaluate`` and ``lm_eval.simple_evaluate``
(model="hf", dtype float32, cpu) with lm-eval tasks built from its own YAMLs over local subset files
(``tunegate.evals.lm_eval_fidelity``): MMLU 0-shot by log-likelihood over 3 subjects x 20 questions (one
subject's prompts exceed the organism's 512-token context, so truncation is compared too), and
GSM8K zero-shot completion with greedy decoding, lm-eval's stop strings and the same token budget.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def runs(organism_dir: Path, shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Both runs on the same items: tunegate's record, lm-eval's per-item results, their agreement."""
    pytest.importorskip("lm_eval")
    from tunegate.evals.backends.hf import torch_threads
    from tunegate.evals.lm_eval_fidelity import agreement, build_mirror, lm_eval_max_new_tokens, per_item, run_lm_eval
    from tunegate.evals.backends import BackendOptions
    from tunegate.evals.runner import evaluate
    from tunegate.evals.spec import eval_spec

    tmp = tmp_path_factory.mktemp("lm_eval_agreement")
    mirror = build_mirror(tmp, mmlu_test=shared_data / "mmlu" / "test.jsonl",
                          gsm8k_test=shared_data / "gsm8k" / "test.jsonl",
                          per_subject=20, gsm8k_n=40, max_new_tokens=lm_eval_max_new_tokens(organism_dir))
    # both sides on one thread, so greedy decoding runs the same float kernels
    spec = eval_spec(list(mirror.suites), cache_dir=tmp / "cache",
                     backend_options=BackendOptions(device="cpu", dtype="float32", threads=1))
    record = evaluate(str(organism_dir), spec, progress=False)
    with torch_threads(1):
        results = run_lm_eval(organism_dir, mirror.tasks, mirror.task_dir, batch_size=32)
    reference = per_item(results, mirror.tasks)
    return {"record": record, "reference": reference, "agreement": agreement(record, reference)}


def test_every_item_has_an_lm_eval_counterpart(runs: dict[str, Any]) -> None:
    ids = {s.item_id for suite in runs["record"].suites.values() for s in suite.items}
    assert len(ids) == 100 and ids == set(runs["reference"])


def test_mmlu_choices_are_identical_to_lm_eval(runs: dict[str, Any]) -> None:
    knowledge = runs["agreement"]["knowledge"]
    assert knowledge["same_choice"] == knowledge["n"] == 60, knowledge["differing"]


def test_mmlu_loglikelihoods_match_lm_eval(runs: dict[str, Any]) -> None:
    errors = [f"{s.item_id}: tunegate {s.meta['logprobs']} lm-eval {runs['reference'][s.item_id]['logprobs']}"
              for s in runs["record"].suites["knowledge"].items
              if max(abs(a - b) for a, b in zip(s.meta["logprobs"], runs["reference"][s.item_id]["logprobs"])) >= 1e-3]
    assert not errors


def test_mmlu_accuracy_matches_lm_eval_acc(runs: dict[str, Any]) -> None:
    items = runs["record"].suites["knowledge"].items
    ours = sum(s.scores["accuracy"] for s in items) / len(items)
    theirs = sum(runs["reference"][s.item_id]["choice"] == "ABCD".index(s.target) for s in items) / len(items)
    assert ours == pytest.approx(theirs)


def test_gsm8k_responses_agree_with_lm_eval(runs: dict[str, Any]) -> None:
    math = runs["agreement"]["math"]
    assert math["same_response"] / math["n"] >= 0.99, math["differing"]


def test_gsm8k_extractions_agree_with_lm_eval_filters(runs: dict[str, Any]) -> None:
    math = runs["agreement"]["math"]
    assert math["same_strict"] / math["n"] >= 0.99 and math["same_flexible"] / math["n"] >= 0.99
