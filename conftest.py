"""Repo-level pytest set-up: the tests' own defaults (offline, a private response cache) and the shared data path.

``python -m pytest -q`` needs no environment: the hub is off (tests never download), the response
cache lives in the session's temporary directory unless ``TUNEGATE_CACHE`` is set, IFEval's punkt_tab
ships with tunegate, and tests that read ``../shared/data`` find it through the ``shared_data`` fixture.
The real models (``tunegate models fetch NAME``) stay in the user's model cache (``TUNEGATE_MODEL_CACHE``,
default ``~/.cache/tunegate/models``), fetched and converted once across runs.

The tunegate pytest plugin itself is registered through the ``pytest11`` entry
point (pyproject.toml), so an installed tunegate gates any repository's tests.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator

import pytest

from bench._common import SHARED_DATA
from tunegate.evals.gguf import model_cache_dir

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TUNEGATE_MODEL_CACHE", str(model_cache_dir()))  # before the response cache moves below
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session", autouse=True)
def _private_response_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Tests that use the default cache write to a temporary one, not the user's ~/.cache/tunegate."""
    with pytest.MonkeyPatch.context() as mp:
        if "TUNEGATE_CACHE" not in os.environ:
            mp.setenv("TUNEGATE_CACHE", str(tmp_path_factory.mktemp("tunegate-cache")))
        yield


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data``: real IFEval, GSM8K and MMLU copies (see its README)."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared benchmark data not found at {SHARED_DATA} (set TUNEGATE_SHARED_DATA)")
    return SHARED_DATA
