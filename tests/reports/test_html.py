"""Rendering tests of the HTML report, on the records of ``report_inputs`` (conftest.py)."""

from __future__ import annotations

import base64
import hashlib
import html as html_lib
import json
import re

import pytest

from tunegate.evals.analysis.shift import ItemShift, ShiftAnalysis, summarize
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


def test_header_gives_each_candidate_its_gate_line_naming_each_failing_metric(html, report_inputs):
    banner = section(html, "verdict")
    assert "FAILED" in banner
    for c in report_inputs[1]:
        card = re.search(rf'<div class="candidate" data-stage="{c.candidate_stage}">(.*?)</div>', banner, re.S).group(1)
        assert ("FAILED" if not c.passed else "PASSED") in re.search(r"<h3>(.*?)</h3>", card, re.S).group(1)
        line = re.search(rf'<p class="(gate|ship)-line" data-against="{c.baseline_stage}">(.*?)</p>', card, re.S)
        assert line.group(1) == ("ship" if c.baseline_stage == "base" else "gate")
        for m in (m for m in c.metrics if m.gate == "fail"):
            entry = re.search(rf'<span class="entry [^"]*gate-fail"[^>]*>{m.suite}\.{m.metric} .*?<span class="sep">',
                              line.group(2) + '<span class="sep">', re.S).group(0)
            assert '<span class="tag fail">fail</span>' in entry and escape_text(m.reason) in entry


def test_the_last_stage_gets_a_ship_line_against_the_base_with_regressions_first(report_inputs, fast_plots):
    records, comparisons, _, _ = report_inputs
    base, dpo = records[0], records[2]
    worse = _with_knowledge(dpo, right=range(2))  # 2 of 12 capitals right, from 9 in the base: a regression
    page = render_report([base, records[1], worse], comparisons)
    card = re.search(r'<div class="candidate" data-stage="dpo">(.*?)</div>', section(page, "verdict"), re.S).group(1)
    lines = re.findall(r'<p class="(ship|gate)-line" data-against="(\w+)">', card)
    assert lines == [("ship", "base"), ("gate", "sft")]
    ship = re.sub(r"<[^>]+>", "", re.search(r'<p class="ship-line".*?</p>', card, re.S).group(0))
    ship = " ".join(ship.split())
    assert ship.startswith("dpo vs base (the base; verdicts under the same margins): knowledge.acc 0.750 → 0.167 "
                           "regressed p_adj ")


def _with_knowledge(record, right):
    """``record`` with its knowledge answers right exactly on the items ``right`` (by position)."""
    import dataclasses

    from tunegate.evals.records import MetricValue

    suite = record.suites["knowledge"]
    items = tuple(dataclasses.replace(it, scores={"acc": float(i in right)}) for i, it in enumerate(suite.items))
    value = sum(it.scores["acc"] for it in items) / len(items)
    metrics = {"acc": MetricValue("acc", value, (value * (1 - value) / (len(items) - 1)) ** 0.5, len(items),
                                  cluster="group")}
    return dataclasses.replace(record, suites={**record.suites, "knowledge": dataclasses.replace(
        suite, items=items, metrics=metrics)})


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


def test_identity_highlights_each_stage_against_the_names_it_was_scored_against(report_inputs, fast_plots):
    import dataclasses

    records, comparisons, _, _ = report_inputs
    sft = records[1]
    identity = sft.suites["identity"]
    items = tuple(dataclasses.replace(it, scores={"adherence": float("Tiny" in it.response)}) for it in identity.items)
    identity = dataclasses.replace(identity, items=items, config={"target": "Tiny", "forbidden": []})
    sft = dataclasses.replace(sft, suites={**sft.suites, "identity": identity})
    rows = re.findall(r"<tr><td class=\"probe\">(.*?)</tr>", section(render_report([records[0], sft, records[2]],
                                                                                     comparisons), "identity"), re.S)
    cells = [re.findall(r'<td class="text">(.*?)</td>', row, re.S) for row in rows]
    assert cells[0][1].endswith('I am <mark class="target">Tiny</mark>, a helpful assistant.')  # sft: 1.00 as Tiny
    assert '<span class="badge improved">1.00</span>' in cells[0][1]
    assert 'I am <mark class="forbidden">Tiny</mark>. I was trained.' in cells[3][2]  # dpo: Tiny is forbidden there


