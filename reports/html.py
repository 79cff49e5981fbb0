"""Render the HTML report a team reviews, from saved RunRecords and Comparisons (no model runs).

One self-contained file: inline CSS and JS, plots as PNG data URIs, a
Content-Security-Policy that allows only our own script (by hash) and data:
images. Jinja2 autoescaping is on: model output is untrusted text. The only
markup built in Python (word diffs, name highlights) escapes every piece of
model text it wraps. Typical use::

    html = render_report(records, comparisons, training_logs={"dpo": log}, manifests={...})
    render_run_dir("runs/demo")            # writes runs/demo/report.html
"""

from __future__ import annotations

import base64
import datetime as _dt
import difflib
import hashlib
import json
import re
from dataclasses import replace
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import jinja2
from markupsafe import Markup, escape

from tunegate.core.files import write_text_atomic
from tunegate.evals.gate import format_p
from tunegate.evals.plan import Plan
from tunegate.evals.analysis.knowledge import CATEGORIES, HELDOUT, TRAIN, KnowledgeAnalysis
from tunegate.evals.analysis.shift import ALL, ItemShift, ShiftAnalysis, shift_class
from tunegate.evals.records import Comparison, ItemFlip, MetricComparison, RunRecord, SuiteResult, item_units
from tunegate.reports import plots, verdict
from tunegate.reports.loading import Variant, load_run_dir
from tunegate.reports.variants import training_by_stage, variant_section

TEMPLATES = Path(__file__).parent / "templates"
DIFF_TOKEN_LIMIT = 4000
REWRITE_RATIO = 0.5
_TOKEN = re.compile(r"^\s+|\S+\s*")
History = Sequence[plots.HistoryRow] | Mapping[str, Sequence[plots.HistoryRow]]

