"""Rows from local JSONL/JSON files or hub datasets, validated, with one-line errors.

Shared by the eval suites and the training data builders. A real row of
``shared/data/gsm8k/test.jsonl``::

    {"question": "Janet's ducks lay 16 eggs per day. ...",
     "answer": "Janet sells 16 - 3 - 4 = <<16-3-4=9>>9 duck eggs a day.\\n...\\n#### 18"}

    read_jsonl("test.jsonl", {"question": str, "answer": str})   # -> [{"question": ..., "answer": ...}, ...]
    load_rows("openai/gsm8k", name="main", split="test")        # hub id, through datasets.load_dataset

Every failure is a TunegateError whose message is one line naming the file,
the line number and the field.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Mapping

from evals.errors import TunegateError

Required = Mapping[str, type | tuple[type, ...]]


def _type_name(kind: type | tuple[type, ...]) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    return " or ".join(k.__name__ for k in kinds)


def check_row(row: Any, required: Required, where: str) -> dict[str, Any]:
    """Check that ``row`` is an object holding every required field with the right type."""
    if not isinstance(row, dict):
        raise TunegateError(f"{where}: expected a JSON object, got {type(row).__name__}")
    for name, kind in required.items():
        if name not in row:
            raise TunegateError(f"{where}: missing field '{name}'")
        value = row[name]
        kinds = kind if isinstance(kind, tuple) else (kind,)
        # bool is an int subclass: a JSON true is not a number here.
        if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
            raise TunegateError(
                f"{where}: field '{name}' must be {_type_name(kind)}, got {type(value).__name__}")
    return row


def read_jsonl(path: str | Path, required: Required | None = None) -> list[dict[str, Any]]:
    """Read a JSONL file of objects; blank lines are skipped, anything else wrong is a TunegateError."""
    p = Path(path)
    if not p.is_file():
        raise TunegateError(f"{p}: file not found")
    try:
        text = p.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        line = p.read_bytes()[: exc.start].count(b"\n") + 1
        raise TunegateError(f"{p}:{line}: not UTF-8 text (byte {exc.start})") from None
    rows: list[dict[str, Any]] = []
    # split on "\n" only: str.splitlines() also splits on U+2028, U+0085 ... inside JSON strings
    for lineno, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise TunegateError(f"{p}:{lineno}: invalid JSON ({exc.msg} at column {exc.colno})") from None
        rows.append(check_row(row, required or {}, f"{p}:{lineno}"))
    if not rows:
        raise TunegateError(f"{p}: empty file (no JSON lines)")
    return rows


def read_json_rows(path: str | Path, required: Required | None = None) -> list[dict[str, Any]]:
    """Read a .json file holding a list of objects (or ``{"rows": [...]}``/``{"data": [...]}``)."""
    from evals.types import RecordError, read_json

    p = Path(path)
    try:
        data = read_json(p)
    except RecordError as exc:
        raise TunegateError(str(exc)) from None
    if isinstance(data, dict):
        data = data.get("rows", data.get("data"))
    if not isinstance(data, list):
        raise TunegateError(f"{p}: expected a JSON list of objects")
    if not data:
        raise TunegateError(f"{p}: empty file (no rows)")
    return [check_row(row, required or {}, f"{p}: row {i}") for i, row in enumerate(data)]


def _local_file(path: Path, split: str, name: str | None) -> Path:
    """The file for ``split`` in a directory: ``[name/]split.jsonl`` or ``.json``."""
    for base in ([path / name] if name else []) + [path]:
        for suffix in (".jsonl", ".json"):
            candidate = base / f"{split}{suffix}"
            if candidate.is_file():
                return candidate
    raise TunegateError(f"{path}: no {split}.jsonl or {split}.json in this directory")


def load_rows(source: str | Path, *, split: str, name: str | None = None,
              required: Required | None = None) -> list[dict[str, Any]]:
    """Rows of a dataset: a local .jsonl/.json file, a directory holding ``split.jsonl``, or a hub id.

    A hub id goes through ``datasets.load_dataset(source, name, split=split)``
    (imported here, never at import time); when it is not cached and the hub
    cannot be reached, the error says what to download or which path to give.
    """
    path = Path(source)
    if path.is_dir():
        path = _local_file(path, split, name)
    if path.is_file():
        if path.suffix == ".json":
            return read_json_rows(path, required)
        return read_jsonl(path, required)
    text = str(source)
    if text.endswith((".jsonl", ".json")) or text.startswith((".", "/", "~")):
        raise TunegateError(f"{source}: file not found")
    rows = _load_hub(text, split=split, name=name)
    where = f"{text}" + (f" ({name})" if name else "") + f" split {split}"
    return [check_row(row, required or {}, f"{where} row {i}") for i, row in enumerate(rows)]


def _load_hub(source: str, *, split: str, name: str | None) -> list[dict[str, Any]]:
    try:
        import datasets
    except ImportError:  # pragma: no cover - datasets is a dependency
        raise TunegateError(f"{source}: install 'datasets' to load hub datasets, or give a local path") from None
    try:
        ds = datasets.load_dataset(source, name, split=split)
    except Exception as exc:  # noqa: BLE001 - datasets raises many kinds; all mean "not loadable"
        offline = os.environ.get("HF_HUB_OFFLINE", "0") not in ("", "0") or "offline" in str(exc).lower() \
            or "connect" in str(exc).lower()
        what = f"'{source}'" + (f" (config {name})" if name else "") + f" split '{split}'"
        if offline:
            raise TunegateError(
                f"dataset {what} is not cached and the hub is unreachable: run "
                f"`huggingface-cli download --repo-type dataset {source}` where there is network, "
                f"or give a local .jsonl file or directory instead") from None
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise TunegateError(f"dataset {what} could not be loaded ({first}); "
                            f"give a local .jsonl file or directory instead") from None
    return [dict(row) for row in ds]


def read_yaml(path: str | Path, what: str = "config") -> Any:
    """Parse a YAML file; a missing file, bad YAML or non-UTF-8 text is one TunegateError naming the line."""
    import yaml

    p = Path(path)
    if not p.is_file():
        raise TunegateError(f"{p}: {what} file not found")
    try:
        return yaml.safe_load(p.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1} column {mark.column + 1}" if mark else ""
        raise TunegateError(f"{p}: malformed YAML{at} ({getattr(exc, 'problem', None) or exc})") from None
    except UnicodeDecodeError:
        raise TunegateError(f"{p}: not UTF-8 text") from None
