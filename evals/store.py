"""The results store: runs, their suites and items, comparisons and blessed baselines in SQLite.

Every write is one transaction (``BEGIN IMMEDIATE``, WAL journal, a busy
timeout), so a writer killed mid-write loses only its own uncommitted run and
two processes can add runs at once. The schema is versioned in ``meta`` and
brought up to date by applying ``MIGRATIONS`` in order. Example::

    store = Store("sqlite:///runs/tunegate.sqlite")      # or a plain file path
    run_id = store.add_run(RunRecord.load("sft.json"), model_line="tiny-sft")
    store.bless("tiny-sft", run_id)
    store.blessed("tiny-sft").fingerprint                 # the same record back
    store.history("tiny-sft")[-1]
    # ("20260101T000000-3f2a9c1b", "2026-01-01T00:00:00", {"math.exact_match": (0.57, 0.014), ...})
    store.runs("tiny-sft")[-1]
    # StoredRun(run_id="20260101T000000-3f2a9c1b", model_line="tiny-sft", model="runs/sft/model",
    #           fingerprint="9f1c...", stage="sft", created="2026-01-01T00:00:00", blessed=True,
    #           metrics={"math.exact_match": 0.57, ...})

A pipeline run stores all its stages and their comparisons in one transaction
(``add_pipeline``): the line holds every stage's record (``stage`` says which),
and ``history(line, stage="sft")`` follows one stage. A record already stored in a
line (the same content, by its sha256 ``digest``) is not stored twice: ``add_run``
returns the run that holds it. Each item keeps the hash of its question (``asked``),
so a stored baseline pairs with a candidate only on the same questions.

A write the file system refuses (a read-only store, a full disk) is one TunegateError
naming the store; ``Store(path, create=False)`` (``store list``, ``history``, a
``store:LINE`` baseline) opens an existing store only and never creates one.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator, Sequence

from tunegate.core.errors import RecordError, TunegateError
from tunegate.evals.records import Comparison, ItemScore, MetricValue, NoiseFloor, RunRecord, SuiteResult

SCHEMA_VERSION = 1

#: Applied in order; migration i brings the schema from version i to i + 1.
MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE runs (
        run_id TEXT PRIMARY KEY, model_line TEXT NOT NULL, model TEXT NOT NULL, fingerprint TEXT NOT NULL,
        stage TEXT, created TEXT NOT NULL, added TEXT NOT NULL, header TEXT NOT NULL);
    CREATE INDEX runs_line ON runs(model_line, added);
    CREATE TABLE suite_results (
        run_id TEXT NOT NULL REFERENCES runs(run_id) ON DELETE CASCADE, suite TEXT NOT NULL,
        version TEXT NOT NULL, metrics TEXT NOT NULL, config TEXT NOT NULL, breakdowns TEXT NOT NULL,
        seconds REAL NOT NULL, position INTEGER NOT NULL, PRIMARY KEY (run_id, suite));
    CREATE TABLE item_results (
        run_id TEXT NOT NULL, suite TEXT NOT NULL, position INTEGER NOT NULL, item_id TEXT NOT NULL,
        prompt TEXT, response TEXT, answer TEXT, target TEXT, scores TEXT NOT NULL, grp TEXT, meta TEXT,
        PRIMARY KEY (run_id, suite, position),
        FOREIGN KEY (run_id, suite) REFERENCES suite_results(run_id, suite) ON DELETE CASCADE);
    CREATE TABLE comparisons (
        comparison_id INTEGER PRIMARY KEY AUTOINCREMENT, model_line TEXT, baseline_run_id TEXT,
        candidate_run_id TEXT, created TEXT NOT NULL, passed INTEGER NOT NULL, body TEXT NOT NULL);
    CREATE TABLE baselines (
        model_line TEXT PRIMARY KEY, run_id TEXT NOT NULL REFERENCES runs(run_id), blessed_at TEXT NOT NULL);
    """,
    """
    ALTER TABLE item_results ADD COLUMN asked TEXT;
    ALTER TABLE runs ADD COLUMN digest TEXT;
    CREATE INDEX runs_digest ON runs(model_line, digest);
    """,
)

DEFAULT_STORE = "runs/tunegate.sqlite"


@dataclass(frozen=True)
class StoredRun:
    """One stored run as ``tunegate store list`` shows it: its header, blessed mark and headline metrics."""

    run_id: str
    model_line: str
    model: str
    fingerprint: str
    stage: str | None
    created: str
    blessed: bool = False
    metrics: dict[str, float] = field(default_factory=dict)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="microseconds")


