"""The SQLite results store: round trip, baselines, history, crash safety, concurrent writers."""

from __future__ import annotations

import dataclasses
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from tunegate.core.errors import TunegateError
from tunegate.evals.compare import compare_records
from tunegate.evals.store import MIGRATIONS, Store
from tests.evals.test_compare_records import make_record

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def record():
    return make_record(5, model="tiny-sft", suites=("math", "ifeval", "knowledge"))


def rerun(record, i: int):
    """The same checkpoint evaluated again later: a record of its own (the store keeps each record once)."""
    import dataclasses

    return dataclasses.replace(record, created=f"2026-01-02T00:00:{i:02d}")


def test_round_trip_returns_an_equal_record(tmp_path, record):
    with Store(tmp_path / "s.sqlite") as store:
        run_id = store.add_run(record, "tiny")
        assert store.get_run(run_id) == record


def test_a_records_noise_floor_round_trips(tmp_path, record):
    import dataclasses

    from tunegate.evals.records import NoiseFloor, NoiseMetric

    floor = NoiseFloor("tiny-sft", record.fingerprint, {"batch_size": 32}, ("batch_size 32 -> 1",),
                       (NoiseMetric("math", "exact_match", "batch_size 32 -> 1", 500, 3, -0.002),), device="cpu")
    noisy = dataclasses.replace(record, noise=floor)
    with Store(tmp_path / "s.sqlite") as store:
        assert store.get_run(store.add_run(noisy, "tiny")) == noisy


def test_sqlite_url_and_path_open_the_same_file(tmp_path, record):
    with Store(tmp_path / "s.sqlite") as store:
        run_id = store.add_run(record, "tiny", run_id="r1")
    with Store(f"sqlite:///{tmp_path / 's.sqlite'}") as store:
        assert store.run_ids("tiny") == [run_id]


def test_other_database_urls_are_rejected():
    with pytest.raises(TunegateError, match="only SQLite"):
        Store("postgresql://db/tunegate")


def test_a_file_that_is_not_sqlite_is_a_clear_error(tmp_path):
    bad = tmp_path / "bad.sqlite"
    bad.write_bytes(b"not a database at all" * 100)
    with pytest.raises(TunegateError, match="not a usable tunegate store"):
        Store(bad)


def test_schema_version_records_all_migrations(tmp_path):
    with Store(tmp_path / "s.sqlite") as store:
        assert store.schema_version == len(MIGRATIONS)


def test_bless_replaces_the_baseline_of_a_model_line(tmp_path, record):
    with Store(tmp_path / "s.sqlite") as store:
        assert store.blessed("tiny") is None
        first = store.add_run(record, "tiny")
        second = store.add_run(make_record(6, model="tiny-dpo", suites=("math",)), "tiny")
        store.bless("tiny", first)
        store.bless("tiny", second)
        assert store.blessed_run_id("tiny") == second
        assert store.blessed("tiny").model == "tiny-dpo"


def test_blessing_an_unknown_run_is_an_error(tmp_path):
    with Store(tmp_path / "s.sqlite") as store, pytest.raises(TunegateError, match="unknown run 'nope'"):
        store.bless("tiny", "nope")


def test_duplicate_run_id_is_an_error_and_writes_nothing(tmp_path, record):
    with Store(tmp_path / "s.sqlite") as store:
        store.add_run(record, "tiny", run_id="r1")
        with pytest.raises(TunegateError, match="already exists"):
            store.add_run(rerun(record, 1), "tiny", run_id="r1")
        assert store.run_ids() == ["r1"]


def test_history_lists_each_metric_per_run_oldest_first(tmp_path, record):
    with Store(tmp_path / "s.sqlite") as store:
        store.add_run(record, "tiny", run_id="a")
        store.add_run(make_record(7, suites=("math",)), "tiny", run_id="b")
        store.add_run(record, "other", run_id="c")
        hist = store.history("tiny")
    assert [h[0] for h in hist] == ["a", "b"]
    m = record.suites["math"].metrics["exact_match"]
    assert hist[0][2]["math.exact_match"] == (m.value, m.stderr)
    assert set(hist[1][2]) == {"math.exact_match"}


def test_history_of_one_stage(tmp_path, record):
    with Store(tmp_path / "s.sqlite") as store:
        store.add_run(record, "tiny", run_id="a")  # stage "tiny-sft"
        store.add_run(make_record(7, suites=("math",)), "tiny", run_id="b")  # stage "base"
        store.add_run(rerun(record, 1), "tiny", run_id="c")
        assert [h[0] for h in store.history("tiny", stage="tiny-sft")] == ["a", "c"]


def test_runs_lists_header_blessed_mark_and_metrics(tmp_path, record):
    with Store(tmp_path / "s.sqlite") as store:
        store.add_run(record, "tiny", run_id="a")
        store.add_run(make_record(7, suites=("math",)), "other", run_id="b")
        store.bless("tiny", "a")
        (run,) = store.runs("tiny")
        assert len(store.runs()) == 2
    assert (run.run_id, run.model_line, run.model, run.fingerprint, run.stage, run.created, run.blessed) == \
        ("a", "tiny", record.model, record.fingerprint, record.stage, record.created, True)
    assert run.metrics == {f"{s}.{m}": v.value for s, r in record.suites.items() for m, v in r.metrics.items()}


def _pipeline():
    """A base and an sft record (make_record's stage is the model name) and their comparison."""
    base = make_record(5, model="base", suites=("math", "ifeval", "knowledge"))
    sft = make_record(9, model="sft", like=base, suites=("math", "ifeval", "knowledge"), flip={"math": 0.1})
    return [base, sft], [compare_records(base, sft)]


