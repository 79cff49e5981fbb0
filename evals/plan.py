"""The eval budget: items each gated metric needs to catch a margin-sized drop, and what they cost.

``plan`` asks ``tunegate.evals.gate.decide`` itself for the items needed (``MetricComparison.n_needed``):
the same one-sided test, family-corrected level (``alpha / family size``), power and design
effect as the verdict, so the plan cannot promise what the gate does not keep. What it
feeds ``decide`` is a paired result at the observed numbers:

- with a candidate record: the real paired comparison (observed discordance, observed design effect);
- baseline only: a candidate assumed independent of the baseline at the same accuracy, so the
  per-unit variance of the paired difference is ``2 * var(unit)`` (``2p(1-p)`` discordant pairs
  for a binary metric; the most a paired design can have, so the plan errs towards more items),
  with the baseline's own design effect for clustered metrics.

One real row: the demo's SFT record as baseline, its DPO record as candidate, ``configs/gate.yaml``::

    PlanRow(suite="ifeval", metric="prompt_strict", effect=0.05, accuracy=0.43, discordance=0.08,
            source="candidate", n_items=100, n_needed=283, alpha=0.01667, power=0.8,
            seconds_per_item=0.00846, seconds=2.39)

The eval time is the record's own suite timing (``SuiteResult.seconds``) per item, times
the items needed: one model's evaluation on this hardware (a compare runs two). A record
whose responses came from the response cache timed the cache, not the model.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from tunegate.core.errors import RecordError, TunegateError
from tunegate.core.files import JsonFile
from tunegate.evals.gate import GateConfig, Measured, decide
from tunegate.evals.records import Comparison, MetricComparison, RunRecord
from tunegate.evals.stats import PairedResult, flatten_units, mean_stderr


@dataclass(frozen=True)
class PlanRow:
    """One gated metric's budget: ``n_needed`` items catch a drop of ``effect`` with ``power`` at the
    one-sided level ``alpha`` (the gate's, family-corrected); ``seconds`` evaluates them on one model."""

    suite: str
    metric: str
    effect: float
    accuracy: float
    discordance: float
    source: str  # "candidate" (observed) or "assumed" (independent candidate at the same accuracy)
    n_items: int
    n_needed: int | None
    alpha: float
    power: float
    seconds_per_item: float | None = None
    seconds: float | None = None

    @property
    def key(self) -> str:
        return f"{self.suite}.{self.metric}"


@dataclass(frozen=True)
class Plan(JsonFile):
    rows: tuple[PlanRow, ...]
    family: tuple[str, ...]
    confidence: float
    power: float

    def suite_seconds(self) -> dict[str, float | None]:
        """Per suite: the seconds of one model's eval at the largest ``n_needed`` of its gated metrics."""
        out: dict[str, float | None] = {}
        for r in self.rows:
            if r.seconds is None:
                out.setdefault(r.suite, None)
            else:
                out[r.suite] = max(out.get(r.suite) or 0.0, r.seconds)
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"kind": "plan", "family": list(self.family), "confidence": self.confidence, "power": self.power,
                "rows": [dataclasses.asdict(r) for r in self.rows], "suite_seconds": self.suite_seconds()}

    @classmethod
    def from_dict(cls, data: Any, where: str = "plan") -> "Plan":
        if not isinstance(data, dict) or data.get("kind") != "plan":
            raise RecordError(f"{where}: expected an object with kind 'plan'")
        try:
            return cls(rows=tuple(PlanRow(**r) for r in data["rows"]), family=tuple(data.get("family") or ()),
                       confidence=float(data["confidence"]), power=float(data["power"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise RecordError(f"{where}: {type(exc).__name__}: {exc}") from None


def plan(baseline: RunRecord, gate: GateConfig, candidate: RunRecord | None = None, trains: Sequence[str] = (),
         effect: float | None = None, comparison: Comparison | None = None) -> Plan:
    """Items needed per gated metric (margin, or ``effect`` for every one) and their eval time.

    ``comparison`` is ``compare_records(baseline, candidate, gate, trains)`` when the caller has it
    already (the pipeline): its metrics are used instead of comparing again.
    """
    if effect is not None and not (0 < effect < 1):
        raise TunegateError(f"--mde must be in (0, 1), got {effect}")
    if effect is not None:
        gate = dataclasses.replace(gate, rules=tuple(dataclasses.replace(r, margin=effect) if r.margin is not None
                                                      else r for r in gate.rules),
                                   default_margin=None if gate.default_margin is None else effect)
    if candidate is not None or comparison is not None:
        if comparison is None or effect is not None:
            from tunegate.evals.compare import compare_records

            if candidate is None:
                raise TunegateError("plan: --mde with a comparison needs the candidate record")
            comparison = compare_records(baseline, candidate, gate, trains)
        metrics = [m for m in comparison.metrics if m.verdict != "missing"]  # a suite the candidate did not run
        family, source = comparison.family, "candidate"
        discordance = {f"{m.suite}.{m.metric}": (m.flips_up + m.flips_down) / max(m.n, 1) for m in metrics}
    else:
        measured = assumed_measurements(baseline)
        metrics, family = decide(measured, gate, trains)
        source = "assumed"
        discordance = {m.key: m.result.se ** 2 * m.result.n / m.result.design_effect for m in measured}
    keys = [f"{m.suite}.{m.metric}" for m in metrics]
    rules = gate.rules_for(keys)
    rows = [_row(m, baseline, source, discordance[k], gate.power) for m, k in zip(metrics, keys)
            if k in rules and rules[k].margin is not None]
    if not rows:
        raise TunegateError("plan: the gate has no metric with a margin among the record's metrics")
    return Plan(rows=tuple(rows), family=family, confidence=gate.confidence, power=gate.power)


def _row(m: MetricComparison, baseline: RunRecord, source: str, discordance: float, power: float) -> PlanRow:
    suite = baseline.suites[m.suite]
    per_item = suite.seconds / len(suite.items) if suite.items and suite.seconds > 0 else None
    return PlanRow(
        suite=m.suite, metric=m.metric, effect=m.margin, accuracy=m.baseline, discordance=discordance,
        source=source, n_items=m.n_items or m.n, n_needed=m.n_needed, alpha=m.alpha or 0.0, power=power,
        seconds_per_item=per_item,
        seconds=None if per_item is None or m.n_needed is None else round(per_item * m.n_needed, 2))


def assumed_measurements(baseline: RunRecord) -> list[Measured]:
    """Per metric of ``baseline``: the paired result a candidate independent of it at the same accuracy
    would give on average (``PairedResult`` as ``paired_compare`` builds it, with no change)."""
    out = []
    for name, suite in baseline.suites.items():
        for metric, value in suite.metrics.items():
            units, clusters = flatten_units(list(suite.items), metric, value.cluster)
            n = len(units)
            if n < 2:
                raise TunegateError(f"plan: suite '{name}' metric '{metric}' has {n} unit(s); need at least 2")
            var_d = 2 * float(np.var(units))  # Var(candidate - baseline) for independent equal twins
            naive = math.sqrt(var_d / n)
            deff, n_test, df = 1.0, n, (None if value.binary and clusters is None else n - 1)
            if clusters is not None:
                _, clustered = mean_stderr(units, clusters)
                _, plain = mean_stderr(units)
                if clustered and plain:
                    deff = max(1.0, (clustered / plain) ** 2)
                n_test = len(np.unique(clusters))
                df = n_test - 1
            res = PairedResult(
                baseline=float(units.mean()), candidate=float(units.mean()), delta=0.0, ci_low=math.nan,
                ci_high=math.nan, p_value=1.0, se=naive * math.sqrt(deff), n=n, n_clusters=n_test, flips_up=0,
                flips_down=0, test="assumed", binary=value.binary, n_test=n_test, df=df, design_effect=deff)
            n_items = sum(1 for it in suite.items if metric in it.scores)
            out.append(Measured(name, metric, res, value.higher_is_better, n_items))
    return out


def format_plan(p: Plan) -> str:
    """The table ``tunegate plan`` prints, then the eval time per suite and in total (one model)."""
    rows = [("metric", "effect", "accuracy", "discordance", "alpha", "n now", "n needed", "eval s")]
    for r in p.rows:
        rows.append((r.key, f"{r.effect:g}", f"{r.accuracy:.3f}", f"{r.discordance:.3f} ({r.source})",
                     f"{r.alpha:.4g}", str(r.n_items), "-" if r.n_needed is None else str(r.n_needed),
                     "-" if r.seconds is None else f"{r.seconds:.1f}"))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = [f"items to catch each drop with power {p.power:g} at one-sided alpha {1 - p.confidence:g} "
             f"across {len(p.family)} gated metric{'s' if len(p.family) != 1 else ''} (same test as the gate)"]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in rows]
    per_suite = p.suite_seconds()
    timed = [s for s in per_suite.values() if s is not None]
    lines.append("eval time per model at those n (from the record's suite timing): "
                 + ", ".join(f"{k} {'n/a' if v is None else f'{v:.1f}s'}" for k, v in per_suite.items())
                 + (f"; total {sum(timed):.1f}s, x2 for baseline and candidate" if timed else ""))
    return "\n".join(lines)
