"""Fixtures shared by tunegate's own tests: the embedded organism and copies of it."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def organism_dir() -> Path:
    """The shipped organism base checkpoint (a real, tiny Llama with a ChatML template)."""
    from training.organism import base_checkpoint

    return base_checkpoint()


@pytest.fixture()
def organism_copy(organism_dir: Path, tmp_path: Path) -> Path:
    """A private copy of the organism checkpoint that a test may modify."""
    dest = tmp_path / "organism"
    shutil.copytree(organism_dir, dest)
    return dest


@pytest.fixture()
def cache_dir(tmp_path: Path) -> Path:
    return tmp_path / "cache"
