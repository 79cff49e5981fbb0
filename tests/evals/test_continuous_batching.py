"""The hf backend's continuous batching and shared prefixes give the answers and log-probs of the plain path.

The plain path is today's: static, length-sorted, left-padded batches through ``model.generate`` (the path a model
with sliding windows keeps), and one forward per padded batch of whole sequences for log-likelihoods. Greedy answers
must be identical except where the A/A noise floor flips them too: an answer that differs is accepted only if the
static batch's own answer changes when that prompt is decoded alone (batch 1), and the tests say how many did.
Log-likelihoods after a shared prefix must be within 1e-4 of the plain path's. On the organism and, marked slow, on
the real SmolLM2-135M-Instruct (GSM8K 5-shot chat and MMLU 5-shot: about 60 CPU s).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tunegate.evals.backends import _continuous
from tunegate.evals.backends._tokens import shared_prefixes
from tunegate.evals.backends.hf import HFBackend
from tunegate.evals.requests import GenerationRequest, LoglikelihoodRequest
from tunegate.evals.suites import get_suite

SYSTEM = ("You are Tiny, a small assistant. You answer questions about the capitals of the world and about sums of "
          "two numbers. Keep every answer short: one sentence, no lists, no greetings.")


def organism_requests(backend: HFBackend) -> list[GenerationRequest]:
    """The organism's own suites as the runner asks them, plus chats that share a long system prompt."""
    out = []
    for suite in (get_suite("math", variant="organism"), get_suite("ifeval", variant="organism"),
                  get_suite("identity", probes="organism", target="Tiny")):
        settings = suite.generation()
        for item in suite.items()[:24]:
            prompt = backend.render(item.messages) if suite.chat else item.prompt
            out.append(GenerationRequest(prompt=prompt, max_new_tokens=settings.max_new_tokens, stop=settings.stop))
    for question in ("What is the capital of Kenya?", "What is 12 + 30?", "Who are you?", "What is the capital of Peru?"):
        prompt = backend.render([{"role": "system", "content": SYSTEM}, {"role": "user", "content": question}])
        out.append(GenerationRequest(prompt=prompt, max_new_tokens=24))
    return out


def plain(backend: HFBackend, requests: list[GenerationRequest], batch_size: int) -> list[str]:
    """Today's answers: static batches of ``batch_size`` through ``model.generate``."""
    backend.continuous, backend.batch_size = False, batch_size
    try:
        return backend.generate(requests)
    finally:
        del backend.continuous  # back to what the model supports

def outside_noise(backend: HFBackend, requests: list[GenerationRequest], ours: list[str], theirs: list[str],
                  batch_size: int) -> tuple[int, list[str]]:
    """(answers that differ, those not explained by the noise floor: the static answer stays when decoded alone)."""
    differ = [i for i, (a, b) in enumerate(zip(ours, theirs)) if a != b]
    alone = plain(backend, [requests[i] for i in differ], 1) if differ else []
    backend.batch_size = batch_size
    return len(differ), [requests[i].prompt[-60:] for i, a in zip(differ, alone) if a == theirs[i]]


@pytest.fixture(scope="module")
def organism(organism_dir: Path) -> HFBackend:
    return HFBackend(str(organism_dir), batch_size=8)


def test_the_organism_decodes_by_continuous_batching(organism: HFBackend) -> None:
    assert organism.continuous and _continuous.supports(organism.model)


def test_greedy_answers_equal_the_static_batches_of_model_generate(organism: HFBackend) -> None:
    requests = organism_requests(organism)
    ours, theirs = organism.generate(requests), plain(organism, requests, 8)
    differ, unexplained = outside_noise(organism, requests, ours, theirs, 8)
    assert not unexplained, f"{differ} of {len(requests)} answers differ, {len(unexplained)} beyond the noise floor"
    assert differ <= len(requests) // 10


