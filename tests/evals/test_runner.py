"""The evaluation engine on the real organism: records, the generation cache, resumption."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import pytest

from tunegate.evals.backends.hf import HFBackend
from tunegate.evals.requests import GenerationRequest, LoglikelihoodRequest
from tunegate.evals.rescore import rescore
from tunegate.evals.runner import evaluate
from tunegate.evals.records import RunRecord
from tunegate.evals.spec import eval_spec

SUITES = ["math", "knowledge"]
OPTIONS = {"math": {"variant": "organism", "limit": 12}, "knowledge": {"variant": "organism", "limit": 12}}


class CountingBackend(HFBackend):
    """The real HF backend, counting the requests that reach the model."""

    def __init__(self, *args, fail_after: int | None = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.generated = 0
        self.scored = 0
        self.fail_after = fail_after

    def generate(self, requests: Sequence[GenerationRequest]) -> list[str]:
        if self.fail_after is not None and self.generated >= self.fail_after:
            raise RuntimeError("simulated crash mid-suite")
        self.generated += len(requests)
        return super().generate(requests)

    def loglikelihood(self, requests: Sequence[LoglikelihoodRequest]) -> list[float]:
        self.scored += len(requests)
        return super().loglikelihood(requests)


def test_record_round_trips_through_json(organism_dir: Path, cache_dir: Path, tmp_path: Path) -> None:
    record = evaluate(str(organism_dir), eval_spec(SUITES, OPTIONS, cache_dir=cache_dir),
                      out=tmp_path / "r.json", progress=False)
    loaded = RunRecord.load(tmp_path / "r.json")
    assert loaded == RunRecord.from_dict(json.loads(json.dumps(record.to_dict())))
    assert loaded.suites["math"].metrics["exact_match"].n == 12
    assert loaded.env["versions"]["trl"]


def test_items_keep_prompt_response_answer_and_score(organism_dir: Path, cache_dir: Path) -> None:
    record = evaluate(str(organism_dir), eval_spec(["math"], {"math": OPTIONS["math"]}, cache_dir=cache_dir), progress=False)
    item = record.suites["math"].items[0]
    assert item.prompt.startswith("What is") and item.target is not None
    assert set(item.scores) >= {"exact_match"}


def test_unchanged_checkpoint_is_served_from_cache(organism_dir: Path, cache_dir: Path) -> None:
    first = CountingBackend(str(organism_dir))
    a = evaluate(first, eval_spec(SUITES, OPTIONS, cache_dir=cache_dir), progress=False)
    second = CountingBackend(str(organism_dir))
    b = evaluate(second, eval_spec(SUITES, OPTIONS, cache_dir=cache_dir), progress=False)
    assert first.generated == 12 and first.scored == 12 * 4
    assert second.generated == 0 and second.scored == 0
    assert [i.response for i in a.suites["math"].items] == [i.response for i in b.suites["math"].items]


def test_an_evaluation_served_whole_from_the_cache_never_loads_the_weights(organism_dir: Path, cache_dir: Path,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    import transformers

    first = evaluate(str(organism_dir), eval_spec(SUITES, OPTIONS, cache_dir=cache_dir), progress=False)

    def refuse(*args, **kwargs):
        raise AssertionError("the weights were loaded")

    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", refuse)
    again = evaluate(str(organism_dir), eval_spec(SUITES, OPTIONS, cache_dir=cache_dir), progress=False)
    assert [i.to_dict() for s in SUITES for i in again.suites[s].items] == \
        [i.to_dict() for s in SUITES for i in first.suites[s].items]


def test_changed_weights_never_hit_a_stale_entry(organism_copy: Path, cache_dir: Path) -> None:
    import torch
    from safetensors.torch import load_file, save_file

    evaluate(str(organism_copy), eval_spec(["math"], {"math": OPTIONS["math"]}, cache_dir=cache_dir), progress=False)
    weights = organism_copy / "model.safetensors"
    tensors = load_file(weights)
    name = next(iter(tensors))
    tensors[name] = tensors[name] + 0.01 * torch.ones_like(tensors[name])
    save_file(tensors, weights, metadata={"format": "pt"})
    backend = CountingBackend(str(organism_copy))
    evaluate(backend, eval_spec(["math"], {"math": OPTIONS["math"]}, cache_dir=cache_dir), progress=False)
    assert backend.generated == 12


def test_interrupted_run_resumes_from_cache(organism_dir: Path, cache_dir: Path, monkeypatch) -> None:
    import tunegate.evals.runner as runner

    options = {"math": {"variant": "organism", "limit": 40}}
    crashing = CountingBackend(str(organism_dir), fail_after=16)
    monkeypatch.setattr(runner, "run_suite", _small_chunks(runner.run_suite))
    with pytest.raises(RuntimeError, match="simulated crash"):
        evaluate(crashing, eval_spec(["math"], options, cache_dir=cache_dir), progress=False)
    resumed = CountingBackend(str(organism_dir))
    record = evaluate(resumed, eval_spec(["math"], options, cache_dir=cache_dir), progress=False)
    assert resumed.generated == 40 - 16
    assert len(record.suites["math"].items) == 40


def _small_chunks(run_suite):
    def wrapped(*args, **kwargs):
        return run_suite(*args, **{**kwargs, "chunk": 8})
    return wrapped


def test_sampled_generations_are_not_cached(organism_dir: Path, cache_dir: Path) -> None:
    from tunegate.evals.cache import ResponseCache
    from tunegate.evals.runner import cached_calls

    cache = ResponseCache(cache_dir / "c.sqlite")
    calls = []
    compute = lambda reqs: calls.append(len(reqs)) or ["x"] * len(reqs)  # noqa: E731
    for _ in range(2):
        cached_calls(cache, ["k1", "k2"], ["a", "b"], False, compute, 8, "t", False)
    assert calls == [2, 2]


def test_rescore_applies_new_identity_target_without_a_model(organism_dir: Path, cache_dir: Path) -> None:
    opts = {"identity": {"probes": "organism", "target": "Tiny"}}
    record = evaluate(str(organism_dir), eval_spec(["identity"], opts, cache_dir=cache_dir), progress=False)
    again = rescore(record, eval_spec(["identity"], {"identity": {"probes": "organism", "target": "Deep Tiny",
                                                                  "forbidden": ["Tiny"]}}))
    assert again.suites["identity"].config["target"] == "Deep Tiny"
    assert [i.response for i in again.suites["identity"].items] == [i.response for i in record.suites["identity"].items]
    assert rescore(record, eval_spec(["identity"], opts)) is record
