"""Rendering tests of the HTML report, on the records of ``report_inputs`` (conftest.py)."""

from __future__ import annotations

import base64
import hashlib
import html as html_lib
import json
import re

import pytest

from tunegate.reports.html import highlight_names, render_comparison_report, render_report, render_run_dir, word_diff
from tests.report_inputs import HOSTILE, HOSTILE_IMG

HISTORY = [("r1", "2025-06-01T00:00:00", {"knowledge.acc": (0.80, 0.03), "math.exact_match": (0.7, 0.05)}),
           ("r2", "2025-06-02T00:00:00", {"knowledge.acc": (0.85, 0.03), "math.exact_match": (0.72, 0.05)})]


@pytest.fixture(scope="module")
def html(report_inputs) -> str:
    records, comparisons, logs, manifests = report_inputs
    return render_report(records, comparisons, training_logs=logs, manifests=manifests, history=HISTORY)


@pytest.fixture
def fast_plots(monkeypatch):
    """Skip drawing figures (the slow part) in tests that are not about plots."""
    monkeypatch.setattr("tunegate.reports.plots.figure_to_data_uri", lambda fig: "data:image/png;base64,")


def section(html: str, name: str) -> str:
    match = re.search(rf'<section id="{name}"[^>]*>(.*?)</section>', html, re.S)
    assert match, f"section {name} missing"
    return match.group(1)


def test_banner_names_each_failing_gate_with_its_reason(html, report_inputs):
    banner = section(html, "verdict")
    failing = [m for c in report_inputs[1] for m in c.metrics if m.gate == "fail"]
    assert failing and "FAILED" in banner
    for m in failing:
        line = next(li for li in re.findall(r"<li.*?</li>", banner, re.S) if f"{m.suite}/{m.metric}" in li)
        assert "FAIL" in line and str(escape_text(m.reason)) in line


