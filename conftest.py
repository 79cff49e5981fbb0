"""Repo-level pytest set-up: the tests' own defaults (offline, a private response cache) and the shared data path.

``python -m pytest -q`` needs no environment: the hub is off (tests never download), the response
cache lives in the session's temporary directory unless ``TUNEGATE_CACHE`` is set, IFEval's punkt_tab
ships with tunegate, and tests that read the real benchmarks find them through the ``shared_data`` fixture:
this repository's offline copies (``../shared/data``) first, else the folder ``tunegate data fetch`` writes.
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
from tunegate.evals.sources import DATA_ENV, data_dir

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TUNEGATE_MODEL_CACHE", str(model_cache_dir()))  # before the response cache moves below
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
#: Where ``tunegate data fetch`` wrote the benchmarks for this user (read before the response cache moves below).
FETCHED_DATA = data_dir()
#: The files of IFEval, GSM8K and MMLU the tests read, in the layout ``tunegate data fetch`` writes.
BENCHMARK_FILES = {"ifeval": ("input_data.jsonl",), "gsm8k": ("test.jsonl", "train.jsonl"),
                   "mmlu": ("test.jsonl", "dev.jsonl")}


@pytest.fixture(scope="session", autouse=True)
def _private_response_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Tests that use the default cache write to a temporary one, not the user's ~/.cache/tunegate."""
    with pytest.MonkeyPatch.context() as mp:
        if "TUNEGATE_CACHE" not in os.environ:
            mp.setenv("TUNEGATE_CACHE", str(tmp_path_factory.mktemp("tunegate-cache")))
        yield


def _missing_benchmarks(root: Path) -> list[str]:
    return [name for name, files in BENCHMARK_FILES.items() if not all((root / name / f).is_file() for f in files)]


def _skip_or_fail(reason: str) -> None:
    """Skip with ``reason``; under CI (``CI=true``), where the data is provided, fail instead."""
    if os.environ.get("CI", "").lower() in {"1", "true", "yes"}:
        pytest.fail(reason)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Real IFEval, GSM8K and MMLU files (``ifeval/input_data.jsonl``, ``gsm8k/{test,train}.jsonl``,
    ``mmlu/{test,dev}.jsonl``): this repository's offline copies (``../shared/data``, or
    ``$TUNEGATE_SHARED_DATA``) when they are there, else the folder ``tunegate data fetch NAME`` writes
    (``$TUNEGATE_DATA``, default ``~/.cache/tunegate/data``); skipped naming the command, failed under CI."""
    if SHARED_DATA.is_dir():
        return SHARED_DATA
    missing = _missing_benchmarks(FETCHED_DATA)
    if not missing:
        return FETCHED_DATA
    _skip_or_fail(f"benchmark data {', '.join(missing)} not found in {FETCHED_DATA}: run `tunegate data fetch "
                  f"{' '.join(missing)}` where the HF hub is reachable (or set {DATA_ENV} to a folder it wrote)")
    raise AssertionError("unreachable")  # pragma: no cover - skip and fail raise


@pytest.fixture(scope="session")
def ifeval_responses(shared_data: Path) -> Path:
    """Published IFEval responses (GPT-4's from Google, three of M-IFEval's) to score against Google's reference:
    ``ifeval/responses/MODEL.jsonl`` of this repository's offline copies. No command fetches them (they come
    from GitHub, not the hub), so without them the tests that score them skip, under CI too."""
    folder = shared_data / "ifeval" / "responses"
    if not folder.is_dir():
        pytest.skip(f"the published IFEval responses are not in {shared_data}: they come with this repository's "
                    "offline copies (../shared/data/ifeval/responses, or set TUNEGATE_SHARED_DATA); "
                    "`tunegate data fetch` brings the benchmarks only")
    return folder