_ENV = jinja2.Environment(
    loader=jinja2.FileSystemLoader(str(TEMPLATES)),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
_ENV.filters["num"] = lambda v, d=3: "–" if v is None else f"{v:.{d}f}"
_ENV.filters["signed"] = lambda v, d=3: "–" if v is None else f"{v:+.{d}f}"
_ENV.filters["pval"] = format_p
_ENV.filters["tojson_pretty"] = lambda v: json.dumps(v, indent=1, sort_keys=True, default=str)


def word_diff(before: str, after: str) -> tuple[Markup, Markup, bool]:
    """Both texts escaped, with removed words in ``<del>`` (before) and added words in ``<ins>`` (after).

    The flag is False when the texts share too little for a word diff to help
    (a rewrite, or longer than DIFF_TOKEN_LIMIT words): both come back escaped, unmarked.
    """
    a, b = _TOKEN.findall(before), _TOKEN.findall(after)
    if len(a) + len(b) > DIFF_TOKEN_LIMIT or "".join(a) != before or "".join(b) != after:
        return escape(before), escape(after), False
    matcher = difflib.SequenceMatcher(None, [t.strip() for t in a], [t.strip() for t in b])
    if min(len(a), len(b)) > 20 and matcher.quick_ratio() < REWRITE_RATIO:
        return escape(before), escape(after), False
    opcodes = matcher.get_opcodes()
    same = sum(i2 - i1 for op, i1, i2, _, _ in opcodes if op == "equal")
    if min(len(a), len(b)) > 20 and same < REWRITE_RATIO * max(len(a), len(b)):
        return escape(before), escape(after), False
    out_a: list[Markup] = []
    out_b: list[Markup] = []
    for op, i1, i2, j1, j2 in opcodes:
        left, right = "".join(a[i1:i2]), "".join(b[j1:j2])
        if op == "equal":
            out_a.append(escape(left))
            out_b.append(escape(right))
            continue
        if left:
            out_a.append(Markup("<del>{}</del>").format(left))
        if right:
            out_b.append(Markup("<ins>{}</ins>").format(right))
    return Markup("").join(out_a), Markup("").join(out_b), True


def highlight_names(text: str, targets: Sequence[str], forbidden: Sequence[str]) -> Markup:
    """Escaped text with target names in ``<mark class="target">`` and forbidden ones in ``mark.forbidden``.

    Longer names win ("Deep Tiny" is a target even when "Tiny" is forbidden).
    """
    names = sorted({n for n in (*targets, *forbidden) if n}, key=len, reverse=True)
    if not names:
        return escape(text)
    target_set = {n.lower() for n in targets}
    pattern = re.compile(r"(?<!\w)(" + "|".join(re.escape(n) for n in names) + r")(?!\w)", re.IGNORECASE)
    out: list[Markup] = []
    pos = 0
    for m in pattern.finditer(text):
        out.append(escape(text[pos:m.start()]))
        kind = "target" if m.group(0).lower() in target_set else "forbidden"
        out.append(Markup('<mark class="{}">{}</mark>').format(kind, m.group(0)))
        pos = m.end()
    out.append(escape(text[pos:]))
    return Markup("").join(out)


def _as_list(value: Any) -> list[str]:
    return [] if value is None else [value] if isinstance(value, str) else [str(v) for v in value]


def _stage_labels(records: Sequence[RunRecord]) -> list[str]:
    labels: list[str] = []
    for i, r in enumerate(records):
        label = r.stage or (r.model.rstrip("/").rsplit("/", 1)[-1] if r.model else f"run{i + 1}")
        while label in labels:
            label += f"#{i + 1}"
        labels.append(label)
    return labels


def _endpoints(c: Comparison, labels: Sequence[str], records: Sequence[RunRecord]) -> tuple[str, str]:
    def find(stage: str | None, fingerprint: str, model: str) -> str:
        if stage in labels:
            return str(stage)
        for label, r in zip(labels, records):
            if r.fingerprint == fingerprint:
                return label
        return stage or model

    return (find(c.baseline_stage, c.baseline_fingerprint, c.baseline_model),
            find(c.candidate_stage, c.candidate_fingerprint, c.candidate_model))


def _pipeline_order(records: list[RunRecord], comparisons: list[Comparison]) -> tuple[list[RunRecord], list[Comparison]]:
    """Records moved so that each comparison's baseline precedes its candidate; comparisons by candidate."""
    labels = _stage_labels(records)
    order = list(range(len(records)))
    edges = [tuple(labels.index(e) for e in _endpoints(c, labels, records)) for c in comparisons
             if all(e in labels for e in _endpoints(c, labels, records))]
    for _ in range(len(records)):
        moved = False
        for b, k in edges:
            if b != k and order.index(b) > order.index(k):
                order.remove(b)
                order.insert(order.index(k), b)
                moved = True
        if not moved:
            break
    records = [records[i] for i in order]
    labels = _stage_labels(records)

    def position(c: Comparison) -> int:
        cand = _endpoints(c, labels, records)[1]
        return labels.index(cand) if cand in labels else len(labels)

    return records, sorted(comparisons, key=position)


def _trained(c: Comparison, m: MetricComparison) -> bool:
    return m.trained or m.suite in c.trains


def _banner(comparisons: Sequence[Comparison], cmp_labels: Sequence[str],
            summary: Mapping[str, Any], analyses: Sequence[Any] = ()) -> dict[str, Any]:
    """The page's overall outcome: passed (None without comparisons), failed and warned gate counts, warnings."""
    states = [m.gate for c in comparisons for m in c.metrics]
    passed = summary.get("passed") if "passed" in summary else (
        all(c.passed for c in comparisons) if comparisons else None)
    warnings = [f"{label}: {w}" for c, label in zip(comparisons, cmp_labels) for w in c.warnings]
    warnings += [f"{a.stage or a.kind}: {w}" for a in analyses for w in getattr(a, "warnings", lambda: [])()]
    return {"passed": passed, "warnings": warnings, "n_fail": states.count("fail"), "n_warn": states.count("warn"),
            "stages_failed": sum(not c.passed for c in comparisons), "stages": len(comparisons)}


def _metric_rows(records: Sequence[RunRecord], labels: Sequence[str],
                 comparisons: Sequence[Comparison]) -> list[dict[str, Any]]:
    keys = dict.fromkeys([(suite, name) for r in records for suite, s in r.suites.items() for name in s.metrics]
                         + [(m.suite, m.metric) for c in comparisons for m in c.metrics])
    rows = []
    for suite, metric in keys:
        cells = []
        for r in records:
            mv = r.suites[suite].metrics.get(metric) if suite in r.suites else None
            cells.append(None if mv is None else {"value": mv.value, "ci": plots.ci95(mv.stderr) or None, "n": mv.n})
        deltas = []
        for c in comparisons:
            m = next((m for m in c.metrics if m.suite == suite and m.metric == metric), None)
            deltas.append(None if m is None else {"m": m, "trained": _trained(c, m)})
        rows.append({"suite": suite, "metric": metric, "cells": cells, "deltas": deltas})
    return rows


def _primary(units: Iterable[float]) -> float:
    vals = list(units)
    return sum(vals) / len(vals) if vals else float("nan")


def _unchanged_summary(base: SuiteResult | None, cand: SuiteResult | None) -> dict[str, int] | None:
    """Counts of items by outcome on the suite's first metric: both right, both wrong, changed."""
    if base is None or cand is None or not cand.metrics:
        return None
    metric = next(iter(cand.metrics))
    before = {i.item_id: i.scores[metric] for i in base.items if metric in i.scores}
    counts = {"metric": metric, "both_right": 0, "both_wrong": 0, "same_partial": 0, "changed": 0, "paired": 0}
    for item in cand.items:
        if metric not in item.scores or item.item_id not in before:
            continue
        counts["paired"] += 1
        a, b = _primary(item_units(before[item.item_id])), _primary(item_units(item.scores[metric]))
        if a != b:
            counts["changed"] += 1
        elif a >= 1.0:
            counts["both_right"] += 1
        elif a <= 0.0:
            counts["both_wrong"] += 1
        else:
            counts["same_partial"] += 1
    return counts


def _flip_rows(flips: Sequence[ItemFlip], cmp_index: int, shift: ShiftAnalysis | None = None) -> list[dict[str, Any]]:
    """One row per (suite, item, direction); metrics that flipped the same way are merged; with the
    candidate's token shift, the after response as a token view."""
    merged: dict[tuple[str, str, str], dict[str, Any]] = {}
    for f in flips:
        key = (f.suite, f.item_id, f.direction)
        if key in merged:
            merged[key]["metrics"].append(f.metric)
            continue
        before, after, diffed = word_diff(f.baseline_response, f.candidate_response)
        merged[key] = {"cmp": cmp_index, "suite": f.suite, "item_id": f.item_id, "direction": f.direction,
                       "group": f.group or "(none)", "metrics": [f.metric], "prompt": f.prompt,
                       "before": before, "after": after, "diffed": diffed,
                       "scores": f"{f.baseline_score:.2f} → {f.candidate_score:.2f}",
                       "tokens": _token_view(shift.item(f.suite, f.item_id)) if shift else None}
    return sorted(merged.values(), key=lambda r: (r["suite"], r["group"], r["direction"] != "down", r["item_id"]))


def _flip_sections(records_by: Mapping[str, RunRecord], comparisons: Sequence[Comparison],
                   endpoints: Sequence[tuple[str, str]], cmp_labels: Sequence[str],
                   shifts: Mapping[str, ShiftAnalysis] | None = None) -> list[dict[str, Any]]:
    sections = []
    for k, (c, (b_label, c_label), label) in enumerate(zip(comparisons, endpoints, cmp_labels)):
        rows = _flip_rows(c.flips, k, (shifts or {}).get(c_label))
        base_rec, cand_rec = records_by.get(b_label), records_by.get(c_label)
        suites = list(dict.fromkeys([m.suite for m in c.metrics] + [r["suite"] for r in rows]))
        suite_blocks = []
        for suite in suites:
            srows = [r for r in rows if r["suite"] == suite]
            groups: dict[str, list[int]] = {}
            for r in srows:
                groups.setdefault(r["group"], [0, 0])[0 if r["direction"] == "down" else 1] += 1
            summary = _unchanged_summary(base_rec.suites.get(suite) if base_rec else None,
                                         cand_rec.suites.get(suite) if cand_rec else None)
            suite_blocks.append({
                "suite": suite, "rows": srows, "summary": summary,
                "down": sum(r["direction"] == "down" for r in srows), "up": sum(r["direction"] == "up" for r in srows),
                "groups": sorted(groups.items(), key=lambda g: (g[1][1] - g[1][0], g[0])),
            })
        sections.append({"label": label, "index": k, "baseline": b_label, "candidate": c_label,
                         "suites": suite_blocks, "n": len(rows)})
    return sections


def _flip_filter(sections: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The flip filter's choices with their counts: regressions, improvements, and each suite."""
    blocks = [sb for sec in sections for sb in sec["suites"]]
    suites: dict[str, int] = {}
    for sb in blocks:
        suites[sb["suite"]] = suites.get(sb["suite"], 0) + len(sb["rows"])
    return {"down": sum(sb["down"] for sb in blocks), "up": sum(sb["up"] for sb in blocks),
            "total": sum(len(sb["rows"]) for sb in blocks), "suites": suites}


def _identity(records: Sequence[RunRecord], labels: Sequence[str]) -> list[dict[str, Any]]:
    """Suites whose config names a target and forbidden names: each probe's response at each stage, its
    names highlighted as that stage was scored (its own target and forbidden names, e.g. "Tiny" is the
    target of sft and forbidden for dpo)."""
    blocks = []
    suites = dict.fromkeys(s.suite for r in records for s in r.suites.values()
                           if "target" in s.config and "forbidden" in s.config)
    for suite in suites:
        present = [(label, r.suites[suite]) for label, r in zip(labels, records) if suite in r.suites]
        stages = [{"label": label, "targets": _as_list(s.config.get("target")),
                   "forbidden": _as_list(s.config.get("forbidden"))} for label, s in present]
        metric = next(iter(present[-1][1].metrics), None)
        by_stage = [{i.item_id: i for i in s.items} for _, s in present]
        probes = []
        for item_id, item in by_stage[-1].items():
            cells = []
            for items, stage in zip(by_stage, stages):
                it = items.get(item_id)
                score = None if it is None or metric not in it.scores else _primary(item_units(it.scores[metric]))
                cells.append({"html": highlight_names(it.response, stage["targets"], stage["forbidden"]) if it else None,
                              "score": score})
            probes.append({"item_id": item_id, "prompt": item.prompt, "cells": cells})
        blocks.append({"suite": suite, "stages": stages, "metric": metric, "probes": probes})
    return blocks


def _noise(records: Sequence[RunRecord], labels: Sequence[str]) -> list[dict[str, Any]]:
    """The A/A noise floor of every record that carries one: per metric and setting, flips and change."""
    return [{"label": label, "floor": r.noise, "rows": [{"m": m, "floor": r.noise.floor(m.key)} for m in r.noise.metrics]}
            for label, r in zip(labels, records) if r.noise is not None]


def _flatten(data: Mapping[str, Any], prefix: str = "") -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            out.extend(_flatten(value, name + "."))
        else:
            out.append((name, value if isinstance(value, str) else json.dumps(value, default=str)))
    return out


def _provenance(records: Sequence[RunRecord], labels: Sequence[str],
                manifests: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    runs = [{"label": label, "model": r.model, "fingerprint": r.fingerprint, "created": r.created,
             "seconds": r.seconds, "generation": _flatten(r.generation), "env": _flatten(r.env),
             "suites": [{"suite": s.suite, "version": s.version, "n": len(s.items), "seconds": s.seconds,
                         "config": _flatten(s.config)} for s in r.suites.values()]}
            for label, r in zip(labels, records)]
    return {"runs": runs, "manifests": list(manifests.items())}


def _plots(records: Sequence[RunRecord], labels: Sequence[str], comparisons: Sequence[Comparison],
           cmp_labels: Sequence[str], training_logs: Mapping[str, Sequence[Mapping[str, Any]]],
           history: History | None, variants: Sequence[str] = ()) -> dict[str, Any]:
    suites = list(dict.fromkeys(s for r in records for s in r.suites))
    per_suite = []
    for suite in suites:
        values: dict[str, dict[str, tuple[float, float | None]]] = {}
        for label, r in zip(labels, records):
            for name, mv in (r.suites[suite].metrics.items() if suite in r.suites else ()):
                values.setdefault(name, {})[label] = (mv.value, mv.stderr)
        per_suite.append((suite, plots.suite_stage_plot(suite, labels, values)))
    forest = [(label, plots.forest_plot(c.metrics, f"{label}: deltas (95% CI)"))
              for c, label in zip(comparisons, cmp_labels)]
    training = training_by_stage(training_logs, labels, variants)
    breakdowns = []
    names = dict.fromkeys((suite, b) for r in records for suite, s in r.suites.items() for b in s.breakdowns)
    for suite, name in names:
        per_stage = {label: r.suites[suite].breakdowns.get(name, {})
                     for label, r in zip(labels, records) if suite in r.suites}
        breakdowns.append((f"{suite} by {name}", plots.breakdown_plot(f"{suite}: accuracy by {name}",
                                                                      labels, per_stage)))
    lines = history if isinstance(history, Mapping) else ({"": history} if history else {})
    trend = [(line, plots.history_plot(rows)) for line, rows in lines.items()]
    return {"suites": [p for p in per_suite if p[1]], "forest": [p for p in forest if p[1]],
            "training": [p for p in training if p[1]], "breakdowns": [p for p in breakdowns if p[1]],
            "history": [p for p in trend if p[1]]}


def _token_view(item: ItemShift | None) -> Markup | None:
    """A response as its tokens, each coloured by its shift class, its rank and the input model's own
    greedy token in the tooltip (all model text escaped)."""
    if item is None or not item.tokens:
        return None
    spans = [Markup('<span class="tok {}" title="rank {} · input model: {}">{}</span>').format(
        shift_class(rank), rank, repr(top), token) for token, rank, top in
        zip(item.tokens, item.ranks, item.top or ("",) * len(item.tokens))]
    return Markup("").join(spans)


def _shift_section(analyses: Sequence[ShiftAnalysis], records_by: Mapping[str, RunRecord]) -> dict[str, Any]:
    """Per stage: fractions per suite, most shifted tokens, position profile, a few responses as token views."""
    stages = []
    for a in analyses:
        label = a.stage or a.tuned_model
        prompts = {(s, i.item_id): i.prompt for s, r in (records_by[label].suites.items() if label in records_by
                                                          else ()) for i in r.items}
        examples = []
        for suite in [s for s in a.suites if s != ALL]:
            for item in sorted((i for i in a.items if i.suite == suite), key=lambda i: i.item_id)[:3]:
                examples.append({"suite": suite, "item_id": item.item_id,
                                 "prompt": prompts.get((suite, item.item_id), ""), "tokens": _token_view(item)})
        stages.append({"label": label, "input": a.input_stage or a.input_model, "analysis": a,
                       "suites": [s for k, s in a.suites.items() if k != ALL], "all": a.suites.get(ALL),
                       "examples": examples, "notes": a.notes})
    fractions = [(f"{st['label']}: {s.suite}", s.fractions) for st in stages for s in st["suites"] + [st["all"]] if s]
    return {"stages": stages,
            "fraction_plot": plots.stacked_shares_plot("token shift: share of response positions", fractions,
                                                       plots.SHIFT_COLORS),
            "position_plot": plots.shift_position_plot({st["label"]: st["all"].by_bin for st in stages if st["all"]})}


def _knowledge_section(analyses: Sequence[KnowledgeAnalysis], records_by: Mapping[str, RunRecord]) -> dict[str, Any]:
    """Per stage: the data's category mix, held-out accuracy per category after training, groups, examples."""
    blocks = []
    for a in analyses:
        mix, held = a.mix(TRAIN), a.mix(HELDOUT)
        total, held_total = sum(mix.values()), sum(held.values())
        rows = [(label, a.shares(split)) for label, split, t in
                (("SFT data", TRAIN, total), ("held-out", HELDOUT, held_total)) if t]
        accuracy = {name: acc for name, acc in (("held-out (dev)", a.accuracy_after(HELDOUT)),
                                                ("trained on (fit)", a.accuracy_after(TRAIN))) if acc}
        examples = {c: [f for f in a.facts if f.category == c][:3] for c in CATEGORIES}
        blocks.append({
            "analysis": a, "label": a.stage or a.data, "mix": mix, "held": held, "total": total,
            "held_total": held_total, "shares": a.shares(TRAIN), "groups": a.by_group(TRAIN),
            "accuracy": accuracy, "warnings": a.warnings(), "examples": examples,
            "mix_plot": plots.stacked_shares_plot(f"{a.stage or a.data}: knowledge categories under the base",
                                                  rows, plots.CATEGORY_COLORS),
            "accuracy_plot": plots.category_accuracy_plot(
                f"{a.stage or a.data}: tuned model's accuracy by category", accuracy)})
    return {"blocks": blocks, "categories": CATEGORIES}


#: Analysis kind -> (section title, template, context builder over that kind's analyses and the records).
ANALYSIS_SECTIONS: dict[str, tuple[str, str, Any]] = {
    "shift": ("Token shift", "analysis_shift.html.j2", _shift_section),
    "knowledge": ("Knowledge categories", "analysis_knowledge.html.j2", _knowledge_section),
}


def _analysis_sections(analyses: Sequence[Any], labels: Sequence[str],
                       records_by: Mapping[str, RunRecord]) -> list[dict[str, Any]]:
    """One section per analysis kind present, its analyses in pipeline order."""
    order = {label: i for i, label in enumerate(labels)}
    sections = []
    for kind, (title, template, build) in ANALYSIS_SECTIONS.items():
        mine = sorted((a for a in analyses if a.kind == kind), key=lambda a: order.get(a.stage, len(order)))
        if mine:
            sections.append({"kind": kind, "id": f"analysis-{kind}", "title": title, "template": template,
                             "ctx": build(mine, records_by)})
    return sections


def _script() -> tuple[Markup, str]:
    js = (TEMPLATES / "report.js").read_text(encoding="utf-8")
    digest = base64.b64encode(hashlib.sha256(js.encode("utf-8")).digest()).decode("ascii")
    return Markup(js), f"'sha256-{digest}'"


def render_report(records: Sequence[RunRecord], comparisons: Sequence[Comparison] = (), *,
                  training_logs: Mapping[str, Sequence[Mapping[str, Any]]] | None = None,
                  manifests: Mapping[str, Mapping[str, Any]] | None = None,
                  history: History | None = None, title: str = "tunegate report",
                  summary: Mapping[str, Any] | None = None, plans: Mapping[str, Plan] | None = None,
                  analyses: Sequence[Any] = (), variants: Mapping[str, Variant] | None = None) -> str:
    """The report as one HTML string. ``history`` is ``Store.history(model_line)`` (or model line -> that);
    ``plans`` maps a comparison's label (``"sft vs base"``) to its eval budget (``tunegate.evals.plan``);
    ``analyses`` are tunegate.evals.analysis results, each kind in its own section; ``variants`` are the run
    directories of several runs of one pipeline (``reports.loading.load_paths``), shown side by side."""
    records, comparisons = _pipeline_order(list(records), list(comparisons))
    training_logs, manifests, summary, variants = training_logs or {}, manifests or {}, summary or {}, variants or {}
    labels = _stage_labels(records)
    records_by = dict(zip(labels, records))
    shifts = {a.stage: a for a in analyses if isinstance(a, ShiftAnalysis) and a.stage}
    endpoints = [_endpoints(c, labels, records) for c in comparisons]
    cmp_labels = [f"{cand} vs {base}" for base, cand in endpoints]
    flips = _flip_sections(records_by, comparisons, endpoints, cmp_labels, shifts)
    script, script_hash = _script()
    context = {
        "title": title,
        "generated": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "stages": labels,
        "models": [r.model for r in records],
        "banner": _banner(comparisons, cmp_labels, summary, analyses),
        "cmp_labels": cmp_labels,
        "metric_rows": _metric_rows(records, labels, comparisons),
        "plots": _plots(records, labels, comparisons, cmp_labels, training_logs, history, list(variants)),
        "variants": variant_section(variants, comparisons, endpoints, manifests) if variants else [],
        "variant_runs": list(variants.values()),
        "flips": flips,
        "flip_filter": _flip_filter(flips),
        "headers": verdict.headers(records_by, comparisons, endpoints),
        "stage_trains": {cand: c.trains for c, (_, cand) in zip(comparisons, endpoints)},
        "analyses": _analysis_sections(analyses, labels, records_by),
        "identity": _identity(records, labels),
        "noise": _noise(records, labels),
        "plans": [(label, plans[label]) for label in cmp_labels if label in (plans or {})],
        "provenance": _provenance(records, labels, manifests),
        "summary": summary,
        "script": script,
        "script_hash": script_hash,
    }
    return _ENV.get_template("report.html.j2").render(**context)


def write_report(path: str | Path, records: Sequence[RunRecord], comparisons: Sequence[Comparison] = (),
                 **kwargs: Any) -> Path:
    """Render and write the report; the file appears whole (written then renamed)."""
    return write_text_atomic(path, render_report(records, comparisons, **kwargs))


def render_run_dir(run_dir: str | Path, out: str | Path | None = None, *, history: History | None = None,
                   title: str | None = None) -> Path:
    """Load a pipeline run directory and write its report (DIR/report.html unless ``out`` is given)."""
    root = Path(run_dir)
    inputs = load_run_dir(root)
    return write_report(out or root / "report.html", inputs.records, inputs.comparisons,
                        training_logs=inputs.training_logs, manifests=inputs.manifests, history=history,
                        summary=inputs.summary, plans=inputs.plans, title=title or f"tunegate report: {root.name}",
                        analyses=inputs.analyses)


def render_comparison_report(baseline: RunRecord, candidate: RunRecord, comparison: Comparison,
                             out_path: str | Path) -> Path:
    """The report of one baseline/candidate comparison (what the pytest plugin writes)."""
    if baseline.stage is None:
        baseline = replace(baseline, stage=comparison.baseline_stage or "baseline")
    if candidate.stage is None:
        candidate = replace(candidate, stage=comparison.candidate_stage or "candidate")
    return write_report(out_path, [baseline, candidate], [comparison],
                        title=f"tunegate report: {candidate.model} vs {baseline.model}")