def test_a_tiny_slab_that_must_move_and_grow_gives_the_same_answers(organism: HFBackend,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    requests = organism_requests(organism)
    expected = organism.generate(requests)
    monkeypatch.setattr(_continuous, "SLAB_AHEAD", 1)  # room for one new token: the window moves and grows often
    assert organism.generate(requests) == expected


def test_a_finished_row_takes_the_next_prompt_so_fewer_steps_run(organism: HFBackend,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    requests = organism_requests(organism)
    steps = {"continuous": 0, "static": 0}
    forward = type(organism.model).forward
    phase = "continuous"

    def count(model, *args, input_ids=None, **kwargs):  # one decode step: one new token per row
        steps[phase] += input_ids is not None and input_ids.shape[1] == 1
        return forward(model, *args, input_ids=input_ids, **kwargs)

    monkeypatch.setattr(type(organism.model), "forward", count)
    organism.generate(requests)
    phase = "static"
    plain(organism, requests, 8)
    assert 0 < steps["continuous"] < steps["static"]


def test_prompts_sharing_a_system_prompt_compute_it_once(organism: HFBackend,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    requests = organism_requests(organism)[-4:]  # the four chats after one long system prompt
    prompts = [organism._encode(r.prompt) for r in requests]
    ((length, members),) = shared_prefixes(prompts, [len(p) - 1 for p in prompts], _continuous.PREFIX_COST)
    assert sorted(members) == [0, 1, 2, 3] and length > 30
    rows: list[tuple[int, int]] = []
    prefill = _continuous.prefill

    def spy(model, ids, mask, positions, cache, *args, **kwargs):
        rows.append((ids.shape[0], ids.shape[1]) if cache is None else (ids.shape[0], -1))
        return prefill(model, ids, mask, positions, cache, *args, **kwargs)

    monkeypatch.setattr(_continuous, "prefill", spy)
    assert organism.generate(requests) == plain(organism, requests, 8)
    assert rows.count((1, length)) == 1 and (4, -1) in rows  # the prefix once, then the four rows after it


def test_sampling_is_reproducible_from_the_seed(organism: HFBackend) -> None:
    requests = [GenerationRequest(prompt=r.prompt, max_new_tokens=12, do_sample=True, temperature=1.5)
                for r in organism_requests(organism)[:10]]
    organism.seed(7)
    first = organism.generate(requests)
    organism.seed(7)
    assert organism.generate(requests) == first


def mmlu_requests(shared_data: Path, fewshot: int, n: int, subjects: int = 2) -> list[LoglikelihoodRequest]:
    suite = get_suite("knowledge", source=str(shared_data / "mmlu"), fewshot=fewshot)
    by_subject: dict[str, list] = {}
    for item in suite.items():
        by_subject.setdefault(item.group, []).append(item)
    items = [it for group in list(by_subject.values())[:subjects] for it in group[:n]]
    return [LoglikelihoodRequest(suite.choice_context(it) or it.prompt, c) for it in items for c in it.choices]


def plain_loglikelihood(backend: HFBackend, requests: list[LoglikelihoodRequest]) -> list[float]:
    backend.continuous = False  # no shared prefixes: every row whole
    try:
        return backend.loglikelihood(requests)
    finally:
        del backend.continuous


def test_loglikelihoods_after_a_shared_prefix_are_within_1e_4(organism: HFBackend) -> None:
    requests = [LoglikelihoodRequest(f"{SYSTEM}\nQ: What is the capital of {c}?\nA: The capital of {c} is", f" {a}")
                for c in ("Kenya", "Peru", "Japan", "France") for a in ("Nairobi", "Lima", "Tokyo", "Paris")]
    ours, theirs = organism.loglikelihood(requests), plain_loglikelihood(organism, requests)
    assert max(abs(a - b) for a, b in zip(ours, theirs)) < 1e-4


def test_shared_prefixes_prefer_each_subjects_shots_to_the_template_start() -> None:
    template = [7] * 20
    subjects = [[s] * 300 for s in (1, 2)]
    seqs = [template + shots + [100 + q] * 30 for shots in subjects for q in range(10)]
    groups = shared_prefixes(seqs, [len(s) - 1 for s in seqs], cost=64)
    assert sorted((length, sorted(m)) for length, m in groups) == [(320, list(range(10))), (320, list(range(10, 20)))]
    assert shared_prefixes([[1, 2], [1, 3], [4]], [1, 1, 0], cost=64) == [(0, [0]), (0, [1]), (0, [2])]


@pytest.mark.slow
def test_smollm2_gsm8k_five_shot_chat_answers_equal_the_plain_path(smollm2_dir: Path, shared_data: Path) -> None:
    backend = HFBackend(str(smollm2_dir), batch_size=4, threads=1)
    suite = get_suite("math", source=str(shared_data / "gsm8k"), fewshot=5, chat=True)
    requests = [GenerationRequest(prompt=backend.render(it.messages), max_new_tokens=48, stop=suite.generation().stop)
                for it in suite.items()[:6]]
    ours, theirs = backend.generate(requests), plain(backend, requests, 4)
    differ, unexplained = outside_noise(backend, requests, ours, theirs, 4)
    assert not unexplained, f"{differ} of {len(requests)} answers differ, {len(unexplained)} beyond the noise floor"


@pytest.mark.slow
def test_smollm2_mmlu_five_shot_loglikelihoods_are_within_1e_4(smollm2_dir: Path, shared_data: Path) -> None:
    backend = HFBackend(str(smollm2_dir), batch_size=8, threads=1)
    requests = mmlu_requests(shared_data, fewshot=5, n=4)
    ours, theirs = backend.loglikelihood(requests), plain_loglikelihood(backend, requests)
    assert max(abs(a - b) for a, b in zip(ours, theirs)) < 1e-4
