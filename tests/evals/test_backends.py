"""The HF backend on the real organism: log-likelihoods, rendering, fingerprints, clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from evals.backends import HFBackend, fingerprint_dir, resolve_model_dir, truncate_at_stop
from evals.errors import TunegateError
from evals.requests import GenerationRequest, LoglikelihoodRequest


@pytest.fixture(scope="module")
def backend(organism_dir: Path) -> HFBackend:
    return HFBackend(str(organism_dir), batch_size=4)


def test_loglikelihood_matches_a_direct_forward_pass(backend: HFBackend) -> None:
    ctx, cont = "The capital of France is", " Paris"
    tok = backend.tokenizer
    ctx_ids = tok(ctx, add_special_tokens=False)["input_ids"]
    whole = tok(ctx + cont, add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        logits = backend.model(torch.tensor([whole])).logits[0].log_softmax(-1)
    expected = sum(float(logits[i - 1, whole[i]]) for i in range(len(ctx_ids), len(whole)))
    (got,) = backend.loglikelihood([LoglikelihoodRequest(ctx, cont)])
    assert got == pytest.approx(expected, abs=1e-4)


def test_loglikelihood_is_independent_of_batch_composition(backend: HFBackend) -> None:
    reqs = [LoglikelihoodRequest("The capital of France is", " Paris"),
            LoglikelihoodRequest("12 + 30 =", " 42"),
            LoglikelihoodRequest("A much longer context about the capital cities of the world and", " Rome")]
    together = backend.loglikelihood(reqs)
    alone = [backend.loglikelihood([r])[0] for r in reqs]
    assert together == pytest.approx(alone, abs=1e-4)


def test_trailing_space_moves_to_the_continuation_as_in_lm_eval(backend: HFBackend) -> None:
    a = backend.loglikelihood([LoglikelihoodRequest("The capital of France is ", "Paris")])
    b = backend.loglikelihood([LoglikelihoodRequest("The capital of France is", " Paris")])
    assert a == pytest.approx(b)


def test_greedy_generation_is_deterministic_and_ordered(backend: HFBackend) -> None:
    reqs = [GenerationRequest(prompt=p, max_new_tokens=6) for p in
            ["The capital of France is", "47 + 25 =", "The capital of Japan is"]]
    first = backend.generate(reqs)
    assert first == backend.generate(reqs)
    assert first[1] == backend.generate([reqs[1]])[0]


def test_render_applies_the_chatml_template(backend: HFBackend) -> None:
    text = backend.render([{"role": "user", "content": "Who are you?"}])
    assert text.endswith("<|im_start|>assistant\n") and "<|im_start|>user\nWho are you?<|im_end|>" in text


def test_missing_chat_template_is_one_clear_error(organism_copy: Path) -> None:
    cfg = organism_copy / "tokenizer_config.json"
    data = json.loads(cfg.read_text())
    data.pop("chat_template", None)
    cfg.write_text(json.dumps(data))
    (organism_copy / "chat_template.jinja").unlink(missing_ok=True)
    b = HFBackend(str(organism_copy))
    with pytest.raises(TunegateError, match="no chat template .*completion-mode"):
        b.render([{"role": "user", "content": "hi"}])


def test_fingerprint_changes_with_the_chat_template(organism_copy: Path) -> None:
    before = fingerprint_dir(organism_copy)
    template = organism_copy / "chat_template.jinja"
    template.write_text(template.read_text() + " ")
    assert fingerprint_dir(organism_copy) != before


def test_missing_model_path_is_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(TunegateError, match="model path '.*nope' does not exist"):
        resolve_model_dir(str(tmp_path / "nope"))


def test_uncached_hub_id_offline_says_what_to_download(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    with pytest.raises(TunegateError, match="huggingface-cli download someone/missing-model"):
        resolve_model_dir("someone/missing-model")


def test_truncate_at_first_stop_string() -> None:
    assert truncate_at_stop("72\nQuestion: next", ("Question:", "</s>")) == "72\n"