def escape_text(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def test_banner_says_passed_when_no_gate_failed(report_inputs, fast_plots):
    records, comparisons, _, _ = report_inputs
    passing = [c for c in comparisons if c.passed]
    assert passing
    page = render_report(records[:2], passing[:1])
    assert "PASSED" in section(page, "verdict") and "FAILED" not in section(page, "verdict")


def test_metric_table_lists_every_suite_metric_and_stage(html, report_inputs):
    table = section(html, "metrics")
    for record in report_inputs[0]:
        assert f">{record.stage}</th>" in table
        for suite in record.suites.values():
            for name in suite.metrics:
                assert re.search(rf"<td>{suite.suite}.*?</td>\s*<td>{name}</td>", table), (suite.suite, name)


def test_metric_table_marks_trained_suites_and_verdicts(html):
    rows = re.findall(r"<tr>(.*?)</tr>", section(html, "metrics"), re.S)
    ifeval = next(r for r in rows if "<td>ifeval" in r)
    math_row = next(r for r in rows if "<td>math" in r)
    assert "trained" in ifeval and "trained" not in math_row
    assert 'class="badge regressed"' in next(r for r in rows if "<td>knowledge" in r)


def test_plots_are_embedded_png_data_uris(html):
    uris = re.findall(r'<img src="data:image/png;base64,([A-Za-z0-9+/=]+)"', html)
    # 2 forest + 4 suites + 2 training + 2 breakdowns + 1 trend
    assert len(uris) == 11
    assert all(base64.b64decode(u)[:8] == b"\x89PNG\r\n\x1a\n" for u in uris)


def test_trend_is_absent_with_a_single_stored_run(report_inputs, fast_plots):
    records, comparisons, _, _ = report_inputs
    assert 'id="trend"' not in render_report(records, comparisons, history=HISTORY[:1])


def test_page_fetches_nothing_from_the_network(html):
    assert not re.search(r"""(src|href|action)\s*=\s*["']?\s*(https?:)?//""", html, re.I)
    assert "<link" not in html and "@import" not in html and "url(" not in html
    assert "default-src 'none'" in html


def test_hostile_model_output_is_escaped(html):
    assert HOSTILE not in html and HOSTILE_IMG not in html
    assert escape_text(HOSTILE) in html and escape_text(HOSTILE_IMG) in html
    assert html.count("<script") == 1  # ours


def test_csp_allows_exactly_the_inline_script_by_hash(html):
    script = re.search(r"<script>(.*?)</script>", html, re.S).group(1)
    digest = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
    csp = html_lib.unescape(re.search(r'http-equiv="Content-Security-Policy" content="([^"]*)"', html).group(1))
    assert f"script-src 'sha256-{digest}';" in csp


def test_flips_show_prompt_and_both_responses(html, report_inputs):
    flips = section(html, "flips")
    for comparison in report_inputs[1]:
        for flip in comparison.flips:
            article = re.search(rf'<article class="flip {flip.direction}" data-suite="{flip.suite}"[^>]*'
                                rf'data-item="{flip.item_id}".*?</article>', flips, re.S)
            assert article, flip.item_id
            text = re.sub(r"</?(del|ins)>", "", article.group(0))
            for part in (flip.prompt, flip.baseline_response, flip.candidate_response):
                assert escape_text(part).replace("'", "&#39;").replace('"', "&#34;") in text


def test_flips_are_grouped_with_counts_per_group(html):
    flips = section(html, "flips")
    assert re.search(r'data-group="asia">asia</a></td><td class="num">2</td><td class="num">0</td>', flips)
    assert "right in both" in flips


def test_identity_marks_target_and_forbidden_names(html):
    identity = section(html, "identity")
    assert '<mark class="target">Deep Tiny</mark>' in identity
    assert '<mark class="forbidden">Tiny</mark>' in identity


def test_provenance_shows_fingerprints_versions_and_manifests(html, report_inputs):
    prov = section(html, "provenance")
    records, _, _, manifests = report_inputs
    for r in records:
        assert r.fingerprint in prov
        assert all(f"<code>{s.version}</code>" in prov for s in r.suites.values())
    assert "versions.trl" in prov and "generation.max_new_tokens" in prov
    assert "manifest: <b>dpo</b>" in prov and escape_text(HOSTILE) in prov


def test_word_diff_marks_changed_words_and_escapes():
    before, after, diffed = word_diff("the capital is <b>Paris</b> today", "the capital is London today")
    assert diffed
    assert str(before) == "the capital is <del>&lt;b&gt;Paris&lt;/b&gt; </del>today"
    assert str(after) == "the capital is <ins>London </ins>today"


def test_word_diff_skips_highlighting_a_rewrite():
    a = " ".join(f"alpha{i}" for i in range(40))
    b = " ".join(f"beta{i}" for i in range(40))
    before, after, diffed = word_diff(a, b)
    assert not diffed and "<del>" not in before and "<ins>" not in after


def test_highlight_prefers_the_longer_name():
    out = str(highlight_names("Deep Tiny, not Tiny <x>", ["Deep Tiny"], ["Tiny"]))
    assert out == ('<mark class="target">Deep Tiny</mark>, not <mark class="forbidden">Tiny</mark> &lt;x&gt;')


def test_render_run_dir_reads_the_pipeline_layout(tmp_path, report_inputs, fast_plots):
    records, comparisons, logs, manifests = report_inputs
    for r in records:
        r.save(tmp_path / "records" / f"{r.stage}.json")
    for c in comparisons:
        c.save(tmp_path / "comparisons" / f"{c.candidate_stage}_vs_{c.baseline_stage}.json")
    for stage in logs:
        (tmp_path / "stages" / stage).mkdir(parents=True)
        (tmp_path / "stages" / stage / "training_log.json").write_text(json.dumps(logs[stage]))
        (tmp_path / "stages" / stage / "manifest.json").write_text(json.dumps(manifests[stage]))
    (tmp_path / "summary.json").write_text(json.dumps({"stages": ["base", "sft", "dpo"], "passed": False}))
    out = render_run_dir(tmp_path)
    page = out.read_text()
    assert out == tmp_path / "report.html"
    assert re.findall(r">(base|sft|dpo)</th>", section(page, "metrics")) == ["base", "sft", "dpo"]
    assert 'alt="training curves dpo"' in page and "FAILED" in section(page, "verdict")


def test_comparison_report_labels_stageless_records(tmp_path, report_inputs, fast_plots):
    from dataclasses import replace

    records, comparisons, _, _ = report_inputs
    base, cand = (replace(r, stage=None) for r in records[1:])
    comp = replace(comparisons[1], baseline_stage=None, candidate_stage=None)
    page = render_comparison_report(base, cand, comp, tmp_path / "r.html").read_text()
    assert ">baseline</th>" in page and ">candidate</th>" in page and "Δ candidate vs baseline" in page


def test_unchanged_items_are_summarised_per_suite(html):
    knowledge = re.search(r"<summary><b>knowledge</b>.*?</summary>", section(html, "flips"), re.S).group(0)
    # base right on 9 of 12 capitals, sft on 11 (a superset): 9 right in both, 1 wrong in both, 2 changed
    assert "over 12 paired items: 9 right in both, 1 wrong in both, 2 changed" in knowledge


def test_banner_shows_a_pipeline_error(report_inputs, fast_plots):
    records, comparisons, _, _ = report_inputs
    page = render_report(records, comparisons, summary={"passed": False, "error": "RuntimeError: <oom>"})
    assert "pipeline stopped with an error: RuntimeError: &lt;oom&gt;" in section(page, "verdict")


def test_underpowered_metric_shows_its_badge_and_the_items_needed(report_inputs, fast_plots):
    from dataclasses import replace

    records, comparisons, _, _ = report_inputs
    comp = comparisons[0]
    weak = replace(comp.metrics[0], verdict="underpowered", gate="warn", mde=0.112, n_needed=2140)
    page = render_report(records[:2], [replace(comp, metrics=(weak, *comp.metrics[1:]))])
    assert 'class="badge underpowered">underpowered</span>' in page and "MDE 0.112 (≈2140 items needed)" in page
