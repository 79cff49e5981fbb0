"""``tunegate store add|bless|list`` and ``tunegate history`` through the real CLI, on saved records."""

from __future__ import annotations

from pathlib import Path

import pytest

from tunegate.cli import main
from tunegate.evals.records import RunRecord
from tunegate.evals.store import Store
from tests.evals.test_compare_records import make_record

SUITES = ("math", "ifeval")


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("store_cli")
    base = make_record(41, model="base", suites=SUITES)
    return {"base": base.save(d / "base.json"),
            "sft": make_record(42, model="sft", like=base, suites=SUITES, flip={"math": 0.1}).save(d / "sft.json")}


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def test_add_stores_the_record_and_prints_its_run_id(files, tmp_path, capsys) -> None:
    db = str(tmp_path / "s.sqlite")
    code, out, _ = run(["store", "add", str(files["sft"]), "--model-line", "tiny", "--store", db], capsys)
    run_id = out.split()[2]
    with Store(db) as store:
        assert code == 0 and store.run_ids("tiny") == [run_id] and store.blessed_run_id("tiny") is None
        assert store.get_run(run_id) == RunRecord.load(files["sft"])


def test_add_with_bless_makes_it_the_baseline(files, tmp_path, capsys) -> None:
    db = str(tmp_path / "s.sqlite")
    code, out, _ = run(["store", "add", str(files["base"]), "--model-line", "tiny", "--store", db, "--bless"], capsys)
    with Store(db) as store:
        assert code == 0 and store.blessed_run_id("tiny") == out.split()[2]


def test_add_of_a_broken_record_exits_2_naming_the_file_and_stores_nothing(tmp_path, capsys) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"schema_version": 1, "model": "x"')
    db = tmp_path / "s.sqlite"
    code, _, err = run(["store", "add", str(bad), "--model-line", "tiny", "--store", str(db)], capsys)
    assert code == 2 and err.startswith(f"tunegate: error: {bad}") and err.count("\n") == 1
    assert not db.exists()


def _store_two(files: dict[str, Path], db: Path) -> tuple[str, str]:
    with Store(db) as store:
        return (store.add_run(RunRecord.load(files["base"]), "tiny", run_id="r1"),
                store.add_run(RunRecord.load(files["sft"]), "tiny", run_id="r2"))


def test_bless_latest_blesses_the_newest_run_of_the_line(files, tmp_path, capsys) -> None:
    db = tmp_path / "s.sqlite"
    _store_two(files, db)
    code, out, _ = run(["store", "bless", "tiny", "latest", "--store", str(db)], capsys)
    with Store(db) as store:
        assert code == 0 and store.blessed_run_id("tiny") == "r2" and "blessed run r2" in out


def test_bless_if_unblessed_keeps_an_existing_baseline(files, tmp_path, capsys) -> None:
    db = tmp_path / "s.sqlite"
    _store_two(files, db)
    assert run(["store", "bless", "tiny", "r1", "--store", str(db), "--if-unblessed"], capsys)[0] == 0
    code, out, _ = run(["store", "bless", "tiny", "latest", "--store", str(db), "--if-unblessed"], capsys)
    with Store(db) as store:
        assert code == 0 and store.blessed_run_id("tiny") == "r1" and "already has a blessed run (r1)" in out


def test_bless_of_a_run_not_in_the_line_exits_2(files, tmp_path, capsys) -> None:
    db = tmp_path / "s.sqlite"
    _store_two(files, db)
    code, _, err = run(["store", "bless", "other", "r1", "--store", str(db)], capsys)
    assert code == 2 and "model line 'other' has no run 'r1'" in err and err.count("\n") == 1


def test_list_shows_each_run_with_blessed_mark_stage_and_metrics(files, tmp_path, capsys) -> None:
    db = tmp_path / "s.sqlite"
    _store_two(files, db)
    with Store(db) as store:
        store.bless("tiny", "r1")
    code, out, _ = run(["store", "list", "tiny", "--store", str(db)], capsys)
    lines = out.splitlines()
    base = RunRecord.load(files["base"])
    assert code == 0 and lines[0].split() == ["run_id", "model_line", "stage", "model", "fingerprint", "created"]
    assert lines[1].split() == ["*", "r1", "tiny", "base", "base", base.fingerprint[:12], base.created]
    assert lines[3].split()[:2] == ["r2", "tiny"]
    math = base.suites["math"].metrics["exact_match"].value
    assert f"math.exact_match={math:.3f}" in lines[2].split()


def test_list_of_an_empty_store_exits_2(tmp_path, capsys) -> None:
    Store(tmp_path / "s.sqlite").close()
    code, _, err = run(["store", "list", "--store", str(tmp_path / "s.sqlite")], capsys)
    assert code == 2 and "no runs stored" in err


@pytest.mark.parametrize("command", [["store", "list"], ["store", "bless", "tiny", "latest"], ["history", "tiny"]])
def test_reading_a_missing_store_is_an_error_that_creates_nothing(command, tmp_path, capsys) -> None:
    missing = tmp_path / "missing.db"
    code, _, err = run([*command, "--store", str(missing)], capsys)
    assert code == 2 and err == (f"tunegate: error: {missing}: no results store there (`tunegate store add`, "
                                 "`tunegate run` and the plugin's --gate-update-baseline create one)\n")
    assert list(tmp_path.iterdir()) == []


def test_adding_the_same_record_twice_stores_one_run_and_says_so(files, tmp_path, capsys) -> None:
    db = str(tmp_path / "s.sqlite")
    _, first, _ = run(["store", "add", str(files["sft"]), "--model-line", "tiny", "--store", db], capsys)
    code, again, _ = run(["store", "add", str(files["sft"]), "--model-line", "tiny", "--store", db], capsys)
    run_id = first.split()[2]
    assert code == 0 and again == (f"{files['sft']} is already stored as run {run_id} (model line tiny) in {db}; "
                                   "nothing added\n")
    with Store(db) as store:
        assert store.run_ids("tiny") == [run_id]


def test_history_prints_each_metric_over_runs(files, tmp_path, capsys) -> None:
    db = tmp_path / "s.sqlite"
    _store_two(files, db)
    with Store(db) as store:
        store.bless("tiny", "r1")
    assert main(["history", "tiny", "--store", str(db)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["metric", "r1*", "r2"]
    assert lines[1].startswith("ifeval.inst_strict") and "±" in lines[1]


def test_history_of_one_stage(files, tmp_path, capsys) -> None:
    db = tmp_path / "s.sqlite"
    _store_two(files, db)
    assert main(["history", "tiny", "--store", str(db), "--stage", "sft"]) == 0
    assert capsys.readouterr().out.splitlines()[0].split() == ["metric", "r2"]


def test_history_of_an_unknown_line_exits_2(tmp_path, capsys) -> None:
    Store(tmp_path / "s.sqlite").close()
    assert main(["history", "nope", "--store", str(tmp_path / "s.sqlite")]) == 2
    assert "no runs stored for model line 'nope'" in capsys.readouterr().err
