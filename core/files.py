"""Reading and writing tunegate's files, every failure one error line naming the file, line and field.

JSON (records, comparisons, manifests) is written atomically (a temporary file renamed into place;
a failed write, disk full included, removes it and is one error line) and strictly (NaN and infinities
become null); JSONL rows and YAML configs are read with their line numbers in errors, and a YAML
mapping that repeats a key is an error, not a silent last-one-wins. Every command checks its output
paths with ``check_output_path`` before it starts any work. A real row of ``shared/data/gsm8k/test.jsonl``::

    {"question": "Janet's ducks lay 16 eggs per day. ...",
     "answer": "Janet sells 16 - 3 - 4 = <<16-3-4=9>>9 duck eggs a day.\\n...\\n#### 18"}

    read_jsonl("test.jsonl", {"question": str, "answer": str})   # -> [{"question": ..., "answer": ...}, ...]
    read_jsonl("test.jsonl", {"question": int})                  # TunegateError: "test.jsonl:1: field
                                                                 #   'question' must be int, got str"
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import secrets
from pathlib import Path
from typing import Any, Mapping, Self

from tunegate.core.errors import RecordError, TunegateError

#: Required fields of a row and their types (a tuple of types allows any of them).
Required = Mapping[str, type | tuple[type, ...]]


def read_json(path: str | Path) -> Any:
    """Read a JSON file, turning every failure into one RecordError naming the file."""
    p = Path(path)
    if not p.is_file():
        raise RecordError(f"{p}: file not found")
    try:
        return json.loads(p.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise RecordError(f"{p}: not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise RecordError(f"{p}: invalid JSON at line {exc.lineno} column {exc.colno} ({exc.msg})") from None


def hash_file(h: Any, path: str | Path) -> Any:
    """Feed the bytes of ``path`` into the hashlib object ``h`` in 4 MiB chunks (a GGUF is hundreds of MB)."""
    with Path(path).open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 22), b""):
            h.update(chunk)
    return h


def sha256_file(path: str | Path) -> str:
    """The sha256 hex digest of a file's bytes."""
    return hash_file(hashlib.sha256(), path).hexdigest()


