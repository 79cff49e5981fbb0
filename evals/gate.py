"""Gate rules, and the one decision path from paired numbers to verdicts, MDEs and pass/fail/warn.

A gate file (YAML); every key is optional::

    confidence: 0.95          # CI level; alpha = 1 - confidence is the one-sided level of the regression test
    correction: holm          # holm | bh, across the multiplicity family
    family: gated             # gated (metrics with a margin) | all | [suite.metric, ...]
    power: 0.8                # the MDE is the drop caught with this probability
    underpowered: fail_on_drop  # fail_on_drop | warn | fail: a metric whose MDE exceeds its margin
    inconclusive: warn        # warn | fail: a powered metric whose CI still reaches below -margin
    default_margin: 0.05      # margin of every metric not listed; null = unlisted metrics are not gated
    noise_floor: false        # true: a drop must also exceed the records' A/A noise floor to fail
    missing_suite: fail       # fail | warn: a suite the baseline has and the candidate did not run
    metrics:
      identity.adherence: {target: ">= 0.9"}
      math.exact_match: {margin: 0.05}
      ifeval.prompt_strict: {margin: 0.05, weight: 2}   # alpha weight in the family (default 1)

``decide`` is the only place a verdict is made: it takes each metric's paired
result (``tunegate.evals.stats.paired_compare``: a one-sided p of "the candidate
is worse", a two-sided CI), adjusts the p-values across the *family* (the gated
metrics by default, not every metric of the records; weighted Holm when the
weights differ), and computes the MDE and the items needed with the same
one-sided test at the metric's first Holm level ``alpha * weight / family
weight`` (``alpha / family size`` with equal weights). The calibration harness (``bench/calibration.py``) goes
through ``tunegate compare``, so its figures are those of this function.

Verdicts, in the metric's *good* direction (for ``higher_is_better=False`` metrics
such as ``leak_rate`` the delta and CI are negated first)::

    improved      CI lower bound above 0
    regressed     adjusted one-sided p < alpha and the CI lower bound at or below -margin
    non-inferior  CI lower bound above -margin (a drop, if any, is within the margin)
    underpowered  none of these, on a non-inferiority rule whose MDE exceeds the margin:
                  this n cannot catch a margin-sized drop (``n_needed`` items would)
    inconclusive  none of these, with enough items to catch a margin-sized drop

Rules (``judge``):

- a *target* must be met by the candidate's point estimate (a target-only rule is judged on it alone);
- a *margin* on a suite the stage did **not** train (non-inferiority): ``regressed`` fails,
  ``non-inferior``/``improved`` pass, ``underpowered`` does what ``underpowered`` says
  (default: fail when the point estimate dropped by more than the margin, else warn),
  ``inconclusive`` warns or fails per ``inconclusive``;
- a *margin* on a suite the stage trained: only ``regressed`` fails (training is meant to move it);
- unlisted metrics get ``default_margin``; with ``default_margin: null`` they are ``info``;
- with ``noise_floor: true`` a drop fails (regressed, or underpowered beyond the margin) only when it
  also exceeds the metric's A/A noise floor (``tunegate noise``; ``MetricComparison.noise_floor``);
  a drop within the floor warns instead. The floor is shown whenever the records carry one;
- a suite the baseline has and the candidate lacks is no evidence of no regression: each of its
  gated metrics is ``missing`` and fails the gate (``missing_suite: warn`` warns instead).

A gate file's errors name the file and the field (``gate.yaml: confidence must be in [0.5, 1), got 1.5``).

The gate files tunegate ships (``configs/gate.yaml``, ``configs/gate-sft.yaml``, installed with the package) are known by name
wherever a gate file is taken (``tunegate compare --gate dpo``, ``tunegate report --gate sft``, a
pipeline config's ``gate: dpo``, the plugin's ``--gate-config dpo``): see ``SHIPPED_GATES``.

Example::

    gate = GateConfig.from_yaml("dpo")                 # the shipped configs/gate.yaml; a path works too
    metrics, family = decide(measured, gate, trains=("identity",))   # [MetricComparison, ...], ("math.exact_match", ...)
"""

