"""Repo-level pytest set-up: offline defaults and the path of the shared benchmark data.

The tunegate pytest plugin itself is registered through the ``pytest11`` entry
point (pyproject.toml), so an installed tunegate gates any repository's tests.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bench._common import SHARED_DATA, use_shared_nltk_data

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
use_shared_nltk_data()


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data``: real IFEval, GSM8K and MMLU copies (see its README)."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared benchmark data not found at {SHARED_DATA} (set TUNEGATE_SHARED_DATA)")
    return SHARED_DATA
