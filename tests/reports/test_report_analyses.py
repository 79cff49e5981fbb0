"""The analyses in the report: token shift and knowledge categories from a real organism pipeline run, and
model text in token views escaped."""

from __future__ import annotations

import re

import pytest

from tunegate.evals.analysis import analysis_path, load_analysis
from tunegate.evals.analysis.shift import ItemShift, ShiftAnalysis, summarize
from tunegate.reports.html import render_report
from tests.report_inputs import HOSTILE


def _section(html: str, name: str) -> str:
    match = re.search(rf'<section id="{name}"[^>]*>(.*?)</section>', html, re.S)
    assert match, f"section {name} missing"
    return match.group(1)


@pytest.mark.slow
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


def test_token_views_escape_model_text(report_inputs) -> None:
    records, comparisons, _, _ = report_inputs
    items = (ItemShift("identity", records[2].suites["identity"].items[2].item_id, ("Hello", HOSTILE, "<|im_end|>"),
                       (1, 9, 2), ("Hello", "<b>", "<|im_end|>")),)
    analysis = ShiftAnalysis("sft-model", "f1", "dpo-model", "f2", summarize(items), items, stage="dpo",
                             input_stage="sft", end_token="<|im_end|>")
    html = render_report(records, comparisons, analyses=[analysis])
    shift = _section(html, "analysis-shift")
    assert HOSTILE not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in shift
    assert '<span class="tok shifted" title="rank 9 · input model: &#39;&lt;b&gt;&#39;">' in shift