from __future__ import annotations

import math
import operator
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Iterable, Mapping, NamedTuple, Sequence

from tunegate.core.errors import TunegateError
from tunegate.core.files import read_yaml
from tunegate.evals.records import Comparison, ItemFlip, MetricComparison, MetricValue
from tunegate.evals.stats import PairedResult, adjust_pvalues, mde, units_needed

_OPS = {">=": operator.ge, "<=": operator.le, ">": operator.gt, "<": operator.lt}
_TARGET = re.compile(r"^\s*(>=|<=|>|<)\s*([-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?)\s*$")
#: Margin of unlisted metrics (and of the verdict of target-only rules): a 5-point drop, the drop
#: the shipped gates are sized to catch (docs/statistics.md).
FALLBACK_MARGIN = 0.05
UNDERPOWERED = ("fail_on_drop", "warn", "fail")
#: What a suite the candidate did not run does to the gate.
MISSING_SUITE = ("fail", "warn")
#: The shipped gate files by name: the repository's configs folder, installed as the package's ``configs`` subpackage.
CONFIGS_DIR = Path(__file__).resolve().parents[1] / "configs"
SHIPPED_GATES = {"dpo": "gate.yaml", "sft": "gate-sft.yaml"}


def gate_path(spec: str | Path, relative_to: str | Path | None = None) -> Path:
    """The gate file ``spec`` names: a YAML path (a relative one taken against ``relative_to`` when given),
    or else the name of a shipped gate (``dpo``, ``sft``). A bare name that is neither is a TunegateError
    listing the shipped names; a missing path is left for the YAML reader to report."""
    name = Path(spec)
    path = Path(relative_to) / name if relative_to is not None and not name.is_absolute() else name
    if path.is_file() or len(name.parts) != 1 or name.suffix:
        return path
    if str(spec) not in SHIPPED_GATES:
        raise TunegateError(f"gate '{spec}': no such file and not a shipped gate (shipped: "
                            f"{', '.join(f'{n} = {f}' for n, f in SHIPPED_GATES.items())})")
    return CONFIGS_DIR / SHIPPED_GATES[str(spec)]


@dataclass(frozen=True)
class MetricRule:
    """What one ``suite.metric`` must satisfy: a target (``op`` ``target``), a margin, or both."""

    metric: str = field(metadata={"help": "suite.metric, e.g. math.exact_match"})
    op: str | None = field(default=None, metadata={"help": "comparison of the target: >=, <=, >, <"})
    target: float | None = field(default=None, metadata={"help": "value the candidate must reach"})
    margin: float | None = field(default=None, metadata={"help": "largest tolerated drop (non-inferiority)"})
    weight: float = field(default=1.0, metadata={
        "help": "alpha weight in the multiplicity family (weighted Holm), relative to the other members"})

    @property
    def suite(self) -> str:
        return self.metric.split(".")[0]

    def __post_init__(self) -> None:
        if "." not in self.metric:
            raise TunegateError(f"metrics: '{self.metric}': expected 'suite.metric'")
        if (self.op is None) != (self.target is None):
            raise TunegateError(f"metrics.{self.metric}.target: needs both an operator and a value")
        if self.op is not None and self.op not in _OPS:
            raise TunegateError(f"metrics.{self.metric}.target: operator must be one of {list(_OPS)}, got {self.op!r}")
        if self.margin is not None and not (0 <= self.margin < 1):
            raise TunegateError(f"metrics.{self.metric}.margin: must be in [0, 1), got {self.margin}")
        if not (math.isfinite(self.weight) and self.weight > 0):
            raise TunegateError(f"metrics.{self.metric}.weight: must be a positive number, got {self.weight}")
        if self.target is None and self.margin is None:
            raise TunegateError(f"metrics.{self.metric}: give a target (e.g. '>= 0.9') or a margin")

    def target_met(self, value: float) -> bool:
        return self.op is None or (math.isfinite(value) and _OPS[self.op](value, self.target))

    @property
    def target_text(self) -> str:
        return "" if self.op is None else f"{self.op} {self.target:g}"


