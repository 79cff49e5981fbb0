"""Out-of-memory during generation: the batch is halved (accelerate's OOM test) and the run finishes.

Both generation paths: continuous batching (a model whose every layer is a plain full-attention cache, as the
organism) and static batches through ``model.generate`` (the path of a model with sliding windows).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tunegate.evals.backends import _continuous
from tunegate.evals.backends.hf import HFBackend
from tunegate.evals.requests import GenerationRequest

PROMPTS = ["The capital of France is", "47 + 25 =", "The capital of Japan is", "12 + 30 =", "The capital of Peru is"]
CUDA_OOM = "CUDA out of memory. Tried to allocate 20.00 MiB."  # CUDA's own message


@pytest.fixture(scope="module")
def expected(organism_dir: Path) -> list[str]:
    backend = HFBackend(str(organism_dir), batch_size=1)
    return [backend.generate([GenerationRequest(prompt=p, max_new_tokens=6)])[0] for p in PROMPTS]


def test_out_of_memory_halves_the_continuous_batch_and_keeps_every_response(
        organism_dir: Path, expected: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    backend = HFBackend(str(organism_dir), batch_size=8)
    assert backend.continuous
    forward = _continuous.prefill

    def small_memory(model, ids, *args, **kwargs):  # a device that fits two sequences at once
        if ids.shape[0] > 2:
            raise torch.OutOfMemoryError(CUDA_OOM)
        return forward(model, ids, *args, **kwargs)

    monkeypatch.setattr(_continuous, "prefill", small_memory)
    assert backend.generate([GenerationRequest(prompt=p, max_new_tokens=6) for p in PROMPTS]) == expected
    assert backend.batch_size == 2  # later calls start no larger than what fitted


def test_out_of_memory_halves_the_static_batch_and_keeps_every_response(
        organism_dir: Path, expected: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    backend = HFBackend(str(organism_dir), batch_size=8)
    backend.continuous = False
    padded = backend._generate_padded

    def small_memory(ids, req):
        if len(ids) > 2:
            raise torch.OutOfMemoryError(CUDA_OOM)
        return padded(ids, req)

    monkeypatch.setattr(backend, "_generate_padded", small_memory)
    assert backend.generate([GenerationRequest(prompt=p, max_new_tokens=6) for p in PROMPTS]) == expected
    assert backend.batch_size == 2


@pytest.mark.parametrize("continuous", [True, False], ids=["continuous", "static"])
def test_other_runtime_errors_are_not_retried(organism_dir: Path, monkeypatch: pytest.MonkeyPatch,
                                              continuous: bool) -> None:
    backend = HFBackend(str(organism_dir), batch_size=8)
    backend.continuous = continuous

    def broken(*args, **kwargs):
        raise RuntimeError("shape mismatch")

    monkeypatch.setattr(_continuous, "prefill", broken)
    monkeypatch.setattr(backend, "_generate_padded", broken)
    with pytest.raises(RuntimeError, match="shape mismatch"):
        backend.generate([GenerationRequest(prompt=p, max_new_tokens=2) for p in PROMPTS])
    assert backend.batch_size == 8
