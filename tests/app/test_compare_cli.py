"""``tunegate compare``: table, JSON, exit codes, nothing written on bad input."""

from __future__ import annotations

import json

import pytest

from tunegate.cli import main
from tests.evals.test_compare_records import make_record

SUITES = ("math", "ifeval")


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli")
    base = make_record(31, suites=SUITES)
    return {
        "base": base.save(d / "base.json"),
        "same": make_record(32, model="same", like=base, suites=SUITES).save(d / "same.json"),
        "worse": make_record(33, model="worse", like=base, suites=SUITES, flip={"math": 0.15}).save(d / "worse.json"),
        "other_items": make_record(34, suites=("math",)).save(d / "other.json"),
    }


def test_passing_gate_prints_the_table_and_exits_0(files, capsys):
    assert main(["compare", str(files["base"]), str(files["same"])]) == 0
    out = capsys.readouterr().out
    assert "metric" in out and "math.exact_match" in out and "gate: PASSED" in out


def test_regression_exits_1_and_names_the_metric(files, capsys):
    assert main(["compare", str(files["base"]), str(files["worse"])]) == 1
    captured = capsys.readouterr()
    assert "gate: FAILED" in captured.out and "gate failed on math.exact_match" in captured.err


def test_json_output_and_out_file_hold_the_comparison(files, capsys, tmp_path):
    out = tmp_path / "comparison.json"
    main(["compare", str(files["base"]), str(files["worse"]), "--json", "--out", str(out)])
    printed = json.loads(capsys.readouterr().out)
    assert printed["kind"] == "comparison" and printed["passed"] is False
    assert json.loads(out.read_text()) == printed


def test_truncated_record_exits_2_naming_the_file_and_writes_nothing(files, capsys, tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(files["base"].read_text()[:4000])
    out = tmp_path / "comparison.json"
    assert main(["compare", str(bad), str(files["same"]), "--out", str(out)]) == 2
    assert f"{bad}: invalid JSON" in capsys.readouterr().err
    assert not out.exists()


def test_record_missing_a_field_exits_2_naming_the_field(files, capsys, tmp_path):
    data = json.loads(files["base"].read_text())
    del data["suites"]["math"]["version"]
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(data))
    assert main(["compare", str(bad), str(files["same"])]) == 2
    assert "suite 'math': missing field 'version'" in capsys.readouterr().err


def test_mismatched_items_exit_2(files, capsys):
    assert main(["compare", str(files["other_items"]), str(files["same"])]) == 2
    assert "missing from the baseline" in capsys.readouterr().err


def test_unknown_gate_metric_exits_2(files, capsys, tmp_path):
    gate = tmp_path / "gate.yaml"
    gate.write_text("metrics:\n  math.accuracy: {margin: 0.02}\n")
    assert main(["compare", str(files["base"]), str(files["same"]), "--gate", str(gate)]) == 2
    assert "unknown metric(s) ['math.accuracy']" in capsys.readouterr().err
