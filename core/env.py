"""Provenance of a run: library versions, git sha, hardware.

    environment()["versions"]["trl"]   # "1.16.0"
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