def _json_default(obj: Any) -> Any:
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return obj.to_dict() if hasattr(obj, "to_dict") else dataclasses.asdict(obj)
    if isinstance(obj, (set, frozenset, tuple)):
        return list(obj)
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "item"):  # numpy scalars
        return obj.item()
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def _finite(obj: Any) -> Any:
    """Replace NaN/inf with None so the file is strict JSON."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


def write_text_atomic(path: str | Path, text: str) -> Path:
    """Write ``text`` to a temporary file beside ``path`` and rename it into place: never a half-written file,
    and no temporary file left behind when the write fails (disk full, quota, permissions: one error line)."""
    p = Path(path)
    tmp: str | None = None
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
        tmp = str(p.with_name(f".{p.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"))  # one per writer
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # the umask's permissions, as open()
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, p)
    except OSError as exc:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        raise TunegateError(f"{p}: cannot write ({exc.strerror or exc})") from None
    return p


def write_json_atomic(path: str | Path, data: Any) -> Path:
    """Write JSON atomically (``write_text_atomic``), strict: NaN and infinities become null."""
    return write_text_atomic(path, json.dumps(_finite(data), indent=1, default=_json_default, allow_nan=False) + "\n")


def check_output_path(path: str | Path, flag: str = "--out", *, directory: bool = False) -> Path:
    """Fail before any work starts when ``path`` cannot be written: one TunegateError naming the flag.

    A file output must not be an existing directory (a directory output not an existing file), and the
    nearest existing folder above it must be a folder this process may write in. Nothing is created::

        check_output_path("runs/")            # TunegateError: --out runs: is a directory; give a file path
        check_output_path("runs", directory=True)
    """
    p = Path(path).expanduser()
    if directory and p.exists() and not p.is_dir():
        raise TunegateError(f"{flag} {p}: is a file; give a directory")
    if not directory and p.is_dir():
        raise TunegateError(f"{flag} {p}: is a directory; give a file path")
    if p.exists() and not os.access(p, os.W_OK):
        raise TunegateError(f"{flag} {p}: not writable (permission denied)")
    folder = p if directory and p.is_dir() else p.parent
    existing = next(q for q in (folder.absolute(), *folder.absolute().parents) if q.exists())
    if not existing.is_dir():
        raise TunegateError(f"{flag} {p}: {existing} is a file, not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise TunegateError(f"{flag} {p}: cannot write in {existing} (permission denied)")
    return p


class JsonFile:
    """``save``/``load`` for a record type with ``to_dict`` and ``from_dict(data, where=...)``: the file is
    written atomically and read back with every error naming the path (RunRecord, Comparison, analyses)."""

    def save(self, path: str | Path) -> Path:
        return write_json_atomic(path, self.to_dict())  # type: ignore[attr-defined]

    @classmethod
    def load(cls, path: str | Path) -> Self:
        return cls.from_dict(read_json(path), where=str(path))  # type: ignore[attr-defined]


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


def numbered_jsonl(path: str | Path, required: Required | None = None) -> list[tuple[int, dict[str, Any]]]:
    """The rows of a JSONL file with their 1-based line numbers; blank lines are skipped."""
    p = Path(path)
    if not p.is_file():
        raise TunegateError(f"{p}: file not found")
    try:
        text = p.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        line = p.read_bytes()[: exc.start].count(b"\n") + 1
        raise TunegateError(f"{p}:{line}: not UTF-8 text (byte {exc.start})") from None
    rows: list[tuple[int, dict[str, Any]]] = []
    # split on "\n" only: str.splitlines() also splits on U+2028, U+0085 ... inside JSON strings
    for lineno, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise TunegateError(f"{p}:{lineno}: invalid JSON ({exc.msg} at column {exc.colno})") from None
        rows.append((lineno, check_row(row, required or {}, f"{p}:{lineno}")))
    if not rows:
        raise TunegateError(f"{p}: empty file (no JSON lines)")
    return rows


def read_jsonl(path: str | Path, required: Required | None = None) -> list[dict[str, Any]]:
    """Read a JSONL file of objects; blank lines are skipped, anything else wrong is a TunegateError."""
    return [row for _, row in numbered_jsonl(path, required)]


def write_jsonl(path: str | Path, rows: Any) -> Path:
    """Write rows as JSON lines (UTF-8, not ASCII-escaped), atomically."""
    return write_text_atomic(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))


def read_json_rows(path: str | Path, required: Required | None = None) -> list[dict[str, Any]]:
    """Read a .json file holding a list of objects (or ``{"rows": [...]}``/``{"data": [...]}``)."""
    p = Path(path)
    data = read_json(p)
    if isinstance(data, dict):
        data = data.get("rows", data.get("data"))
    if not isinstance(data, list):
        raise TunegateError(f"{p}: expected a JSON list of objects")
    if not data:
        raise TunegateError(f"{p}: empty file (no rows)")
    return [check_row(row, required or {}, f"{p}: row {i}") for i, row in enumerate(data)]


def read_yaml(path: str | Path, what: str = "config") -> Any:
    """Parse a YAML file; a missing file, bad YAML, a repeated key or non-UTF-8 text is one TunegateError."""
    p = Path(path)
    if not p.is_file():
        raise TunegateError(f"{p}: {what} file not found")
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise TunegateError(f"{p}: not UTF-8 text") from None
    return load_yaml(text, str(p))


def load_yaml(text: str, where: str) -> Any:
    """YAML text as Python values, safely (tags are inert) and strictly: a mapping that repeats a key is a
    TunegateError naming ``where``, the key and both lines (PyYAML alone keeps the last one silently)."""
    import yaml

    try:
        return yaml.load(text, Loader=_strict_loader())  # noqa: S506 - a SafeLoader subclass
    except _DuplicateKey as exc:
        raise TunegateError(f"{where}: {exc}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1} column {mark.column + 1}" if mark else ""
        raise TunegateError(f"{where}: malformed YAML{at} ({getattr(exc, 'problem', None) or exc})") from None


class _DuplicateKey(Exception):
    pass


_LOADER: Any = None


def _strict_loader() -> Any:
    """yaml.SafeLoader whose mappings refuse a key given twice (merge keys ``<<`` keep YAML's override rule)."""
    global _LOADER
    if _LOADER is None:
        import yaml

        class StrictLoader(yaml.SafeLoader):
            pass

        def mapping(loader: Any, node: Any, deep: bool = False) -> Any:
            seen: dict[Any, int] = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key = loader.construct_object(key_node, deep=True)
                line = key_node.start_mark.line + 1
                try:
                    if key in seen:
                        raise _DuplicateKey(f"duplicate key '{key}' at line {line} (first at line {seen[key]})")
                    seen[key] = line
                except TypeError:  # an unhashable key: PyYAML's own constructor says so
                    continue
            return loader.construct_mapping(node, deep=deep)

        StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, mapping)
        _LOADER = StrictLoader
    return _LOADER
