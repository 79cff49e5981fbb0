"""Out-of-memory during generation: the batch is halved (accelerate's OOM test) and the run finishes."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tunegate.evals.backends.hf import HFBackend
from tunegate.evals.requests import GenerationRequest

PROMPTS = ["The capital of France is", "47 + 25 =", "The capital of Japan is", "12 + 30 =", "The capital of Peru is"]


def test_out_of_memory_halves_the_batch_and_keeps_every_response(organism_dir: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    requests = [GenerationRequest(prompt=p, max_new_tokens=6) for p in PROMPTS]
    expected = [HFBackend(str(organism_dir), batch_size=1).generate([r])[0] for r in requests]
    backend = HFBackend(str(organism_dir), batch_size=8)
    padded = backend._generate_padded

    def small_memory(ids, req):  # a device that fits two sequences at once (CUDA's own message)
        if len(ids) > 2:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 MiB.")
        return padded(ids, req)

    monkeypatch.setattr(backend, "_generate_padded", small_memory)
    assert backend.generate(requests) == expected
    assert backend.batch_size <= 2  # later batches start no larger than what fitted


def test_other_runtime_errors_are_not_retried(organism_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    backend = HFBackend(str(organism_dir), batch_size=8)

    def broken(ids, req):
        raise RuntimeError("shape mismatch")

    monkeypatch.setattr(backend, "_generate_padded", broken)
    with pytest.raises(RuntimeError, match="shape mismatch"):
        backend.generate([GenerationRequest(prompt=p, max_new_tokens=2) for p in PROMPTS])
    assert backend.batch_size == 8