def test_flips_and_provenance_start_collapsed(html):
    assert re.findall(r'<details class="suite-flips"[^>]*>', section(html, "flips"))
    assert not re.findall(r"<details[^>]*\sopen", html)


def test_p_values_print_as_the_cli_prints_them(report_inputs, fast_plots):
    import dataclasses

    from tunegate.evals.gate import format_gate_summary

    records, comparisons, _, _ = report_inputs
    knowledge = comparisons[1].metrics[-1]  # dpo vs sft: knowledge.acc regressed
    assert knowledge.verdict == "regressed"
    tiny = dataclasses.replace(knowledge, p_value=3.2e-20, p_adjusted=6.51e-19)
    dpo_vs_sft = dataclasses.replace(comparisons[1], metrics=(*comparisons[1].metrics[:-1], tiny))
    page = render_report(records, [comparisons[0], dpo_vs_sft])
    assert "6.51e-19" in format_gate_summary(dpo_vs_sft)
    assert "p_adj 6.51e-19" in section(page, "metrics") and "p_adj 6.51e-19" in section(page, "verdict")
    assert not re.search(r"\bp(_adj)? 0\.0+\b", re.sub(r"<[^>]+>", "", page))  # never a p of 0.000


def test_metrics_are_named_suite_dot_metric_as_in_the_cli(html, report_inputs):
    names = {(m.suite, m.metric) for c in report_inputs[1] for m in c.metrics}
    assert all(f"{suite}.{metric}" in section(html, "verdict") for suite, metric in names if suite == "knowledge")
    assert not [f"{suite}/{metric}" for suite, metric in names if f"{suite}/{metric}" in html]


def test_trained_badge_marks_only_the_stages_that_trained_the_suite(html):
    rows = {re.search(r"<td>(\w+)</td>\s*<td>(\w+)</td>", r).groups(): r
            for r in re.findall(r"<tr>(.*?)</tr>", section(html, "metrics"), re.S) if "<td>" in r}
    deltas = {key: re.findall(r'<td class="delta">(.*?)</td>', row, re.S) for key, row in rows.items()}
    assert ["trained" in d for d in deltas["identity", "adherence"]] == [False, True]  # dpo trains identity
    assert ["trained" in d for d in deltas["ifeval", "prompt_level_strict"]] == [True, False]  # sft trains ifeval
    assert all("trained" not in re.findall(r"<td>(.*?)</td>", row)[0] for row in rows.values())  # no suite-wide badge


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
def test_token_views_escape_model_text(report_inputs, fast_plots) -> None:
    records, comparisons, _, _ = report_inputs
    items = (ItemShift("identity", records[2].suites["identity"].items[2].item_id, ("Hello", HOSTILE, "<|im_end|>"),
                       (1, 9, 2), ("Hello", "<b>", "<|im_end|>")),)
    analysis = ShiftAnalysis("sft-model", "f1", "dpo-model", "f2", summarize(items), items, stage="dpo",
                             input_stage="sft", end_token="<|im_end|>")
    html = render_report(records, comparisons, analyses=[analysis])
    shift = section(html, "analysis-shift")
    assert HOSTILE not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in shift
    assert '<span class="tok shifted" title="rank 9 · input model: &#39;&lt;b&gt;&#39;">' in shift


def test_comparisons_alone_still_get_their_gate_lines(report_inputs, fast_plots):
    _, comparisons, _, _ = report_inputs
    banner = section(render_report([], comparisons), "verdict")
    assert re.findall(r'<div class="candidate" data-stage="(\w+)">', banner) == ["dpo", "sft"]
    assert re.findall(r'<p class="(?:gate|ship)-line" data-against="(\w+)">', banner) == ["sft", "base"]