@dataclass(frozen=True)
class GateConfig:
    """Settings of one gate; validated on construction. ``GateConfig()`` is the default gate."""

    rules: tuple[MetricRule, ...] = field(default=(), metadata={"help": "per-metric rules"})
    confidence: float = field(default=0.95, metadata={
        "help": "CI level; alpha = 1 - confidence is the family-wise level of the one-sided regression test"})
    inconclusive: str = field(default="warn", metadata={
        "help": "warn | fail: a powered non-inferiority metric whose CI still reaches below -margin"})
    underpowered: str = field(default="fail_on_drop", metadata={
        "help": "fail_on_drop | warn | fail: a non-inferiority metric whose MDE exceeds its margin "
                "(fail_on_drop: fail when the point estimate dropped by more than the margin, else warn)"})
    correction: str = field(default="holm", metadata={"help": "holm | bh across the multiplicity family"})
    family: str | tuple[str, ...] = field(default="gated", metadata={
        "help": "p-values adjusted together: gated (metrics with a margin), all, or a list of suite.metric"})
    default_margin: float | None = field(default=FALLBACK_MARGIN, metadata={"help": "margin of unlisted metrics; None: not gated"})
    power: float = field(default=0.8, metadata={"help": "power at which the minimum detectable effect is reported"})
    n_resamples: int = field(default=2000, metadata={"help": "bootstrap resamples for continuous metrics"})
    seed: int = field(default=0, metadata={"help": "bootstrap seed"})
    noise_floor: bool = field(default=False, metadata={
        "help": "a drop must also exceed the metric's A/A noise floor (tunegate noise) to fail the gate"})
    missing_suite: str = field(default="fail", metadata={
        "help": "fail | warn: a suite the baseline has and the candidate did not run "
                "(fail: no evidence is not a pass)"})

    def __post_init__(self) -> None:
        for name, kinds in (("confidence", (int, float)), ("power", (int, float)), ("n_resamples", (int,)),
                            ("seed", (int,)), ("default_margin", (int, float, type(None)))):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, kinds):
                raise TunegateError(f"gate: {name} must be a number{' or null' if name == 'default_margin' else ''}, "
                                    f"got {value!r}")
        if not (0.5 <= self.confidence < 1):
            raise TunegateError(f"gate: confidence must be in [0.5, 1), got {self.confidence}")
        if self.inconclusive not in ("warn", "fail"):
            raise TunegateError(f"gate: inconclusive must be 'warn' or 'fail', got {self.inconclusive!r}")
        if self.underpowered not in UNDERPOWERED:
            raise TunegateError(f"gate: underpowered must be one of {list(UNDERPOWERED)}, got {self.underpowered!r}")
        if self.missing_suite not in MISSING_SUITE:
            raise TunegateError(f"gate: missing_suite must be one of {list(MISSING_SUITE)}, got {self.missing_suite!r}")
        if self.correction not in ("holm", "bh"):
            raise TunegateError(f"gate: correction must be 'holm' or 'bh', got {self.correction!r}")
        if self.correction != "holm" and any(r.weight != 1 for r in self.rules):
            raise TunegateError("gate: metric weights apply to correction: holm only")
        if isinstance(self.family, str) and self.family not in ("gated", "all"):
            raise TunegateError(f"gate: family must be 'gated', 'all' or a list of suite.metric, got {self.family!r}")
        if self.default_margin is not None and not (0 <= self.default_margin < 1):
            raise TunegateError(f"gate: default_margin must be in [0, 1) or null, got {self.default_margin}")
        if not (0 < self.power < 1):
            raise TunegateError(f"gate: power must be in (0, 1), got {self.power}")
        if not isinstance(self.noise_floor, bool):
            raise TunegateError(f"gate: noise_floor must be true or false, got {self.noise_floor!r}")
        if self.n_resamples < 2000:
            raise TunegateError(f"gate: n_resamples must be at least 2000, got {self.n_resamples}")
        names = [r.metric for r in self.rules]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise TunegateError(f"gate: metric(s) listed twice: {dupes}")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None, where: str = "gate") -> "GateConfig":
        """The gate of a mapping (a gate file's contents); every error names ``where`` and the field."""
        try:
            return cls._from_dict(data, where)
        except TunegateError as exc:
            message = str(exc)
            if message.startswith(f"{where}: "):
                raise
            raise TunegateError(f"{where}: {message.removeprefix('gate: ')}") from None

    @classmethod
    def _from_dict(cls, data: Mapping[str, Any] | None, where: str) -> "GateConfig":
        data = dict(data or {})
        known = {"confidence", "inconclusive", "underpowered", "correction", "family", "default_margin", "power",
                 "n_resamples", "seed", "noise_floor", "missing_suite", "metrics"}
        unknown = sorted(set(data) - known)
        if unknown:
            raise TunegateError(f"{where}: unknown key(s) {unknown} (known: {sorted(known)})")
        metrics = data.pop("metrics", None) or {}
        if not isinstance(metrics, Mapping):
            raise TunegateError(f"{where}: 'metrics' must be a mapping of suite.metric to {{target|margin}}")
        if isinstance(data.get("family"), list):
            data["family"] = tuple(str(m) for m in data["family"])
        rules = tuple(_rule(name, spec, where) for name, spec in metrics.items())
        try:
            return cls(rules=rules, **data)
        except TypeError as exc:
            raise TunegateError(f"{where}: {exc}") from None

    @classmethod
    def from_yaml(cls, path: str | Path, relative_to: str | Path | None = None) -> "GateConfig":
        """The gate of a YAML file, or of a shipped gate by name (``gate_path``)."""
        p = gate_path(path, relative_to)
        data = read_yaml(p, "gate config")
        if data is not None and not isinstance(data, Mapping):
            raise TunegateError(f"{p}: expected a mapping at the top level")
        return cls.from_dict(data, where=str(p))

    def only(self, suites: Iterable[str]) -> "GateConfig":
        """This gate with only the rules (and listed family members) of ``suites``."""
        keep = set(suites)
        family = self.family if isinstance(self.family, str) else tuple(m for m in self.family
                                                                       if m.split(".")[0] in keep)
        return replace(self, rules=tuple(r for r in self.rules if r.suite in keep), family=family)

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

    def family_of(self, known: Sequence[str], rules: Mapping[str, MetricRule]) -> tuple[str, ...]:
        """The metrics whose p-values are adjusted together (in ``known`` order)."""
        if self.family == "all":
            return tuple(known)
        if self.family == "gated":
            return tuple(k for k in known if k in rules and rules[k].margin is not None)
        unknown = [m for m in self.family if m not in known]
        if unknown:
            raise TunegateError(f"gate family names unknown metric(s) {unknown} (known: {', '.join(known)})")
        return tuple(k for k in known if k in self.family)

    def margin_for(self, rule: MetricRule | None) -> float:
        """The margin used for the verdict (a target-only rule uses the default margin)."""
        if rule is not None and rule.margin is not None:
            return rule.margin
        return self.default_margin if self.default_margin is not None else FALLBACK_MARGIN


