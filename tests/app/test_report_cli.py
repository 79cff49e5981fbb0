"""``tunegate report``: files in any order, a store's history, one-line errors with exit code 2."""

from __future__ import annotations

import re

import pytest

from tunegate.cli import main


@pytest.fixture(autouse=True)
def fast_plots(monkeypatch):
    monkeypatch.setattr("tunegate.reports.plots.figure_to_data_uri", lambda fig: "data:image/png;base64,")


@pytest.fixture
def saved(tmp_path, report_inputs):
    records, comparisons, _, _ = report_inputs
    paths = [r.save(tmp_path / f"{r.stage}.json") for r in records]
    paths += [c.save(tmp_path / f"{c.candidate_stage}_vs_{c.baseline_stage}.json") for c in comparisons]
    return paths


def test_report_accepts_records_and_comparisons_mixed(tmp_path, saved, capsys):
    base, sft, dpo, sft_vs_base, dpo_vs_sft = map(str, saved)
    out = tmp_path / "out" / "report.html"
    code = main(["report", dpo_vs_sft, dpo, base, sft_vs_base, sft, "--out", str(out)])
    page = out.read_text()
    assert code == 0 and "gate FAILED" in capsys.readouterr().out
    header = re.search(r'<table class="metrics">\s*<thead>(.*?)</thead>', page, re.S).group(1)
    assert re.findall(r"<th[^>]*>([^<]*)</th>", header)[2:] == ["base", "sft", "dpo", "Δ sft vs base", "Δ dpo vs sft"]


def test_report_plots_the_store_history(tmp_path, saved, report_inputs):
    from tunegate.evals.store import Store

    with Store(tmp_path / "store.sqlite") as store:
        for record in report_inputs[0]:
            store.add_run(record, model_line="tiny")
    out = tmp_path / "report.html"
    assert main(["report", *map(str, saved), "--out", str(out), "--store", str(tmp_path / "store.sqlite"),
                 "--model-line", "tiny"]) == 0
    assert 'id="trend"' in out.read_text()


def test_report_of_a_bad_file_is_one_line_and_exit_2(tmp_path, capsys):
    bad = tmp_path / "bad.json"
    bad.write_text('{"kind": "something_else"}')
    assert main(["report", str(bad), "--out", str(tmp_path / "r.html")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "bad.json" in err and not (tmp_path / "r.html").exists()


def test_store_without_model_line_is_a_usage_error(tmp_path, saved, capsys):
    assert main(["report", str(saved[0]), "--store", str(tmp_path / "s.sqlite")]) == 2
    assert "--model-line" in capsys.readouterr().err


def test_report_with_a_gate_compares_the_records_itself(tmp_path, capsys, monkeypatch):
    from tests.evals.test_compare_records import make_record

    base = make_record(51)
    worse = make_record(52, model="dpo", like=base, flip={"knowledge": 0.15})
    paths = [str(base.save(tmp_path / "base.json")), str(worse.save(tmp_path / "dpo.json"))]
    monkeypatch.chdir(tmp_path)  # the shipped gate by name, from a directory without configs/
    assert main(["report", *paths, "--gate", "dpo", "--trains", "identity", "--out", "report.html"]) == 0
    assert "gate FAILED" in capsys.readouterr().out
    verdict = re.search(r'<section id="verdict".*?</section>', (tmp_path / "report.html").read_text(), re.S).group(0)
    assert "No gate" not in verdict and "FAILED" in verdict and "knowledge.accuracy" in verdict


def test_report_with_a_gate_keeps_the_comparisons_it_was_given(tmp_path, saved, capsys):
    base, sft, dpo, sft_vs_base, _ = map(str, saved)
    out, gate = tmp_path / "report.html", tmp_path / "gate.yaml"
    gate.write_text("default_margin: null\nmetrics:\n  math.exact_match: {margin: 0.05}\n")
    assert main(["report", base, sft, dpo, sft_vs_base, "--gate", str(gate), "--out", str(out)]) == 0
    header = re.search(r'<table class="metrics">\s*<thead>(.*?)</thead>', out.read_text(), re.S).group(1)
    # sft vs base was given (kept, not made twice); dpo vs sft is the gate's
    assert re.findall(r"<th[^>]*>([^<]*)</th>", header)[2:] == ["base", "sft", "dpo", "Δ sft vs base", "Δ dpo vs sft"]


def test_trains_without_a_gate_is_a_usage_error(tmp_path, saved, capsys):
    assert main(["report", str(saved[0]), str(saved[1]), "--trains", "identity"]) == 2
    assert "--trains goes with --gate" in capsys.readouterr().err
