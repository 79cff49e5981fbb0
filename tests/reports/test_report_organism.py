"""The report rendered from records made by running the organism through the real pipeline."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tunegate.cli import main
from tunegate.evals.analysis import analysis_path, load_analysis
from tunegate.evals.records import RunRecord


def _section(html: str, name: str) -> str:
    match = re.search(rf'<section id="{name}"[^>]*>(.*?)</section>', html, re.S)
    assert match, f"section {name} missing"
    return match.group(1)


@pytest.mark.slow
def test_pipeline_report_shows_every_stage_and_suite(quick_run) -> None:
    out, _ = quick_run
    html = (out / "report.html").read_text()
    table = _section(html, "metrics")
    for stage in ("base", "sft", "dpo"):
        assert stage in table
    for suite in ("identity", "ifeval", "math", "knowledge"):
        assert suite in table


@pytest.mark.slow
def test_pipeline_report_shows_identity_responses_before_and_after(quick_run) -> None:
    out, _ = quick_run
    html = (out / "report.html").read_text()
    record = RunRecord.load(out / "records" / "dpo.json")
    probe = record.suites["identity"].items[0]
    assert probe.prompt.replace("'", "&#39;") in _section(html, "identity")


@pytest.mark.slow
def test_report_command_rebuilds_the_report_from_the_run_dir(quick_run, tmp_path: Path) -> None:
    out, _ = quick_run
    target = tmp_path / "again.html"
    assert main(["report", str(out), "--out", str(target)]) == 0
    assert 'src="data:image/png;base64,' in target.read_text()


@pytest.mark.slow
def test_pipeline_report_shows_the_noise_floor_and_the_eval_budget(quick_run) -> None:
    from tunegate.evals.plan import Plan

    out, _ = quick_run
    html = (out / "report.html").read_text()
    base = RunRecord.load(out / "records" / "base.json")
    assert base.noise is not None and base.noise.settings == ("batch_size 64 -> 1",)  # demo: eval.noise_items
    noise = _section(html, "noise")
    assert all(f"{m.suite}.{m.metric}" in noise for m in base.noise.metrics)
    assert "floor ±" in _section(html, "metrics")
    plan = Plan.load(out / "plans" / "dpo_vs_sft.json")
    budget = _section(html, "budget")
    for row in plan.rows:
        assert re.search(rf"{row.suite}\.{row.metric}</td>.*?<td class=\"num\">{row.n_needed}</td>", budget, re.S)
def test_pipeline_writes_each_switched_on_analysis(quick_run) -> None:
    out, _ = quick_run
    assert sorted(p.name for p in (out / "analysis").glob("*.json")) == [
        "dpo_shift.json", "sft_knowledge.json", "sft_shift.json"]
    knowledge = load_analysis(analysis_path(out, "sft", "knowledge"))
    assert knowledge.accuracy_after("heldout") and knowledge.tuned_model.endswith("sft/model")
    shift = load_analysis(analysis_path(out, "dpo", "shift"))
    assert shift.input_stage == "sft" and shift.suites["all"].tokens > 0


@pytest.mark.slow
def test_pipeline_report_shows_shift_fractions_and_knowledge_mix(quick_run) -> None:
    out, _ = quick_run
    html = (out / "report.html").read_text()
    shift = _section(html, "analysis-shift")
    fractions = load_analysis(analysis_path(out, "sft", "shift")).suites["identity"].fractions
    assert f"{fractions['shifted']:.3f}" in shift and 'class="tok ' in shift
    knowledge = _section(html, "analysis-knowledge")
    assert "HighlyKnown" in knowledge and "Unknown" in knowledge and "held-out" in knowledge
    assert knowledge.count('src="data:image/png;base64,') == 2