def test_add_pipeline_links_each_comparison_to_its_stage_runs(tmp_path):
    records, comparisons = _pipeline()
    with Store(tmp_path / "s.sqlite") as store:
        ids = store.add_pipeline("tiny", records, comparisons)
        (cid,) = store.comparison_ids("tiny")
        assert store.comparison_runs(cid) == (ids["base"], ids["sft"])
        assert store.get_comparison(cid) == comparisons[0]
        assert [store.get_run(ids[s]) for s in ("base", "sft")] == records


def test_a_pipeline_write_that_fails_midway_stores_none_of_its_stages(tmp_path):
    import dataclasses

    (base, sft), comparisons = _pipeline()
    math = sft.suites["math"]
    broken = dataclasses.replace(math, items=(dataclasses.replace(math.items[0], meta={"x": object()}),))
    records = [base, dataclasses.replace(sft, suites={**sft.suites, "math": broken})]
    with Store(tmp_path / "s.sqlite") as store:
        with pytest.raises(TypeError):  # the second stage cannot be written: the whole pipeline rolls back
            store.add_pipeline("tiny", records, comparisons)
        assert store.run_ids() == [] and store.comparison_ids() == []


def test_comparison_round_trip(tmp_path, record):
    cand = make_record(8, model="tiny-dpo", like=record, suites=("math", "ifeval", "knowledge"), flip={"math": 0.1})
    comp = compare_records(record, cand)
    with Store(tmp_path / "s.sqlite") as store:
        cid = store.add_comparison(comp, model_line="tiny", baseline_run_id="a", candidate_run_id="b")
        assert store.get_comparison(cid) == comp


def _python(code: str, *args: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(code), *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_a_writer_killed_before_commit_loses_only_its_own_write(tmp_path, record):
    path = tmp_path / "s.sqlite"
    with Store(path) as store:
        store.add_run(record, "tiny", run_id="committed")
    writer = _python("""
        import sys, time
        from tunegate.evals.store import Store
        store = Store(sys.argv[1])
        db = store._db
        db.execute("BEGIN IMMEDIATE")
        db.execute("INSERT INTO runs (run_id, model_line, model, fingerprint, stage, created, added, header) "
                   "VALUES ('half', 'tiny', 'm', 'fp', NULL, 'c', 'a', '{}')")
        db.execute("INSERT INTO suite_results VALUES ('half', 'math', '1', '{}', '{}', '{}', 0, 0)")
        print("written", flush=True)
        time.sleep(60)
    """, str(path))
    assert writer.stdout.readline().strip() == "written"
    writer.send_signal(signal.SIGKILL)
    writer.wait()
    with Store(path) as store:
        assert store.integrity_check() == "ok"
        assert store.run_ids() == ["committed"]
        assert store.get_run("committed") == record


def test_two_concurrent_writers_add_all_their_runs(tmp_path):
    path = tmp_path / "s.sqlite"
    Store(path).close()
    code = """
        import dataclasses, sys
        from tunegate.evals.store import Store
        from tests.evals.test_compare_records import make_record
        rec = make_record(int(sys.argv[2]), suites=("ifeval",))
        with Store(sys.argv[1]) as store:
            for i in range(10):  # ten evaluations (one record each), not one record ten times
                store.add_run(dataclasses.replace(rec, created=f"2026-01-01T00:00:{i:02d}"), "tiny",
                              run_id=f"w{sys.argv[2]}-{i}")
    """
    writers = [_python(code, str(path), str(w)) for w in (1, 2)]
    for w in writers:
        _, err = w.communicate(timeout=120)
        assert w.returncode == 0, err
    with Store(path) as store:
        assert store.integrity_check() == "ok"
        assert sorted(store.run_ids()) == sorted(f"w{w}-{i}" for w in (1, 2) for i in range(10))
        assert len(store.get_run("w2-9").suites["ifeval"].items) == 541
    assert sqlite3.connect(path).execute("PRAGMA journal_mode").fetchone()[0] == "wal"


@pytest.mark.slow
def test_a_process_killed_mid_add_run_leaves_a_readable_store_with_every_finished_run(tmp_path, record):
    """A real ``add_run`` (three suites, ~2,000 items: tens of milliseconds of writing) killed with SIGKILL."""
    path = tmp_path / "s.sqlite"
    writer = _python("""
        import dataclasses, sys
        from tunegate.evals.store import Store
        from tests.evals.test_compare_records import make_record
        record = make_record(5, model="tiny-sft", suites=("math", "ifeval", "knowledge"))
        with Store(sys.argv[1]) as store:
            for i in range(1000):
                print(f"begin r{i}", flush=True)
                store.add_run(dataclasses.replace(record, created=f"2026-01-01T{i // 60:02d}:{i % 60:02d}:00"), "tiny",
                              run_id=f"r{i}")
                print(f"done r{i}", flush=True)
    """, str(path))
    done, started = [], 0.0
    while len(done) < 3:  # a few runs written in full, then kill inside the next add_run
        line = writer.stdout.readline().split()
        assert line, f"writer died: {writer.stderr.read()[-2000:]}"
        if line[0] == "done":
            done.append(line[1])
            took = time.perf_counter() - started
        else:
            started = time.perf_counter()
    assert writer.stdout.readline().split()[0] == "begin"
    time.sleep(took / 3)
    writer.send_signal(signal.SIGKILL)
    writer.wait()
    with Store(path) as store:
        assert store.integrity_check() == "ok"
        stored = store.run_ids("tiny")
        assert stored in (done, done + [f"r{len(done)}"])  # the killed write is all there or not there at all
        assert all(dataclasses.replace(store.get_run(run_id), created=record.created) == record for run_id in stored)