def _rule(name: str, spec: Any, where: str) -> MetricRule:
    if not isinstance(spec, Mapping):
        raise TunegateError(f"{where}: metrics.{name}: must map to {{target: '>= 0.9'}} or {{margin: 0.02}}")
    extra = sorted(set(spec) - {"target", "margin", "weight"})
    if extra:
        raise TunegateError(f"{where}: metrics.{name}: unknown key(s) {extra} (known: target, margin, weight)")
    op = target = None
    if spec.get("target") is not None:
        m = _TARGET.match(str(spec["target"]))
        if not m:
            raise TunegateError(f"{where}: metrics.{name}.target: must look like '>= 0.9', got {spec['target']!r}")
        op, target = m.group(1), float(m.group(2))
    margin = spec.get("margin")
    if margin is not None and (isinstance(margin, bool) or not isinstance(margin, (int, float))):
        raise TunegateError(f"{where}: metrics.{name}.margin: must be a number, got {margin!r}")
    weight = spec.get("weight", 1.0)
    if isinstance(weight, bool) or not isinstance(weight, (int, float)):
        raise TunegateError(f"{where}: metrics.{name}.weight: must be a number, got {weight!r}")
    return MetricRule(str(name), op=op, target=target, margin=None if margin is None else float(margin),
                      weight=float(weight))


