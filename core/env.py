"""Provenance of a run (library versions, git sha, hardware) and how busy this machine's cores are.

    environment()["versions"]["trl"]   # "1.16.0"
    other_cpu_load()                   # 0.02: cores kept busy by other processes (Linux), else None
"""

from __future__ import annotations

import functools
import os
import platform
import subprocess
import time
from importlib import metadata
from pathlib import Path
from typing import Any

LIBRARIES = ("tunegate", "torch", "transformers", "trl", "datasets", "lm_eval", "peft", "accelerate", "tokenizers")


def library_versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in LIBRARIES:
        try:
            out[name] = metadata.version(name.replace("_", "-"))
        except metadata.PackageNotFoundError:
            continue
    return out


@functools.lru_cache(maxsize=None)
def git_sha(cwd: str | None = None) -> str | None:
    """The sha of the checkout tunegate runs from (or ``cwd``), with ``-dirty`` when modified."""
    where = cwd or str(Path(__file__).resolve().parent)
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=where, capture_output=True, text=True,
                             timeout=5, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=where,
                               capture_output=True, text=True, timeout=5).stdout.strip()
        return sha + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None


def hardware() -> dict[str, Any]:
    import torch

    hw: dict[str, Any] = {"platform": platform.platform(), "machine": platform.machine(),
                          "cpus": os.cpu_count(), "torch_threads": torch.get_num_threads()}
    if torch.cuda.is_available():
        hw["gpu"] = torch.cuda.get_device_name(0)
        hw["gpu_count"] = torch.cuda.device_count()
    return hw


def environment() -> dict[str, Any]:
    return {"versions": library_versions(), "git_sha": git_sha(), "hardware": hardware()}


#: /proc/stat columns that count a CPU as busy: user, nice, system, irq, softirq, steal (guest time is
#: already inside user/nice; steal is time the hypervisor gave our CPU to someone else).
_BUSY_COLUMNS = (0, 1, 2, 5, 6, 7)


def busy_jiffies(proc_stat: str, cpus: set[int]) -> int:
    """Busy clock ticks of ``cpus`` in the text of ``/proc/stat`` (its per-CPU ``cpuN`` lines)."""
    total = 0
    for line in proc_stat.splitlines():
        name, *values = line.split()
        if name.startswith("cpu") and name[3:].isdigit() and int(name[3:]) in cpus:
            total += sum(int(values[i]) for i in _BUSY_COLUMNS if i < len(values))
    return total


def other_cpu_load(window: float = 0.1) -> float | None:
    """Cores of this process's CPU set kept busy by other processes over ``window`` seconds.

    Busy ticks of those CPUs (``/proc/stat``) minus this process's own CPU time, per second. None where
    there is no ``/proc/stat`` (not Linux).
    """
    cpus = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else set(range(os.cpu_count() or 1))
    stat = Path("/proc/stat")
    try:
        busy0, own0, wall0 = busy_jiffies(stat.read_text(), cpus), time.process_time(), time.perf_counter()
        time.sleep(window)
        busy1, own1, wall1 = busy_jiffies(stat.read_text(), cpus), time.process_time(), time.perf_counter()
    except OSError:
        return None
    ticks = os.sysconf("SC_CLK_TCK")
    return max(0.0, ((busy1 - busy0) / ticks - (own1 - own0)) / (wall1 - wall0))
