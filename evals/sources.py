"""Rows of a dataset from wherever it lives: a local file or folder, the HF hub, or a named provider.

Shared by the eval suites and the training data builders; every failure is one TunegateError naming
the file, line and field::

    load_rows("shared/data/gsm8k/test.jsonl", split="test")    # a local .jsonl / .json file
    load_rows("shared/data/gsm8k", split="test")               # a folder holding test.jsonl
    load_rows("openai/gsm8k", name="main", split="test")       # a hub id, through datasets.load_dataset
    load_rows("downloads/identity", split="train")             # a hub repository's files, the same way
    load_rows("organism:arithmetic", split="test", options={"n": 100})   # a provider's dataset

A benchmark's offline copy lives in the data folder (``data_dir()``: ``$TUNEGATE_DATA``, default
``~/.cache/tunegate/data``) in the layout its suite reads; ``tunegate data fetch NAME`` writes it
(``fetch_benchmark``) and the suite's default source is that copy when it is there, else the hub id::

    GSM8K = Benchmark("gsm8k", "openai/gsm8k", "main", {"test": "test.jsonl", "train": "train.jsonl"}, REQUIRED, row)
    GSM8K.default_source("test")    # "~/.cache/tunegate/data/gsm8k" once fetched, else "openai/gsm8k"
    fetch_benchmark(GSM8K, data_dir())   # [Fetched(path=.../gsm8k/test.jsonl, rows=1319, sha256="3730d312..."), ...]
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

from tunegate.core import progress
from tunegate.core.errors import TunegateError
from tunegate.core.files import Required, check_row, read_json_rows, read_jsonl, sha256_file, write_text_atomic
from tunegate.evals.cache import default_cache_dir
from tunegate.evals.providers import provided_rows

#: The folder ``tunegate data fetch`` writes and the IFEval, GSM8K and MMLU suites read first.
DATA_ENV = "TUNEGATE_DATA"


class HubUnreachable(TunegateError):
    """A hub dataset that is not cached while the hub cannot be reached (offline, or no network)."""


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
        if local and (Path(source) / "dataset_dict.json").is_file():  # save_to_disk: its split names, as saved
            ds = datasets.load_from_disk(source)[split]
        else:
            ds = datasets.load_dataset(source, name, split=split)
    except Exception as exc:  # noqa: BLE001 - datasets raises many kinds; all mean "not loadable"
        if local:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise TunegateError(f"{source}: no {split}.jsonl or {split}.json in this directory, and datasets "
                                f"cannot read it as a dataset repository ({first})") from None
        offline = os.environ.get("HF_HUB_OFFLINE", "0") not in ("", "0") or isinstance(exc, ConnectionError) \
            or "offline" in str(exc).lower() or "connect" in str(exc).lower()
        what = f"'{source}'" + (f" (config {name})" if name else "") + f" split '{split}'"
        if offline:
            raise HubUnreachable(
                f"dataset {what} is not cached and the hub is unreachable: run "
                f"`huggingface-cli download --repo-type dataset {source} --local-dir DIR` where there is "
                f"network and give DIR, or give a local .jsonl file or directory instead") from None
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise TunegateError(f"dataset {what} could not be loaded ({first}); "
                            f"give a local .jsonl file or directory instead") from None
    return [dict(row) for row in ds]


def data_dir() -> Path:
    """Where ``tunegate data fetch`` writes and the suites look first: ``$TUNEGATE_DATA``, else
    ``$TUNEGATE_CACHE/data`` (default ``~/.cache/tunegate/data``)."""
    explicit = os.environ.get(DATA_ENV)
    return Path(explicit).expanduser() if explicit else default_cache_dir().expanduser() / "data"


@dataclass(frozen=True)
class Benchmark:
    """A hub benchmark and its offline copy: ``data_dir()/NAME/FILE`` per split, rows in the suite's schema.

    ``row`` turns a hub row into the file's row (IFEval: Google's kwargs without the hub's null-filled
    keys); ``ensure_ascii`` follows the reference files (Google's and OpenAI's escape non-ASCII, MMLU's not).
    """

    name: str
    hub_id: str
    config: str | None
    files: Mapping[str, str]  # hub split -> file name in the folder
    required: Required
    row: Callable[[dict[str, Any]], dict[str, Any]]
    ensure_ascii: bool = True

    def default_source(self, *wanted: str | None, config: str | None = None) -> str:
        """The local copy when ``data_dir()/NAME`` holds the files of the splits ``wanted`` (None: no split) and
        ``config`` is the hub config it was fetched from, else the hub id. The copy is the folder (its files
        are ``SPLIT.jsonl``) or its one file (IFEval's ``input_data.jsonl``)."""
        splits = [s for s in wanted if s is not None]
        folder = data_dir() / self.name
        if config != self.config or not all(s in self.files and (folder / self.files[s]).is_file() for s in splits):
            return self.hub_id
        paths = [folder / self.files[s] for s in splits]
        return str(paths[0]) if len(paths) == 1 and paths[0].stem != splits[0] else str(folder)


@dataclass(frozen=True)
class Fetched:
    """One file ``fetch_benchmark`` wrote."""

    path: Path
    rows: int
    sha256: str


def fetch_benchmark(bench: Benchmark, out: Path, source: str | None = None) -> list[Fetched]:
    """Write each split of ``bench`` to ``out/NAME/FILE`` (atomically), read from the hub or ``source`` (a hub
    id, a folder ``save_to_disk`` or ``huggingface-cli download`` wrote, or this layout's own folder).

    Every split is read before any file is written, so a failure leaves the folder as it was; a hub that
    cannot be reached is one HubUnreachable line saying what to run where it can be, or which folder to copy.
    """
    origin = source or bench.hub_id
    texts = {}
    for split, filename in bench.files.items():
        progress.log(f"data fetch {bench.name}: {origin}" + (f" ({bench.config})" if bench.config else "")
                     + f" split {split}")
        try:
            rows = load_rows(origin, split=split, name=bench.config, required=bench.required)
        except HubUnreachable:
            raise HubUnreachable(
                f"data fetch {bench.name}: {origin} is not cached and the hub is unreachable: run "
                f"`tunegate data fetch {bench.name} --out DIR` where it is reachable and copy DIR/{bench.name} "
                f"to {out / bench.name} (or set {DATA_ENV}=DIR), or download the dataset's files "
                f"(`huggingface-cli download --repo-type dataset {bench.hub_id} --local-dir FOLDER`) and give "
                f"--source FOLDER") from None
        texts[filename] = (len(rows), "".join(json.dumps(bench.row(r), ensure_ascii=bench.ensure_ascii) + "\n"
                                              for r in rows))
    written = []
    for filename, (count, text) in texts.items():
        path = write_text_atomic(out / bench.name / filename, text)
        written.append(Fetched(path=path, rows=count, sha256=sha256_file(path)))
    return written