class Measured(NamedTuple):
    """One metric's paired result, as ``compare_records`` measured it."""

    suite: str
    metric: str
    result: PairedResult
    higher_is_better: bool = True
    n_items: int | None = None  # items behind the result's units (None: one unit per item)

    @property
    def key(self) -> str:
        return f"{self.suite}.{self.metric}"


def decide(
    measured: Sequence[Measured], gate: GateConfig | None = None, trains: Sequence[str] = (),
    noise: Mapping[str, float] | None = None,
) -> tuple[list[MetricComparison], tuple[str, ...]]:
    """The one decision path: family-adjusted p-values, MDE, items needed, verdict and gate state.

    Returns the compared metrics and the multiplicity family. Inside the family
    the test, the MDE and the items needed use the one-sided level
    ``alpha * w / sum(w over the family)`` (weighted Holm's first step: the level
    a single dropped metric must reach; ``alpha / len(family)`` with the default
    equal weights); a metric outside it uses ``alpha`` unadjusted.
    ``noise`` maps ``suite.metric`` to its A/A noise floor (``NoiseFloor.floors()``); a gate with
    ``noise_floor: true`` needs one for every gated metric (TunegateError naming the missing ones).
    """
    gate = gate or GateConfig()
    noise = dict(noise or {})
    keys = [m.key for m in measured]
    rules = gate.rules_for(keys)
    family = gate.family_of(keys, rules)
    if gate.noise_floor:
        missing = [k for k in keys if k in rules and rules[k].margin is not None and k not in noise]
        if missing:
            raise TunegateError(f"gate requires a noise floor (noise_floor: true) but none was measured for "
                                f"{missing}: write the baseline with `tunegate noise` over the same suites")
    alpha = 1 - gate.confidence
    in_family = [k in family for k in keys]
    weight = {k: rules[k].weight if k in rules else 1.0 for k in family}
    total = sum(weight.values())
    members = [m for m, f in zip(measured, in_family) if f]
    adjusted = iter(adjust_pvalues([m.result.p_value for m in members], gate.correction,
                                   [weight[m.key] for m in members]))
    out = []
    for m, member in zip(measured, in_family):
        res, rule = m.result, rules.get(m.key)
        p_adj = next(adjusted) if member else None
        test_alpha = alpha * weight[m.key] / total if member else alpha
        margin = gate.margin_for(rule)
        trained = m.suite in trains
        detectable = mde(res, test_alpha, gate.power)
        need = units_needed(res, margin, test_alpha, gate.power)
        items = m.n_items if m.n_items is not None else res.n
        if need is not None and res.n:
            need = max(1, math.ceil(need * items / res.n))
        noninferiority = rule is not None and rule.margin is not None and not trained
        underpowered = noninferiority and not (math.isfinite(detectable) and detectable <= margin)
        v = verdict(res.delta, res.ci_low, res.ci_high, p_adj if member else res.p_value, alpha, margin,
                    m.higher_is_better, underpowered)
        mc = MetricComparison(
            suite=m.suite, metric=m.metric, baseline=res.baseline, candidate=res.candidate, delta=res.delta,
            ci_low=res.ci_low, ci_high=res.ci_high, p_value=_num(res.p_value), p_adjusted=p_adj, n=res.n,
            flips_up=res.flips_up if m.higher_is_better else res.flips_down,
            flips_down=res.flips_down if m.higher_is_better else res.flips_up,
            mde=_num(detectable), n_needed=need, verdict=v, test=res.test, margin=margin,
            higher_is_better=m.higher_is_better, trained=trained, target=rule.target if rule else None,
            n_items=items, alpha=test_alpha, noise_floor=noise.get(m.key),
        )
        state, reason = judge(mc, rule, gate)
        out.append(_replace(mc, gate=state, reason=reason))
    return out, family


