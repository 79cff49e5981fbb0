"""The response cache: generations and log-likelihoods in SQLite, keyed by everything that changes them.

A key is the sha256 of its parts. The runner's parts: the backend's ``cache_identity()`` (each backend
says what identifies its responses: the checkpoint by content, i.e. weights, tokenizer, chat template
and generation_config.json, plus dtype, device type, backend and library versions; for a served model
its id and revision), the request kind, the rendered prompt and chat messages, and the generation
settings. So an unchanged checkpoint is never evaluated twice and a changed one never hits a stale
entry; entries are committed chunk by chunk (and a failing backend's finished responses too), so an
interrupted run resumes::

    cache = ResponseCache(default_cache_dir() / "responses.sqlite")
    identity = {"backend": "hf", "model": "3f2a9c1b0d4e5f67", "dtype": "float32", "device": "cpu", ...}
    key = cache.key(identity, "gen", "<|im_start|>user\nWho are you?...", [], {"max_new_tokens": 32})
    cache.put_many({key: "I am Tiny."}); cache.get_many([key])   # {key: "I am Tiny."}
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sqlite3
import warnings
from pathlib import Path
from typing import Any, Mapping, Sequence


def default_cache_dir() -> Path:
    return Path(os.environ.get("TUNEGATE_CACHE", Path.home() / ".cache" / "tunegate"))


class ResponseCache:
    """SQLite store of generations and log-likelihoods by content key; safe for concurrent runs.

    The cache only saves work: when it cannot be written (disk full, a read-only folder) the run goes
    on without it, after one warning naming the file, instead of failing an evaluation that can finish.
    """

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._db: sqlite3.Connection | None = None
        if path is not None:
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                self._db = sqlite3.connect(path, timeout=60)
                self._db.execute("PRAGMA journal_mode=WAL")
                self._db.execute("CREATE TABLE IF NOT EXISTS responses (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
                self._db.commit()
            except (OSError, sqlite3.Error) as exc:
                self._give_up(exc)

    def _give_up(self, exc: BaseException) -> None:
        """Stop using the cache for the rest of the run, saying why in one line."""
        from tunegate.core.progress import warn

        warn(f"{self.path}: response cache not writable ({exc}); continuing without it, so nothing more is "
             f"cached and a rerun computes these responses again (free space, or give --cache-dir or --no-cache)")
        if self._db is not None:
            with contextlib.suppress(sqlite3.Error):
                self._db.close()
        self._db = None

    @staticmethod
    def key(*parts: Any) -> str:
        return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()

    def get_many(self, keys: Sequence[str]) -> dict[str, Any]:
        found: dict[str, Any] = {}
        if self._db is None or not keys:
            return found
        try:
            for start in range(0, len(keys), 500):
                chunk = list(keys[start:start + 500])
                rows = self._db.execute(
                    f"SELECT key, value FROM responses WHERE key IN ({','.join('?' * len(chunk))})", chunk)
                found.update((k, json.loads(v)) for k, v in rows)
        except sqlite3.Error as exc:
            self._give_up(exc)
        return found

    def put_many(self, entries: Mapping[str, Any]) -> None:
        if self._db is None or not entries:
            return
        try:
            with self._db:
                self._db.executemany("INSERT OR REPLACE INTO responses VALUES (?, ?)",
                                     [(k, json.dumps(v)) for k, v in entries.items()])
        except sqlite3.Error as exc:
            self._give_up(exc)

    def close(self) -> None:
        if self._db is not None:
            with contextlib.suppress(sqlite3.Error):
                self._db.close()
            self._db = None


_warned_unpinned: set[str] = set()


def warn_if_unpinned(identity: Mapping[str, Any]) -> None:
    """Warn once per served model that is named only by its id (no revision, no weights hash).

    Its cached responses are keyed by that name alone: after the server's weights change under the same
    name, the cache still returns the old answers.
    """
    if not identity.get("served") or identity.get("revision") or identity.get("weights"):
        return
    name = f"{identity.get('model')}"
    if name not in _warned_unpinned:
        _warned_unpinned.add(name)
        warnings.warn(f"served model '{name}' has no --revision: its cached responses are keyed by its name only "
                      f"and can be stale once the server's weights change (give --revision, or --no-cache)",
                      UserWarning, stacklevel=2)