class Store:
    """A SQLite results store at ``url`` (a path or ``sqlite:///path``); created and migrated on open."""

    def __init__(self, url: str | Path = DEFAULT_STORE, *, timeout_s: float = 30.0, create: bool = True) -> None:
        self.path = _path_from_url(url)
        if self.path != ":memory:":
            if not create and not Path(self.path).is_file():
                raise TunegateError(f"{self.path}: no results store there (`tunegate store add`, `tunegate run` "
                                    f"and the plugin's --gate-update-baseline create one)")
            try:
                Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise TunegateError(f"{self.path}: cannot create the results store ({exc.strerror or exc})") from None
        try:
            self._db = sqlite3.connect(self.path, timeout=timeout_s, isolation_level=None)
            self._db.execute(f"PRAGMA busy_timeout = {int(timeout_s * 1000)}")
            self._db.execute("PRAGMA journal_mode = WAL")
            self._db.execute("PRAGMA foreign_keys = ON")
            self._migrate()
        except sqlite3.DatabaseError as exc:
            raise TunegateError(f"{self.path}: not a usable tunegate store ({exc})") from None

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction: committed on success, rolled back on any error; a write the file system
        refuses (read-only, disk full) is one TunegateError naming the store."""
        try:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")
        except sqlite3.OperationalError as exc:
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
            raise TunegateError(f"{self.path}: cannot write the results store ({exc}); check that it is writable "
                                f"and the disk has room") from None

    def _version(self) -> int:
        if not self._db.execute("SELECT 1 FROM sqlite_master WHERE name = 'meta'").fetchone():
            return 0
        row = self._db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        return int(row[0]) if row else 0

    def _migrate(self) -> None:
        if self._version() == len(MIGRATIONS):
            return  # up to date: no write, so a read-only store opens for reading
        with self.transaction() as db:
            db.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
            version = self._version()
            if version > len(MIGRATIONS):
                raise TunegateError(f"{self.path}: store schema_version {version} is newer than this tunegate "
                                    f"({len(MIGRATIONS)}); upgrade tunegate")
            for i in range(version, len(MIGRATIONS)):
                for statement in MIGRATIONS[i].split(";"):
                    if statement.strip():
                        db.execute(statement)
                db.execute("INSERT OR REPLACE INTO meta VALUES ('schema_version', ?)", (str(i + 1),))

    @property
    def schema_version(self) -> int:
        return int(self._db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0])

    # --- runs -------------------------------------------------------------------------

    def add_run(self, record: RunRecord, model_line: str, run_id: str | None = None) -> str:
        """Store a whole record (suites and items) in one transaction; returns its run id (the run that
        already holds the same record in this line, if one does: a record is stored once)."""
        with self.transaction() as db:
            return self._insert_run(db, record, model_line, run_id)

    def stored_run(self, record: RunRecord, model_line: str) -> str | None:
        """The run of ``model_line`` that holds this very record (same content), or None."""
        row = self._db.execute("SELECT run_id FROM runs WHERE model_line = ? AND digest = ? ORDER BY added LIMIT 1",
                               (model_line, record_digest(record))).fetchone()
        return row[0] if row else None

    def add_pipeline(self, model_line: str, records: Sequence[RunRecord],
                     comparisons: Sequence[Comparison] = ()) -> dict[str, str]:
        """A pipeline's records (one per stage) and the comparisons between them, in one transaction.

        A comparison is linked to the runs whose ``stage`` is its ``baseline_stage`` and
        ``candidate_stage``. Returns ``{stage: run_id}``.
        """
        with self.transaction() as db:
            ids = {record.stage or "": self._insert_run(db, record, model_line) for record in records}
            for comparison in comparisons:
                self._insert_comparison(db, comparison, model_line, ids.get(comparison.baseline_stage or ""),
                                        ids.get(comparison.candidate_stage or ""))
        return ids

    def _insert_run(self, db: sqlite3.Connection, record: RunRecord, model_line: str, run_id: str | None = None) -> str:
        if not model_line:
            raise TunegateError("add_run: model_line must be a non-empty string")
        existing = self.stored_run(record, model_line)
        if existing is not None:
            return existing
        run_id = run_id or f"{datetime.now(timezone.utc):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}"
        header = {k: v for k, v in record.to_dict().items() if k != "suites"}
        if db.execute("SELECT 1 FROM runs WHERE run_id = ?", (run_id,)).fetchone():
            raise TunegateError(f"{self.path}: run id '{run_id}' already exists")
        db.execute("INSERT INTO runs (run_id, model_line, model, fingerprint, stage, created, added, header, digest) "
                   "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                   (run_id, model_line, record.model, record.fingerprint, record.stage,
                    record.created or _now(), _now(), _dumps(header), record_digest(record)))
        for pos, (name, suite) in enumerate(record.suites.items()):
            db.execute("INSERT INTO suite_results VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                       (run_id, name, suite.version, _dumps({k: m.to_dict() for k, m in suite.metrics.items()}),
                        _dumps(dict(suite.config)), _dumps({k: dict(v) for k, v in suite.breakdowns.items()}),
                        suite.seconds, pos))
            db.executemany("INSERT INTO item_results (run_id, suite, position, item_id, prompt, response, answer, "
                           "target, scores, grp, meta, asked) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", [
                (run_id, name, i, it.item_id, it.prompt, it.response, _dumps(it.answer), _dumps(it.target),
                 _dumps(it.to_dict()["scores"]), it.group, _dumps(dict(it.meta)), it.asked)
                for i, it in enumerate(suite.items)])
        return run_id

    def get_run(self, run_id: str) -> RunRecord:
        """The stored record, equal to the one added."""
        row = self._db.execute("SELECT header FROM runs WHERE run_id = ?", (run_id,)).fetchone()
        if row is None:
            raise TunegateError(f"{self.path}: no run '{run_id}'")
        data = json.loads(row[0])
        suites: dict[str, Any] = {}
        for name, version, metrics, config, breakdowns, seconds in self._db.execute(
            "SELECT suite, version, metrics, config, breakdowns, seconds FROM suite_results "
            "WHERE run_id = ? ORDER BY position", (run_id,)):
            items = tuple(
                ItemScore.from_dict({"item_id": r[0], "prompt": r[1], "response": r[2], "answer": json.loads(r[3]),
                                     "target": json.loads(r[4]), "scores": json.loads(r[5]), "group": r[6],
                                     "meta": json.loads(r[7]), "asked": r[8]}, f"{self.path} run {run_id} suite {name}")
                for r in self._db.execute(
                    "SELECT item_id, prompt, response, answer, target, scores, grp, meta, asked FROM item_results "
                    "WHERE run_id = ? AND suite = ? ORDER BY position", (run_id, name)))
            suites[name] = SuiteResult(
                suite=name, version=version, items=items, seconds=seconds, config=json.loads(config),
                breakdowns=json.loads(breakdowns),
                metrics={k: MetricValue.from_dict(v) for k, v in json.loads(metrics).items()})
        try:
            return RunRecord(
                model=data["model"], fingerprint=data["fingerprint"], suites=suites,
                generation=data.get("generation") or {}, env=data.get("env") or {}, stage=data.get("stage"),
                created=data.get("created", ""), seconds=float(data.get("seconds", 0.0)),
                noise=NoiseFloor.from_dict(data["noise"], f"{self.path} run {run_id}: noise") if data.get("noise") else None)
        except KeyError as exc:
            raise RecordError(f"{self.path} run {run_id}: missing field {exc}") from None

    def run_ids(self, model_line: str | None = None) -> list[str]:
        """Run ids in the order they were added (of one model line, or all)."""
        sql, args = "SELECT run_id FROM runs", ()
        if model_line is not None:
            sql, args = sql + " WHERE model_line = ?", (model_line,)
        return [r[0] for r in self._db.execute(sql + " ORDER BY added, rowid", args)]

    def runs(self, model_line: str | None = None) -> list[StoredRun]:
        """Every stored run (of one model line, or all), oldest first, with its blessed mark and metrics."""
        blessed = {r[0] for r in self._db.execute("SELECT run_id FROM baselines")}
        sql = "SELECT run_id, model_line, model, fingerprint, stage, created FROM runs"
        args: tuple[str, ...] = ()
        if model_line is not None:
            sql, args = sql + " WHERE model_line = ?", (model_line,)
        return [StoredRun(run_id, line, model, fingerprint, stage, created, run_id in blessed,
                          {name: value for name, (value, _) in self._metrics(run_id).items()})
                for run_id, line, model, fingerprint, stage, created in
                self._db.execute(sql + " ORDER BY added, rowid", args).fetchall()]

    def _metrics(self, run_id: str) -> dict[str, tuple[float, float | None]]:
        """``{suite.metric: (value, stderr)}`` of one run, in suite order."""
        values: dict[str, tuple[float, float | None]] = {}
        for suite, metrics in self._db.execute(
                "SELECT suite, metrics FROM suite_results WHERE run_id = ? ORDER BY position", (run_id,)):
            for name, m in json.loads(metrics).items():
                values[f"{suite}.{name}"] = (m["value"], m.get("stderr"))
        return values

    # --- comparisons and baselines -----------------------------------------------------

    def add_comparison(self, comparison: Comparison, *, model_line: str | None = None,
                       baseline_run_id: str | None = None, candidate_run_id: str | None = None) -> int:
        """Store a comparison (as its JSON) and return its id."""
        with self.transaction() as db:
            return self._insert_comparison(db, comparison, model_line, baseline_run_id, candidate_run_id)

    @staticmethod
    def _insert_comparison(db: sqlite3.Connection, comparison: Comparison, model_line: str | None,
                           baseline_run_id: str | None, candidate_run_id: str | None) -> int:
        cur = db.execute("INSERT INTO comparisons (model_line, baseline_run_id, candidate_run_id, created, "
                         "passed, body) VALUES (?, ?, ?, ?, ?, ?)",
                         (model_line, baseline_run_id, candidate_run_id, _now(), int(comparison.passed),
                          _dumps(comparison.to_dict())))
        return int(cur.lastrowid)

    def comparison_ids(self, model_line: str | None = None) -> list[int]:
        """Comparison ids in the order they were added (of one model line, or all)."""
        sql, args = "SELECT comparison_id FROM comparisons", ()
        if model_line is not None:
            sql, args = sql + " WHERE model_line = ?", (model_line,)
        return [r[0] for r in self._db.execute(sql + " ORDER BY comparison_id", args)]

    def comparison_runs(self, comparison_id: int) -> tuple[str | None, str | None]:
        """The (baseline, candidate) run ids a comparison was stored with."""
        row = self._db.execute("SELECT baseline_run_id, candidate_run_id FROM comparisons WHERE comparison_id = ?",
                               (comparison_id,)).fetchone()
        if row is None:
            raise TunegateError(f"{self.path}: no comparison {comparison_id}")
        return row[0], row[1]

    def get_comparison(self, comparison_id: int) -> Comparison:
        row = self._db.execute("SELECT body FROM comparisons WHERE comparison_id = ?", (comparison_id,)).fetchone()
        if row is None:
            raise TunegateError(f"{self.path}: no comparison {comparison_id}")
        return Comparison.from_dict(json.loads(row[0]), where=f"{self.path} comparison {comparison_id}")

    def bless(self, model_line: str, run_id: str) -> None:
        """Make ``run_id`` the baseline of ``model_line`` (replacing the previous one)."""
        with self.transaction() as db:
            if not db.execute("SELECT 1 FROM runs WHERE run_id = ?", (run_id,)).fetchone():
                raise TunegateError(f"{self.path}: cannot bless unknown run '{run_id}'")
            db.execute("INSERT OR REPLACE INTO baselines VALUES (?, ?, ?)", (model_line, run_id, _now()))

    def blessed_run_id(self, model_line: str) -> str | None:
        row = self._db.execute("SELECT run_id FROM baselines WHERE model_line = ?", (model_line,)).fetchone()
        return row[0] if row else None

    def blessed(self, model_line: str) -> RunRecord | None:
        """The blessed baseline record of ``model_line``, or None."""
        run_id = self.blessed_run_id(model_line)
        return None if run_id is None else self.get_run(run_id)

    def history(self, model_line: str,
                stage: str | None = None) -> list[tuple[str, str, dict[str, tuple[float, float | None]]]]:
        """(run_id, created, {suite.metric: (value, stderr)}) of every run of the line (or of one stage), oldest first.

        ``tunegate run`` stores base, sft, dpo ... records under one line; ``stage`` follows one of them.
        """
        sql, args = "SELECT run_id, created FROM runs WHERE model_line = ?", (model_line,)
        if stage is not None:
            sql, args = sql + " AND stage = ?", (model_line, stage)
        return [(run_id, created, self._metrics(run_id))
                for run_id, created in self._db.execute(sql + " ORDER BY added, rowid", args).fetchall()]

    def find_run(self, model_line: str, record: RunRecord) -> str | None:
        """The newest run of ``model_line`` stored from ``record`` (same fingerprint, stage and creation time)."""
        row = self._db.execute("SELECT run_id FROM runs WHERE model_line = ? AND fingerprint = ? AND stage IS ? "
                               "AND created = ? ORDER BY added DESC, rowid DESC LIMIT 1",
                               (model_line, record.fingerprint, record.stage, record.created)).fetchone()
        return row[0] if row else None

    def latest_run_id(self, model_line: str) -> str | None:
        """The newest run of ``model_line`` (the last stage of the last pipeline stored there), or None."""
        ids = self.run_ids(model_line)
        return ids[-1] if ids else None

    def integrity_check(self) -> str:
        return str(self._db.execute("PRAGMA integrity_check").fetchone()[0])


def record_digest(record: RunRecord) -> str:
    """sha256 of a record's whole content (what ``add_run`` stores once per model line)."""
    text = json.dumps(record.to_dict(), sort_keys=True, allow_nan=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def _dumps(value: Any) -> str:
    return json.dumps(value, allow_nan=True, separators=(",", ":"))


def _path_from_url(url: str | Path) -> str:
    text = str(url)
    if text.startswith("sqlite:///"):
        text = text[len("sqlite:///"):] or ":memory:"
    elif "://" in text:
        raise TunegateError(f"store '{text}': only SQLite is supported (a file path or sqlite:///path)")
    return text
