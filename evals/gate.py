"""Gate rules: what each metric must satisfy, and the pass/fail/warn judgement of a comparison.

A gate file (YAML); every key is optional::

    confidence: 0.95          # CI level; alpha = 1 - confidence
    inconclusive: warn        # warn | fail: what an inconclusive non-inferiority check does
    correction: holm          # holm | bh: multiple-testing correction across the metrics
    default_margin: 0.02      # margin of every metric not listed; null = unlisted metrics are not gated
    metrics:
      identity.adherence: {target: ">= 0.9"}
      identity.leak_rate: {target: "<= 0.05"}
      math.exact_match: {margin: 0.02}
      ifeval.prompt_strict: {margin: 0.03}

Rules (``judge``), given the verdict from ``tunegate.evals.compare``:

- a *target* must be met by the candidate's point estimate, and the metric must not be ``regressed``;
- a *margin* on a suite the stage did **not** train: the verdict must be ``non-inferior`` or
  ``improved``; ``regressed`` fails; ``inconclusive`` warns or fails per ``inconclusive``;
- a *margin* on a suite the stage trained: only ``regressed`` fails (training is meant to move it);
- unlisted metrics get ``default_margin`` (0.02); with ``default_margin: null`` they are ``info``.

Example::

    gate = GateConfig.from_yaml("gate.yaml")
    gate.rules_for(["math.exact_match", "identity.adherence"])   # {"math.exact_match": MetricRule(...), ...}
"""

from __future__ import annotations

import math
import operator
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from tunegate.evals.errors import TunegateError
from tunegate.evals.files import read_yaml
from tunegate.evals.records import Comparison, ItemFlip, MetricComparison

_OPS = {">=": operator.ge, "<=": operator.le, ">": operator.gt, "<": operator.lt}
_TARGET = re.compile(r"^\s*(>=|<=|>|<)\s*([-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?)\s*$")
FALLBACK_MARGIN = 0.02


@dataclass(frozen=True)
class MetricRule:
    """What one ``suite.metric`` must satisfy: a target (``op`` ``target``), a margin, or both."""

    metric: str = field(metadata={"help": "suite.metric, e.g. math.exact_match"})
    op: str | None = field(default=None, metadata={"help": "comparison of the target: >=, <=, >, <"})
    target: float | None = field(default=None, metadata={"help": "value the candidate must reach"})
    margin: float | None = field(default=None, metadata={"help": "largest tolerated drop (non-inferiority)"})

    def __post_init__(self) -> None:
        if "." not in self.metric:
            raise TunegateError(f"gate metric '{self.metric}': expected 'suite.metric'")
        if (self.op is None) != (self.target is None):
            raise TunegateError(f"gate metric '{self.metric}': a target needs both an operator and a value")
        if self.op is not None and self.op not in _OPS:
            raise TunegateError(f"gate metric '{self.metric}': operator must be one of {list(_OPS)}, got {self.op!r}")
        if self.margin is not None and not (0 <= self.margin < 1):
            raise TunegateError(f"gate metric '{self.metric}': margin must be in [0, 1), got {self.margin}")
        if self.target is None and self.margin is None:
            raise TunegateError(f"gate metric '{self.metric}': give a target (e.g. '>= 0.9') or a margin")

    def target_met(self, value: float) -> bool:
        return self.op is None or (math.isfinite(value) and _OPS[self.op](value, self.target))

    @property
    def target_text(self) -> str:
        return "" if self.op is None else f"{self.op} {self.target:g}"