def missing_suite(suite: str, metrics: Iterable[MetricValue], gate: GateConfig | None = None,
                  trains: Sequence[str] = ()) -> list[MetricComparison]:
    """The verdict on each metric of a suite the baseline has and the candidate did not run: ``missing``,
    which fails the gate (``missing_suite: warn`` warns) when the metric is gated; no numbers to compare.
    ``metrics`` are the baseline's."""
    gate = (gate or GateConfig()).only([suite])
    metrics = list(metrics)
    rules = gate.rules_for([f"{suite}.{m.name}" for m in metrics])
    nan = float("nan")
    out = []
    for m in metrics:
        rule = rules.get(f"{suite}.{m.name}")
        state = "info" if rule is None else ("fail" if gate.missing_suite == "fail" else "warn")
        out.append(MetricComparison(
            suite=suite, metric=m.name, baseline=m.value, candidate=nan, delta=nan, ci_low=nan, ci_high=nan,
            p_value=None, p_adjusted=None, n=0, flips_up=0, flips_down=0, mde=None, n_needed=None, verdict="missing",
            test="none", margin=gate.margin_for(rule), higher_is_better=m.higher_is_better, trained=suite in trains,
            target=rule.target if rule else None, gate=state,
            reason=f"the candidate did not run suite '{suite}' (the baseline has it): no evidence it did not regress "
                   f"(missing_suite: {gate.missing_suite})"))
    return out


def verdict(
    delta: float, ci_low: float, ci_high: float, p_worse: float | None,
    alpha: float, margin: float, higher_is_better: bool = True, underpowered: bool = False,
) -> str:
    """improved | regressed | non-inferior | underpowered | inconclusive (see the module docstring).

    ``p_worse`` is the (adjusted) one-sided p of "the candidate is worse".
    """
    s = 1.0 if higher_is_better else -1.0
    lo = min(s * ci_low, s * ci_high)
    if lo > 0:
        return "improved"
    if p_worse is not None and p_worse < alpha and lo <= -margin:
        return "regressed"
    if lo > -margin:
        return "non-inferior"
    return "underpowered" if underpowered else "inconclusive"


def judge(mc: MetricComparison, rule: MetricRule | None, gate: GateConfig | None = None) -> tuple[str, str]:
    """(gate state, one-line reason) of one compared metric under its rule (see the module docstring)."""
    gate = gate or GateConfig()
    ci = f"delta {_fmt(mc.delta, '+.3f')} [{_fmt(mc.ci_low, '+.3f')}, {_fmt(mc.ci_high, '+.3f')}]"
    if rule is None:
        return "info", f"not gated; {mc.verdict}: {ci}"
    if not rule.target_met(mc.candidate):
        return "fail", f"misses target {rule.target_text}: candidate {mc.candidate:.3f}"
    met = f"meets target {rule.target_text}; " if rule.op else ""
    if rule.margin is None:
        return "pass", f"{met}{mc.verdict}: {ci}"
    drop = -mc.delta if mc.higher_is_better else mc.delta
    within_noise = gate.noise_floor and mc.noise_floor is not None and 0 < drop <= mc.noise_floor
    noise = f"; within the A/A noise floor {mc.noise_floor:g}" if within_noise else ""
    if mc.verdict == "regressed":
        return ("warn" if within_noise else "fail"), \
            f"regressed: {ci}, p_adj {format_p(mc.p_adjusted)}, drop may exceed margin {mc.margin:g}{noise}"
    if mc.trained:
        return "pass", f"{met}not regressed (trained suite): {ci}"
    if mc.verdict in ("non-inferior", "improved"):
        return "pass", f"{met}{mc.verdict}: {ci} vs margin {mc.margin:g}"
    power = f"MDE {_fmt(mc.mde)} at n={mc.n_items if mc.n_items is not None else mc.n}"
    need = f"; ~{mc.n_needed} items needed" if mc.n_needed else ""
    if mc.verdict == "underpowered":
        dropped = (mc.delta if mc.higher_is_better else -mc.delta) < -mc.margin
        fail = gate.underpowered == "fail" or (gate.underpowered == "fail_on_drop" and dropped and not within_noise)
        what = f"point estimate dropped beyond margin {mc.margin:g}" if dropped else f"within margin {mc.margin:g}"
        return ("fail" if fail else "warn"), f"underpowered: {ci}, {what}; {power} exceeds the margin{need}{noise}"
    state = "fail" if gate.inconclusive == "fail" else "warn"
    return state, f"inconclusive: {ci} reaches below -{mc.margin:g}; {power}"


