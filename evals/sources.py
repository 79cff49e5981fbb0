"""Rows of a dataset from wherever it lives: a local file or folder, the HF hub, or a named provider.

Shared by the eval suites and the training data builders; every failure is one TunegateError naming
the file, line and field::

    load_rows("shared/data/gsm8k/test.jsonl", split="test")    # a local .jsonl / .json file
    load_rows("shared/data/gsm8k", split="test")               # a folder holding test.jsonl
    load_rows("openai/gsm8k", name="main", split="test")       # a hub id, through datasets.load_dataset
    load_rows("downloads/identity", split="train")             # a hub repository's files, the same way
    load_rows("organism:arithmetic", split="test", options={"n": 100})   # a provider's dataset
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping

from tunegate.core.errors import TunegateError
from tunegate.core.files import Required, check_row, read_json_rows, read_jsonl
from tunegate.evals.providers import provided_rows


def _local_file(path: Path, split: str, name: str | None) -> Path | None:
    """The file for ``split`` in a directory: ``[name/]split.jsonl`` or ``.json`` (None: no such file)."""
    for base in ([path / name] if name else []) + [path]:
        for suffix in (".jsonl", ".json"):
            candidate = base / f"{split}{suffix}"
            if candidate.is_file():
                return candidate
    return None


def load_rows(source: str | Path, *, split: str, name: str | None = None, required: Required | None = None,
              options: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
    """Rows of a dataset: a local .jsonl/.json file, a directory holding ``split.jsonl``, a provider's
    dataset (``organism:sft``, given ``options``), or a hub id.

    A hub id goes through ``datasets.load_dataset(source, name, split=split)``
    (imported here, never at import time); when it is not cached and the hub
    cannot be reached, the error says what to download or which path to give.
    A directory without ``split.jsonl`` is a hub repository's files (what ``huggingface-cli download
    --repo-type dataset ID --local-dir DIR`` writes: a card with ``configs``, ``data/*.parquet``, a lone
    ``conversations.jsonl``) and takes the hub id's path: ``datasets.load_dataset(DIR, name, split=split)``.
    """
    path = Path(source)
    if path.is_dir():
        found = _local_file(path, split, name)
        if found is None:
            rows = _load_hub(str(path), split=split, name=name, local=True)
            return [check_row(row, required or {}, f"{path} split {split} row {i}") for i, row in enumerate(rows)]
        path = found
    if path.is_file():
        if path.suffix == ".json":
            return read_json_rows(path, required)
        return read_jsonl(path, required)
    text = str(source)
    if text.endswith((".jsonl", ".json")) or text.startswith((".", "/", "~")):
        raise TunegateError(f"{source}: file not found")
    provided = provided_rows(text, **dict(options or {}))
    if provided is not None:
        return [check_row(row, required or {}, f"{text} row {i}") for i, row in enumerate(provided)]
    rows = _load_hub(text, split=split, name=name)
    where = f"{text}" + (f" ({name})" if name else "") + f" split {split}"
    return [check_row(row, required or {}, f"{where} row {i}") for i, row in enumerate(rows)]


def _load_hub(source: str, *, split: str, name: str | None, local: bool = False) -> list[dict[str, Any]]:
    try:
        import datasets
    except ImportError:  # pragma: no cover - datasets is a dependency
        raise TunegateError(f"{source}: install 'datasets' to load hub datasets, or give a local path") from None
    try:
        ds = datasets.load_dataset(source, name, split=split)
    except Exception as exc:  # noqa: BLE001 - datasets raises many kinds; all mean "not loadable"
        if local:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise TunegateError(f"{source}: no {split}.jsonl or {split}.json in this directory, and datasets "
                                f"cannot read it as a dataset repository ({first})") from None
        offline = os.environ.get("HF_HUB_OFFLINE", "0") not in ("", "0") or "offline" in str(exc).lower() \
            or "connect" in str(exc).lower()
        what = f"'{source}'" + (f" (config {name})" if name else "") + f" split '{split}'"
        if offline:
            raise TunegateError(
                f"dataset {what} is not cached and the hub is unreachable: run "
                f"`huggingface-cli download --repo-type dataset {source} --local-dir DIR` where there is "
                f"network and give DIR, or give a local .jsonl file or directory instead") from None
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise TunegateError(f"dataset {what} could not be loaded ({first}); "
                            f"give a local .jsonl file or directory instead") from None
    return [dict(row) for row in ds]
