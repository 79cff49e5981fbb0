"""How busy the cores are (evals.env.other_cpu_load) and the thread count a small CPU model gets from it."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tunegate.evals.backends.hf import BUSY_CORES, HFBackend, auto_threads
from tunegate.core.env import busy_jiffies, other_cpu_load

#: Lines of a real /proc/stat (2 CPUs): user nice system idle iowait irq softirq steal guest guest_nice.
PROC_STAT = """cpu  1238126 10126 122306 2588384 3109 0 1196 2175 0 0
cpu0 619000 5000 61000 1294000 1500 0 600 1000 0 0
cpu1 619126 5126 61306 1294384 1609 0 596 1175 0 0
intr 123 4 5
"""


def test_busy_jiffies_sums_the_busy_columns_of_the_given_cpus() -> None:
    assert busy_jiffies(PROC_STAT, {0}) == 619000 + 5000 + 61000 + 0 + 600 + 1000
    assert busy_jiffies(PROC_STAT, {0, 1}) == busy_jiffies(PROC_STAT, {0}) + 619126 + 5126 + 61306 + 596 + 1175


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


def test_other_cpu_load_counts_another_process_spinning(spinner: None) -> None:
    load = other_cpu_load(window=0.3)
    if load is None:
        pytest.skip("no /proc/stat on this system")
    assert load >= BUSY_CORES


def test_small_model_runs_on_one_thread_while_other_processes_keep_the_cores_busy(
        organism_dir: Path, spinner: None) -> None:
    if other_cpu_load() is None:
        pytest.skip("no /proc/stat on this system")
    backend = HFBackend(str(organism_dir))
    assert auto_threads(backend.model, "cpu") == 1 and backend.threads == 1


def test_a_model_on_a_gpu_keeps_torchs_threads(organism_dir: Path) -> None:
    backend = HFBackend(str(organism_dir))
    assert auto_threads(backend.model, "cuda") is None