@dataclass(frozen=True)
class GateConfig:
    """Settings of one gate; validated on construction. ``GateConfig()`` is the default gate."""

    rules: tuple[MetricRule, ...] = field(default=(), metadata={"help": "per-metric rules"})
    confidence: float = field(default=0.95, metadata={"help": "confidence level of CIs; alpha = 1 - confidence"})
    inconclusive: str = field(default="warn", metadata={"help": "warn | fail for inconclusive non-inferiority"})
    correction: str = field(default="holm", metadata={"help": "holm | bh across the metrics of one comparison"})
    default_margin: float | None = field(default=FALLBACK_MARGIN, metadata={"help": "margin of unlisted metrics; None: not gated"})
    power: float = field(default=0.8, metadata={"help": "power at which the minimum detectable effect is reported"})
    n_resamples: int = field(default=2000, metadata={"help": "bootstrap resamples for continuous metrics"})
    seed: int = field(default=0, metadata={"help": "bootstrap seed"})

    def __post_init__(self) -> None:
        if not (0.5 <= self.confidence < 1):
            raise TunegateError(f"gate: confidence must be in [0.5, 1), got {self.confidence}")
        if self.inconclusive not in ("warn", "fail"):
            raise TunegateError(f"gate: inconclusive must be 'warn' or 'fail', got {self.inconclusive!r}")
        if self.correction not in ("holm", "bh"):
            raise TunegateError(f"gate: correction must be 'holm' or 'bh', got {self.correction!r}")
        if self.default_margin is not None and not (0 <= self.default_margin < 1):
            raise TunegateError(f"gate: default_margin must be in [0, 1) or null, got {self.default_margin}")
        if not (0 < self.power < 1):
            raise TunegateError(f"gate: power must be in (0, 1), got {self.power}")
        if self.n_resamples < 2000:
            raise TunegateError(f"gate: n_resamples must be at least 2000, got {self.n_resamples}")
        names = [r.metric for r in self.rules]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise TunegateError(f"gate: metric(s) listed twice: {dupes}")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None, where: str = "gate") -> "GateConfig":
        data = dict(data or {})
        known = {"confidence", "inconclusive", "correction", "default_margin", "power", "n_resamples", "seed", "metrics"}
        unknown = sorted(set(data) - known)
        if unknown:
            raise TunegateError(f"{where}: unknown key(s) {unknown} (known: {sorted(known)})")
        metrics = data.pop("metrics", None) or {}
        if not isinstance(metrics, Mapping):
            raise TunegateError(f"{where}: 'metrics' must be a mapping of suite.metric to {{target|margin}}")
        rules = tuple(_rule(name, spec, where) for name, spec in metrics.items())
        try:
            return cls(rules=rules, **data)
        except TypeError as exc:
            raise TunegateError(f"{where}: {exc}") from None

    @classmethod
    def from_yaml(cls, path: str | Path) -> "GateConfig":
        p = Path(path)
        data = read_yaml(p, "gate config")
        if data is not None and not isinstance(data, Mapping):
            raise TunegateError(f"{p}: expected a mapping at the top level")
        return cls.from_dict(data, where=str(p))

    def rules_for(self, known: Sequence[str]) -> dict[str, MetricRule]:
        """The rule of every known ``suite.metric``; a listed metric that is not known is a TunegateError."""
        unknown = [r.metric for r in self.rules if r.metric not in known]
        if unknown:
            raise TunegateError(f"gate config names unknown metric(s) {unknown} (known: {', '.join(known)})")
        listed = {r.metric: r for r in self.rules}
        out = {}
        for name in known:
            if name in listed:
                out[name] = listed[name]
            elif self.default_margin is not None:
                out[name] = MetricRule(name, margin=self.default_margin)
        return out

    def margin_for(self, rule: MetricRule | None) -> float:
        """The margin used for the verdict (a target-only rule uses the default margin)."""
        if rule is not None and rule.margin is not None:
            return rule.margin
        return self.default_margin if self.default_margin is not None else FALLBACK_MARGIN


def _rule(name: str, spec: Any, where: str) -> MetricRule:
    if not isinstance(spec, Mapping):
        raise TunegateError(f"{where}: metric '{name}' must map to {{target: '>= 0.9'}} or {{margin: 0.02}}")
    extra = sorted(set(spec) - {"target", "margin"})
    if extra:
        raise TunegateError(f"{where}: metric '{name}': unknown key(s) {extra} (known: target, margin)")
    op = target = None
    if spec.get("target") is not None:
        m = _TARGET.match(str(spec["target"]))
        if not m:
            raise TunegateError(f"{where}: metric '{name}': target must look like '>= 0.9', got {spec['target']!r}")
        op, target = m.group(1), float(m.group(2))
    margin = spec.get("margin")
    if margin is not None and (isinstance(margin, bool) or not isinstance(margin, (int, float))):
        raise TunegateError(f"{where}: metric '{name}': margin must be a number, got {margin!r}")
    return MetricRule(str(name), op=op, target=target, margin=None if margin is None else float(margin))


