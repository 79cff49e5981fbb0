"""The report's verdict header: per candidate stage, the gate against its input and the ship line against the base.

"Ship the DPO model?" is answered by one line that compares the final model with the first record
(the base), not by reading two columns of deltas. For a pipeline base -> sft -> dpo the header of
the demo reads, latest stage first::

    FAILED  dpo
      dpo vs base: knowledge.accuracy 1.000 → 0.529 regressed (p_adj 4.07e-20) · identity.adherence
                   0.000 → 0.800 improved · ifeval.prompt_strict 0.000 → 0.500 improved · ...
      dpo vs sft (its input; the gate FAILED): identity.adherence 0.000 → 0.800 improved, fail: misses
                   target >= 0.9 · ifeval.prompt_strict 0.470 → 0.500 non-inferior, pass · ...
    FAILED  sft
      sft vs base (its input; the gate FAILED): knowledge.accuracy 1.000 → 0.529 regressed, fail ...

Each line lists the metrics the stage's gate judges, regressions first. The line against the base
is computed here from the two saved records (``compare_records``: no model runs) under the margins,
confidence, correction, family and alpha weights of the candidate's own comparison, with the suites
every stage on the way trained; it reports verdicts, not a second gate.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

from tunegate.core.errors import TunegateError
from tunegate.evals.compare import compare_records
from tunegate.evals.gate import GateConfig, MetricRule, format_p
from tunegate.evals.records import Comparison, MetricComparison, RunRecord

#: Verdicts from worst to best: the order of a line's metrics after the regressions and failed gates.
VERDICT_ORDER = ("regressed", "underpowered", "inconclusive", "non-inferior", "improved")


@dataclass(frozen=True)
class Entry:
    """One metric on one line: where it went, the verdict, and (on a gate line) the gate's state and reason."""

    key: str
    baseline: float
    candidate: float
    verdict: str
    gate: str
    reason: str
    p_adjusted: str | None


@dataclass(frozen=True)
class Line:
    """``candidate vs against``: a gate line (against the input stage) or the ship line (against the base)."""

    candidate: str
    against: str
    gated: bool  # True: the stage's gate (passed says how it went); False: verdicts against the base
    ship: bool  # True: against the first record
    passed: bool | None
    entries: tuple[Entry, ...]
    notes: tuple[str, ...] = ()
    error: str | None = None


@dataclass(frozen=True)
class Header:
    candidate: str
    passed: bool
    lines: tuple[Line, ...]


def metric_key(m: MetricComparison) -> str:
    """``suite.metric``: the naming of the CLI table, the gate file and the report."""
    return f"{m.suite}.{m.metric}"


def _order(e: Entry) -> tuple:
    return (e.verdict != "regressed", e.gate != "fail", e.gate != "warn",
            VERDICT_ORDER.index(e.verdict) if e.verdict in VERDICT_ORDER else len(VERDICT_ORDER), e.key)


def entries(comparison: Comparison, keys: Sequence[str]) -> tuple[Entry, ...]:
    """The metrics ``keys`` of ``comparison``, regressions first, then failed and warned gates, then by verdict."""
    out = [Entry(metric_key(m), m.baseline, m.candidate, m.verdict, m.gate, m.reason,
                 format_p(m.p_adjusted) if m.p_adjusted is not None else None)
           for m in comparison.metrics if metric_key(m) in keys]
    return tuple(sorted(out, key=_order))


def headline_keys(comparison: Comparison) -> list[str]:
    """The metrics a line shows: those the gate judged (all of them when it judged none)."""
    gated = [metric_key(m) for m in comparison.metrics if m.gate != "info"]
    return gated or [metric_key(m) for m in comparison.metrics]


def gate_of(comparison: Comparison) -> GateConfig:
    """The gate settings a comparison was made under, as far as it records them: each judged metric's margin
    and alpha weight, the confidence, correction and multiplicity family (targets are the gate line's)."""
    family = [metric_key(m) for m in comparison.metrics if metric_key(m) in comparison.family]
    alphas = {metric_key(m): m.alpha for m in comparison.metrics if m.alpha}
    weighted = comparison.correction == "holm" and len({round(alphas.get(k, 0), 12) for k in family}) > 1
    rules = tuple(MetricRule(k, margin=m.margin, weight=alphas[k] if weighted and k in family else 1.0)
                  for m in comparison.metrics if m.gate != "info" for k in [metric_key(m)])
    return GateConfig(rules=rules, confidence=comparison.confidence, correction=comparison.correction,
                      family=tuple(family) if family else "gated", default_margin=None)


def ship_line(base: RunRecord, cand: RunRecord, stage: Comparison, trains: Sequence[str],
              labels: tuple[str, str]) -> Line:
    """``candidate vs base``: the candidate's headline metrics compared with the first record."""
    keys = headline_keys(stage)
    try:
        comparison = compare_records(base, cand, gate_of(stage), trains=trains)
    except TunegateError as exc:
        return Line(labels[1], labels[0], False, True, None, (), error=f"not compared: {exc}")
    # compare_records scores the base's responses again under the candidate's target (rescore.retarget): say so
    notes = tuple(w.replace("the baseline's", f"{labels[0]}'s").replace("the candidate's", f"{labels[1]}'s")
                  for w in comparison.warnings if "responses scored again" in w)
    return Line(labels[1], labels[0], False, True, None, entries(comparison, keys), notes)


def headers(records: Mapping[str, RunRecord], comparisons: Sequence[Comparison],
            endpoints: Sequence[tuple[str, str]]) -> list[Header]:
    """One header per comparison (given in pipeline order), the latest stage first: its gate line and, when
    its input is not the first record, its ship line against the first record (the ship line first)."""
    labels = list(records)
    first = labels[0] if labels else None
    by_candidate = {cand: (c, base) for c, (base, cand) in zip(comparisons, endpoints)}
    out = []
    for c, (base, cand) in zip(comparisons, endpoints):
        gate = Line(cand, base, True, base == first, c.passed, entries(c, headline_keys(c)))
        lines = [gate]
        if first is not None and base != first and cand in records:
            lines.insert(0, ship_line(records[first], records[cand], c, _trains_since(first, cand, by_candidate),
                                      (first, cand)))
        out.append(Header(cand, c.passed, tuple(lines)))
    return out[::-1]


def _trains_since(first: str, cand: str, by_candidate: Mapping[str, tuple[Comparison, str]]) -> tuple[str, ...]:
    """The suites trained by every stage from ``first`` to ``cand`` (following each comparison to its input)."""
    trains: dict[str, None] = {}
    seen, label = set(), cand
    while label in by_candidate and label != first and label not in seen:
        seen.add(label)
        comparison, label = by_candidate[label]
        trains.update(dict.fromkeys(comparison.trains))
    return tuple(trains)
