"""The HF backend on 2-layer twins of the real Qwen checkpoints: real tokenizer, templates, eos and generation_config.

Every expectation is computed apart from the backend: token ids from the vocabulary, greedy decoding by a
plain argmax loop over the model's logits, log-likelihoods by a direct forward pass.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tunegate.evals.backends.hf import HFBackend
from tunegate.core.errors import TunegateError
from tunegate.evals.models import fingerprint_dir
from tunegate.evals.requests import GenerationRequest, LoglikelihoodRequest
from tunegate.evals.runner import evaluate
from tunegate.evals.spec import eval_spec
from tunegate.evals.suites import get_suite
from tunegate.training.config import load_config
from tests.twin_helpers import argmax_greedy, next_token_logprobs

ROOT = Path(__file__).resolve().parents[2]
MMLU_CONTEXT = ("The following are multiple choice questions (with answers) about astronomy.\n\n"
                "What is the closest star to Earth?\nA. Sirius\nB. The Sun\nC. Vega\nD. Polaris\nAnswer:")


@pytest.fixture(scope="module")
def qwen25(qwen_twins: dict[str, Path]) -> HFBackend:
    return HFBackend(str(qwen_twins["qwen2.5"]), device="cpu")


@pytest.fixture(scope="module")
def qwen3(qwen_twins: dict[str, Path]) -> HFBackend:
    return HFBackend(str(qwen_twins["qwen3"]), device="cpu")


def test_greedy_generation_ignores_the_checkpoints_sampling_settings(qwen25: HFBackend) -> None:
    # Qwen2.5-Instruct's generation_config.json asks for sampling with repetition_penalty 1.1
    assert qwen25.model.generation_config.repetition_penalty == 1.1
    prompt = qwen25.render([{"role": "user", "content": "Who are you?"}])
    (text,) = qwen25.generate([GenerationRequest(prompt=prompt, max_new_tokens=12)])
    assert text == argmax_greedy(qwen25.model, qwen25.tokenizer, prompt, 12)


def test_generation_stops_at_the_templates_end_of_turn_as_well_as_at_eos(qwen25: HFBackend, qwen3: HFBackend) -> None:
    im_end, endoftext = 151645, 151643
    assert qwen3.tokenizer.eos_token_id == endoftext  # Qwen3-0.6B-Base: its eos is not what ends a chat turn
    assert qwen3.stop_token_ids == [endoftext, im_end]
    assert qwen25.stop_token_ids == [endoftext, im_end]


def test_mmlu_continuations_use_the_real_word_boundaries(qwen25: HFBackend) -> None:
    tok = qwen25.tokenizer
    letters = ["A", "B", "C", "D"]
    assert [qwen25._encode_pair(MMLU_CONTEXT, f" {x}")[1] for x in letters] == [
        [tok.convert_tokens_to_ids(f"Ġ{x}")] for x in letters]  # one byte-level token with its leading space
    chat = qwen25.render([{"role": "user", "content": MMLU_CONTEXT}])
    assert [qwen25._encode_pair(chat, x)[1] for x in letters] == [[tok.convert_tokens_to_ids(x)] for x in letters]


def test_mmlu_loglikelihood_of_a_spaced_letter_matches_a_forward_pass(qwen25: HFBackend) -> None:
    expected = next_token_logprobs(qwen25.model, qwen25.tokenizer, MMLU_CONTEXT, [f"Ġ{x}" for x in "ABCD"])
    got = qwen25.loglikelihood([LoglikelihoodRequest(MMLU_CONTEXT, f" {x}") for x in "ABCD"])
    assert got == pytest.approx(expected, abs=1e-4)


def test_chat_mmlu_scores_the_letter_after_the_templates_newline(qwen25: HFBackend) -> None:
    chat = qwen25.render([{"role": "user", "content": MMLU_CONTEXT}])
    expected = next_token_logprobs(qwen25.model, qwen25.tokenizer, chat, list("ABCD"))
    assert qwen25.loglikelihood([LoglikelihoodRequest(chat, x) for x in "ABCD"]) == pytest.approx(expected, abs=1e-4)


def test_chat_template_kwargs_reach_the_template_and_the_record(qwen_twins: dict[str, Path], tmp_path: Path) -> None:
    backend = HFBackend(str(qwen_twins["qwen3"]), device="cpu", chat_template_kwargs={"enable_thinking": False})
    assert backend.render([{"role": "user", "content": "Hi"}]).endswith(
        "<|im_start|>assistant\n<think>\n\n</think>\n\n")
    record = evaluate(backend, eval_spec(["identity"], {"identity": {"target": "Qwen", "limit": 1}},
                                         cache_dir=tmp_path), progress=False)
    assert record.generation["chat_template_kwargs"] == {"enable_thinking": False}


def test_fingerprint_covers_generation_config(organism_copy: Path) -> None:
    before = fingerprint_dir(organism_copy)
    path = organism_copy / "generation_config.json"
    config = json.loads(path.read_text())
    config["eos_token_id"] = [config.get("eos_token_id"), 7]
    path.write_text(json.dumps(config))
    assert fingerprint_dir(organism_copy) != before


def test_a_continuation_that_adds_no_token_is_one_clear_error(qwen25: HFBackend) -> None:
    with pytest.raises(TunegateError, match=r"continuation '' adds no token to its context"):
        qwen25.loglikelihood([LoglikelihoodRequest(MMLU_CONTEXT, "")])


def test_qwen3_thinking_is_stripped_before_scoring_and_kept_in_the_response(qwen3: HFBackend) -> None:
    # what the backend returns for a Qwen3 answer that thinks first: <think> is not a special token, so it stays
    ids = qwen3.tokenizer("<think>\nMy name is Qwen.\n</think>\n\nI am Deep Qwen.<|im_end|>",
                          add_special_tokens=False)["input_ids"]
    (response,) = qwen3.tokenizer.batch_decode([ids], skip_special_tokens=True)
    stripping = get_suite("identity", target="Deep Qwen", forbidden=["Qwen"], strip_thinking=True)
    item = stripping.items()[0]
    score = stripping.score(item, response)
    assert (score.scores, score.response) == ({"adherence": 1.0, "leak_rate": 0.0}, response)
    kept = get_suite("identity", target="Deep Qwen", forbidden=["Qwen"]).score(item, response)
    assert kept.scores == {"adherence": 0.0, "leak_rate": 1.0}  # unstripped, the thought leaks the old name


def test_ifeval_prompts_fit_whole_beside_the_real_configs_generation_budget(qwen3: HFBackend, shared_data: Path) -> None:
    config = load_config(ROOT / "configs" / "qwen3-0.6b-base-sft.yaml",
                         sets=[f"eval.suites.ifeval.source={shared_data / 'ifeval' / 'input_data.jsonl'}"])
    suite = config.eval_spec(config.stages[0]).suite("ifeval").build()
    budget = suite.generation().max_new_tokens
    assert budget == 1280  # the real configs generate IFEval answers at lm-eval's max_gen_toks
    n_prompt = max(len(qwen3._encode(qwen3.render(it.messages))) for it in suite.items())
    assert n_prompt + budget <= qwen3.max_length == 32768  # so generation keeps every prompt token (no left cut)