def judge(mc: MetricComparison, rule: MetricRule | None, inconclusive: str = "warn") -> tuple[str, str]:
    """(gate state, one-line reason) of one compared metric under its rule (see the module docstring)."""
    ci = f"delta {mc.delta:+.3f} [{mc.ci_low:+.3f}, {mc.ci_high:+.3f}]"
    if rule is None:
        return "info", f"not gated; {mc.verdict}: {ci}"
    if not rule.target_met(mc.candidate):
        return "fail", f"misses target {rule.target_text}: candidate {mc.candidate:.3f}"
    if mc.verdict == "regressed":
        return "fail", f"regressed: {ci}, p_adj {_p(mc.p_adjusted)}, drop may exceed margin {mc.margin:g}"
    met = f"meets target {rule.target_text}; " if rule.op else ""
    if rule.margin is None or mc.trained:
        why = "trained suite" if mc.trained and rule.margin is not None else "target rule"
        return "pass", f"{met}not regressed ({why}): {ci}"
    if mc.verdict in ("non-inferior", "improved"):
        return "pass", f"{met}{mc.verdict}: {ci} vs margin {mc.margin:g}"
    need = f"; ~{mc.n_needed} items needed" if mc.n_needed else ""
    mde = f"MDE {mc.mde:.3f}" if mc.mde is not None else "MDE n/a"
    state = "fail" if inconclusive == "fail" else "warn"
    return state, f"inconclusive: {ci} reaches below -{mc.margin:g}; {mde} at n={mc.n}{need}"


def _p(p: float | None) -> str:
    return "n/a" if p is None else f"{p:.3g}"


def _fmt(x: float | None, spec: str = ".3f") -> str:
    return "n/a" if x is None or (isinstance(x, float) and not math.isfinite(x)) else format(x, spec)


def format_table(metrics: Iterable[MetricComparison]) -> str:
    """A plain-text table: suite.metric, baseline, candidate, delta, CI, p, verdict, gate."""
    head = ("metric", "baseline", "candidate", "delta", "CI", "p_adj", "verdict", "gate")
    rows = [head]
    for m in metrics:
        rows.append((f"{m.suite}.{m.metric}", _fmt(m.baseline), _fmt(m.candidate), _fmt(m.delta, "+.3f"),
                     f"[{_fmt(m.ci_low, '+.3f')}, {_fmt(m.ci_high, '+.3f')}]", _p(m.p_adjusted), m.verdict, m.gate))
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows)


def format_gate_summary(comparison: Comparison) -> str:
    """What ``tunegate compare`` and the pytest plugin print: the table, why each metric failed or
    warned, the comparison's warnings, and the verdict."""
    c = comparison
    lines = [f"{c.candidate_model} vs {c.baseline_model} (confidence {c.confidence}, {c.correction})",
             format_table(c.metrics)]
    lines += [f"{m.gate}: {m.suite}.{m.metric}: {m.reason}" for m in c.metrics if m.gate in ("fail", "warn")]
    lines += [f"warning: {w}" for w in c.warnings]
    lines.append("gate: " + ("PASSED" if c.passed else "FAILED"))
    return "\n".join(lines)


def flips_of(comparison: Comparison | None, metric: MetricComparison) -> list[ItemFlip]:
    """The flipped items of one compared metric."""
    return [f for f in (comparison.flips if comparison else ()) if f.suite == metric.suite and f.metric == metric.metric]


def explain(mc: MetricComparison, flips: Sequence[ItemFlip] = (), worst: int = 3, width: int = 160) -> str:
    """A readable failure message: numbers, verdict, reason and the worst flipped items."""
    lines = [
        f"{mc.suite}.{mc.metric}: {mc.gate} ({mc.reason})",
        f"  baseline {_fmt(mc.baseline)}  candidate {_fmt(mc.candidate)}  delta {_fmt(mc.delta, '+.3f')}  "
        f"{'CI'} [{_fmt(mc.ci_low, '+.3f')}, {_fmt(mc.ci_high, '+.3f')}]  p {_p(mc.p_value)}  p_adj {_p(mc.p_adjusted)}",
        f"  verdict {mc.verdict} ({mc.test}, n={mc.n}, flips down {mc.flips_down} / up {mc.flips_up}, "
        f"MDE {_fmt(mc.mde)}, margin {mc.margin:g})",
    ]
    down = [f for f in flips if f.suite == mc.suite and f.metric == mc.metric and f.direction == "down"]
    down.sort(key=lambda f: -abs(f.candidate_score - f.baseline_score))
    for f in down[:worst]:
        lines.append(f"  - {f.item_id}: {_short(f.prompt, width)}")
        lines.append(f"      baseline ({f.baseline_score:g}): {_short(f.baseline_response, width)}")
        lines.append(f"      candidate ({f.candidate_score:g}): {_short(f.candidate_response, width)}")
    return "\n".join(lines)


def _short(text: str, width: int) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= width else text[: width - 3] + "..."
