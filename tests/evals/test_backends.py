"""The HF backend on the real organism: log-likelihoods, context truncation, BOS, rendering, fingerprints, errors."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import torch

from tunegate.evals.backends import hf
from tunegate.evals.backends.hf import HFBackend, truncate_at_stop
from tunegate.evals.models import fingerprint_dir, resolve_model_dir
from tunegate.core.errors import TunegateError
from tunegate.evals.requests import GenerationRequest, LoglikelihoodRequest


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


def _long_text(backend: HFBackend, tokens: int) -> str:
    """Text of more than ``tokens`` tokens whose start differs from its end (numbered sentences)."""
    n = 8
    while len(backend._encode(text := " ".join(f"Sentence {i} is about apples." for i in range(n)))) <= tokens:
        n *= 2
    return text


def test_generation_keeps_the_last_tokens_of_a_prompt_longer_than_the_context(backend: HFBackend,
                                                                               monkeypatch) -> None:
    req = GenerationRequest(prompt=_long_text(backend, backend.max_length + 32), max_new_tokens=4)
    ids = backend._encode(req.prompt)
    room = backend.max_length - req.max_new_tokens
    seen: list[list[list[int]]] = []
    engine = hf.generate_tokens

    def spy(model, prompts, *args, **kwargs):
        seen.append([list(p) for p in prompts])
        return engine(model, prompts, *args, **kwargs)

    monkeypatch.setattr(hf, "generate_tokens", spy)
    (text,) = backend.generate([req])
    assert seen == [[ids[-room:]]]  # the prompt's last (max_length - max_new_tokens) tokens, as lm-eval
    window = torch.tensor([ids[-room:]])
    with torch.inference_mode():
        direct = backend.model.generate(input_ids=window, attention_mask=torch.ones_like(window), max_new_tokens=4,
                          do_sample=False, pad_token_id=backend.tokenizer.pad_token_id)
    assert text == backend.tokenizer.decode(direct[0, room:], skip_special_tokens=True)


def test_loglikelihood_keeps_the_last_tokens_of_a_context_longer_than_the_model_context(backend: HFBackend) -> None:
    ctx, cont = _long_text(backend, backend.max_length + 32), " The capital of France is Paris."
    ctx_ids, cont_ids = backend._encode_pair(ctx, cont)
    window = (ctx_ids + cont_ids)[-(backend.max_length + 1):]  # as lm-eval: the last max_length + 1 tokens
    assert len(cont_ids) > 1 and len(ctx_ids) + len(cont_ids) > len(window)
    with torch.inference_mode():
        logits = backend.model(torch.tensor([window[:-1]])).logits[0].float().log_softmax(-1)
    expected = sum(float(logits[t - 1, window[t]]) for t in range(len(window) - len(cont_ids), len(window)))
    (got,) = backend.loglikelihood([LoglikelihoodRequest(ctx, cont)])
    assert got == pytest.approx(expected, abs=1e-3)


def test_requests_with_the_same_model_input_share_a_forward_pass_and_match_separate_calls(
        backend: HFBackend, monkeypatch) -> None:
    ctx = "Question: What is the capital of France?\nA. Paris\nB. Rome\nC. Oslo\nD. Cairo\nAnswer:"
    choices = (" A", " B", " C", " D")
    assert all(len(backend._encode_pair(ctx, c)[1]) == 1 for c in choices), "choices are not one token each"
    reqs = [LoglikelihoodRequest(ctx, c) for c in choices] + [LoglikelihoodRequest("12 + 30 =", " 42")]
    alone = [backend.loglikelihood([r])[0] for r in reqs]
    rows: list[tuple[int, ...]] = []
    batch = backend._loglikelihood_batch

    def spy(seqs, conts, prefix=None):
        rows.extend(seqs)
        return batch(seqs, conts, prefix)

    monkeypatch.setattr(backend, "_loglikelihood_batch", spy)
    together = backend.loglikelihood(reqs)
    assert len(rows) == 2  # the four one-token choices after one prompt: one row; the other request: one
    assert together == pytest.approx(alone, abs=1e-4)


def test_text_already_starting_with_bos_gets_no_second_bos(backend: HFBackend) -> None:
    """The organism has no BOS, so make one of a spare special token and have the tokenizer add it."""
    from transformers import AutoTokenizer

    tok = backend.tokenizer
    spare = [t for t in tok.all_special_tokens if t not in (tok.eos_token, tok.pad_token, tok.bos_token)]
    if not spare:
        pytest.skip("the organism's tokenizer has no spare special token to use as BOS")
    with_bos = copy.copy(backend)
    with_bos.tokenizer = AutoTokenizer.from_pretrained(backend.path, bos_token=spare[0], add_bos_token=True)
    bos, bos_id = with_bos.tokenizer.bos_token, with_bos.tokenizer.bos_token_id
    ctx, cont = "The capital of France is", " Paris"
    plain = with_bos._encode(ctx)
    assert plain[:2] == [bos_id, with_bos.tokenizer(ctx, add_special_tokens=False)["input_ids"][0]]
    assert with_bos._encode(bos + ctx) == plain
    assert with_bos._encode_pair(bos + ctx, cont) == with_bos._encode_pair(ctx, cont)
    (a,), (b,) = (with_bos.loglikelihood([LoglikelihoodRequest(c, cont)]) for c in (ctx, bos + ctx))
    assert a == pytest.approx(b, abs=1e-5)
