"""The thread count a model gets: one for a small CPU model whatever the machine's load, torch's own otherwise."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tunegate.evals.backends.hf import HFBackend, auto_threads


@pytest.fixture
def spinner() -> Iterator[None]:
    """Another process keeping one core busy while the test runs."""
    proc = subprocess.Popen([sys.executable, "-c", "print('spinning', flush=True)\nwhile True: pass"],
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "spinning"
        yield
    finally:
        proc.kill()
        proc.wait()


def test_small_model_runs_on_one_thread_while_other_processes_keep_the_cores_busy(
        organism_dir: Path, spinner: None) -> None:
    backend = HFBackend(str(organism_dir))
    assert auto_threads(backend.model, "cpu") == 1 and backend.threads == 1


def test_small_model_runs_on_one_thread_on_idle_cores_too(organism_dir: Path) -> None:
    """The count does not follow the load: a trained model and its verdicts must not depend on what else ran."""
    backend = HFBackend(str(organism_dir))
    assert auto_threads(backend.model, "cpu") == 1


@pytest.mark.slow
def test_smollm2_runs_on_one_thread(smollm2_dir: Path) -> None:
    """135M parameters are small enough: two threads on busy cores cost ~7x its CPU time (SMALL_MODEL_PARAMS)."""
    backend = HFBackend(str(smollm2_dir))
    assert backend.threads == 1


def test_a_model_on_a_gpu_keeps_torchs_threads(organism_dir: Path) -> None:
    backend = HFBackend(str(organism_dir))
    assert auto_threads(backend.model, "cuda") is None