def _num(x: float | None) -> float | None:
    return None if x is None or not math.isfinite(x) else float(x)


def _replace(mc: MetricComparison, **changes: object) -> MetricComparison:
    import dataclasses

    return dataclasses.replace(mc, **changes)


def format_p(p: float | None) -> str:
    """A p-value as the CLI table, the pytest plugin and the report all print it: three significant
    digits (``6.51e-19``, ``0.0412``, ``1``), never rounded to ``0.000``; ``n/a`` when there is none."""
    return "n/a" if p is None else f"{p:.3g}"


def _fmt(x: float | None, spec: str = ".3f") -> str:
    return "n/a" if x is None or (isinstance(x, float) and not math.isfinite(x)) else format(x, spec)


def _verdict_cell(m: MetricComparison) -> str:
    return f"{m.verdict} (n~{m.n_needed})" if m.verdict == "underpowered" and m.n_needed else m.verdict


def format_table(metrics: Iterable[MetricComparison]) -> str:
    """A plain-text table: suite.metric, baseline, candidate, delta, CI, (noise floor), p_adj, MDE, verdict, gate.

    An underpowered verdict carries the items that would suffice, e.g. ``underpowered (n~2140)``.
    """
    metrics = list(metrics)
    floor = any(m.noise_floor is not None for m in metrics)  # the A/A noise floor column, when measured
    head = ("metric", "baseline", "candidate", "delta", "CI") + ("floor",) * floor + ("p_adj", "MDE", "verdict", "gate")
    rows = [head]
    for m in metrics:
        rows.append((f"{m.suite}.{m.metric}", _fmt(m.baseline), _fmt(m.candidate), _fmt(m.delta, "+.3f"),
                     f"[{_fmt(m.ci_low, '+.3f')}, {_fmt(m.ci_high, '+.3f')}]")
                    + (_fmt(m.noise_floor),) * floor
                    + (format_p(m.p_adjusted) if m.p_adjusted is not None else "-", _fmt(m.mde), _verdict_cell(m), m.gate))
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows)


def format_gate_summary(comparison: Comparison) -> str:
    """What ``tunegate compare`` and the pytest plugin print: the table, why each metric failed or
    warned, the comparison's warnings, and the verdict."""
    c = comparison
    alpha = 1 - c.confidence
    fam = (f"one-sided alpha {alpha:g} across {len(c.family)} gated metric{'s' if len(c.family) != 1 else ''}"
           if c.family else f"alpha {alpha:g}")
    levels = {f"{m.suite}.{m.metric}": m.alpha for m in c.metrics if f"{m.suite}.{m.metric}" in c.family}
    correction = c.correction
    if len({round(a, 12) for a in levels.values() if a is not None}) > 1:  # weighted Holm: say each first-step level
        correction = f"weighted {correction}, first-step alpha " + ", ".join(f"{k} {a:.3g}" for k, a in levels.items() if a is not None)
    lines = [f"{c.candidate_model} vs {c.baseline_model} ({fam}, {correction}; CI {c.confidence:g})",
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
    need = f", ~{mc.n_needed} items needed" if mc.verdict == "underpowered" and mc.n_needed else ""
    lines = [
        f"{mc.suite}.{mc.metric}: {mc.gate} ({mc.reason})",
        f"  baseline {_fmt(mc.baseline)}  candidate {_fmt(mc.candidate)}  delta {_fmt(mc.delta, '+.3f')}  "
        f"CI [{_fmt(mc.ci_low, '+.3f')}, {_fmt(mc.ci_high, '+.3f')}]  p {format_p(mc.p_value)}  p_adj {format_p(mc.p_adjusted)}",
        f"  verdict {mc.verdict} ({mc.test}, n={mc.n}, flips down {mc.flips_down} / up {mc.flips_up}, "
        f"MDE {_fmt(mc.mde)}{need}, margin {mc.margin:g})",
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
