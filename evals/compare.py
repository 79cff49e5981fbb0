"""Compare two saved RunRecords item by item: paired deltas, CIs, p-values, verdicts, flips.

Nothing here runs a model. Example (a math suite of 500 items, after an SFT
stage that trained only ``identity``)::

    comp = compare_records(RunRecord.load("base.json"), RunRecord.load("sft.json"),
                           GateConfig.from_yaml("gate.yaml"), trains=("identity",))
    m = find_metric(comp, "math.exact_match")   # MetricComparison
    m.baseline, m.candidate, m.delta          # 0.62, 0.57, -0.05
    m.ci_low, m.ci_high, m.p_value            # -0.083, -0.017, 0.004 (McNemar exact)
    m.flips_down, m.flips_up, m.verdict       # 41, 16, "regressed"
    m.gate, m.reason                          # "fail", "regressed: delta -0.050 [-0.083, -0.017] ..."

Units are matched by ``item_id`` within each suite (and by position inside a
tuple score, e.g. the instructions of one IFEval prompt). Tests and intervals
(see ``tunegate.evals.stats.paired_compare``): exact McNemar for binary unclustered
metrics, cluster-robust t for clustered ones, paired t + percentile bootstrap
(cluster bootstrap when clustered) for continuous ones.

Verdicts, in the metric's *good* direction (for ``higher_is_better=False``
metrics such as ``leak_rate`` the delta and CI are negated before judging, so
"improved" always means better)::

    improved      adjusted p < alpha and the CI lies above 0
    non-inferior  CI lower bound > -margin (a drop, if any, is within the margin)
    regressed     adjusted p < alpha, delta < 0 and CI upper bound < 0 (and not non-inferior,
                  i.e. the drop may exceed the margin)
    inconclusive  none of these: too few items to tell (see ``mde`` and ``n_needed``)

p-values are adjusted across all metrics of one comparison (Holm by default,
Benjamini-Hochberg optional); confidence intervals are not adjusted.
Records whose suite versions differ, or whose items have none in common, cannot be
compared (TunegateError); records whose item sets only overlap (e.g. ``--limit 20``
against ``--limit 30``: seeded subsets are nested) are compared on their common items,
with a warning naming what was left out; different env (hardware, library versions)
or generation settings only add a warning.
"""

from __future__ import annotations

import math
import zlib
from typing import Sequence

import numpy as np

from tunegate.evals.errors import TunegateError
from tunegate.evals.gate import GateConfig, judge
from tunegate.evals.stats import PairedResult, adjust_pvalues, n_needed, paired_compare
from tunegate.evals.records import Comparison, ItemFlip, ItemScore, MetricComparison, RunRecord, SuiteResult, item_units

#: Continuous metrics keep this many flips per direction (largest changes first); binary keep all.
MAX_CONTINUOUS_FLIPS = 25


def compare_records(
    baseline: RunRecord,
    candidate: RunRecord,
    gate: GateConfig | None = None,
    trains: Sequence[str] = (),
) -> Comparison:
    """Paired comparison of every headline metric of every suite the candidate ran."""
    gate = gate or GateConfig()
    trains = tuple(trains)
    warnings = list(comparability_warnings(baseline, candidate))
    suites = _common_suites(baseline, candidate, warnings)
    known = [f"{s}.{m}" for s in suites for m in candidate.suites[s].metrics]
    rules = gate.rules_for(known)
    for t in trains:
        if t not in suites:
            warnings.append(f"trained suite '{t}' is not in the compared records")
    alpha = 1 - gate.confidence

    results: list[tuple[str, str, PairedResult, bool]] = []
    flips: list[ItemFlip] = []
    for suite in suites:
        b_suite, c_suite = baseline.suites[suite], candidate.suites[suite]
        pairs, note = _pair_items(b_suite, c_suite)
        if note:
            warnings.append(note)
        for name, spec in c_suite.metrics.items():
            base, cand, clusters = paired_units(pairs, name, spec.cluster, where=f"suite '{suite}' metric '{name}'")
            seed = zlib.crc32(f"{suite}.{name}".encode()) ^ gate.seed
            res = paired_compare(base, cand, clusters, binary=spec.binary, confidence=gate.confidence,
                                 power=gate.power, n_resamples=gate.n_resamples, seed=seed)
            results.append((suite, name, res, spec.higher_is_better))
            flips.extend(item_flips(suite, name, pairs, spec.higher_is_better, spec.binary))

    p_adj = adjust_pvalues([r.p_value for _, _, r, _ in results], gate.correction)
    metrics = []
    for (suite, name, res, higher_is_better), padj in zip(results, p_adj):
        key = f"{suite}.{name}"
        rule = rules.get(key)
        margin = gate.margin_for(rule)
        verdict_name = verdict(res.delta, res.ci_low, res.ci_high, padj, alpha, margin, higher_is_better)
        mc = MetricComparison(
            suite=suite, metric=name, baseline=res.baseline, candidate=res.candidate, delta=res.delta,
            ci_low=res.ci_low, ci_high=res.ci_high, p_value=_num(res.p_value), p_adjusted=padj, n=res.n,
            flips_up=res.flips_up if higher_is_better else res.flips_down,
            flips_down=res.flips_down if higher_is_better else res.flips_up,
            mde=_num(res.mde), n_needed=n_needed(res.n_clusters, res.mde, margin), verdict=verdict_name,
            test=res.test, margin=margin, higher_is_better=higher_is_better, trained=suite in trains,
            target=rule.target if rule else None,
        )
        state, reason = judge(mc, rule, gate.inconclusive)
        metrics.append(_replace(mc, gate=state, reason=reason))
    return Comparison(
        baseline_model=baseline.model, baseline_fingerprint=baseline.fingerprint,
        candidate_model=candidate.model, candidate_fingerprint=candidate.fingerprint,
        metrics=tuple(metrics), flips=tuple(flips), warnings=tuple(warnings),
        passed=all(m.gate != "fail" for m in metrics), confidence=gate.confidence,
        correction=gate.correction, baseline_stage=baseline.stage, candidate_stage=candidate.stage,
        trains=trains,
    )


def verdict(
    delta: float, ci_low: float, ci_high: float, p_adjusted: float | None,
    alpha: float, margin: float, higher_is_better: bool = True,
) -> str:
    """improved | non-inferior | regressed | inconclusive (see the module docstring)."""
    s = 1.0 if higher_is_better else -1.0
    lo, hi = sorted((s * ci_low, s * ci_high))
    good = s * delta
    significant = p_adjusted is not None and p_adjusted < alpha
    if significant and good > 0 and lo > 0:
        return "improved"
    if lo > -margin:
        return "non-inferior"
    if significant and good < 0 and hi < 0:
        return "regressed"
    return "inconclusive"


def simulate_verdicts(
    n: int = 500,
    *,
    p: float = 0.7,
    drop: float = 0.0,
    discordance: float = 0.12,
    sims: int = 1000,
    confidence: float = 0.95,
    margin: float = 0.02,
    seed: int = 0,
) -> dict[str, float]:
    """Share of each verdict over ``sims`` simulated baseline/candidate pairs of binary outcomes.

    Each pair: baseline units right with probability ``p``; the candidate copies
    the baseline and changes about ``discordance`` of the units (correlated runs),
    right->wrong and wrong->right in proportions giving a true ``drop`` in accuracy.
    Every pair goes through the real ``paired_compare`` and ``verdict``.
    Example: ``simulate_verdicts(500, drop=0.0)["regressed"]`` is the false-positive rate.
    """
    # P(right->wrong) = r, P(wrong->right) = w with p*r + (1-p)*w = discordance, p*r - (1-p)*w = drop
    r = (discordance + drop) / (2 * p)
    w = (discordance - drop) / (2 * (1 - p))
    if not (0 <= r <= 1 and 0 <= w <= 1):
        raise ValueError(f"no flip probabilities give drop {drop} with discordance {discordance} at p {p}")
    rng = np.random.default_rng(seed)
    base = (rng.random((sims, n)) < p).astype(float)
    u = rng.random((sims, n))
    cand = np.where(base == 1, (u >= r).astype(float), (u < w).astype(float))
    counts = dict.fromkeys(("improved", "regressed", "non-inferior", "inconclusive"), 0)
    for b_row, c_row in zip(base, cand):
        res = paired_compare(b_row, c_row, confidence=confidence)
        counts[verdict(res.delta, res.ci_low, res.ci_high, res.p_value, 1 - confidence, margin)] += 1
    return {k: v / sims for k, v in counts.items()}


def comparability_warnings(baseline: RunRecord, candidate: RunRecord) -> list[str]:
    """Differences that do not stop a comparison but deserve a line in the report."""
    out = []
    if baseline.fingerprint and baseline.fingerprint == candidate.fingerprint:
        out.append(f"baseline and candidate have the same fingerprint {baseline.fingerprint[:12]}")
    for label, b, c in (("env", baseline.env, candidate.env), ("generation", baseline.generation, candidate.generation)):
        for key in sorted(set(b) | set(c)):
            if key in ("git_sha", "created", "hostname"):
                continue
            if b.get(key) != c.get(key):
                out.append(f"{label} '{key}' differs: baseline {b.get(key)!r}, candidate {c.get(key)!r}")
    return out


def _common_suites(baseline: RunRecord, candidate: RunRecord, warnings: list[str]) -> list[str]:
    missing = [s for s in candidate.suites if s not in baseline.suites]
    if missing:
        raise TunegateError(f"suite(s) {missing} of the candidate are missing from the baseline "
                            f"(baseline has {sorted(baseline.suites)})")
    for s in baseline.suites:
        if s not in candidate.suites:
            warnings.append(f"suite '{s}' is in the baseline only; not compared")
    for s in candidate.suites:
        bv, cv = baseline.suites[s].version, candidate.suites[s].version
        if bv != cv:
            raise TunegateError(f"suite '{s}': version differs (baseline {bv!r}, candidate {cv!r}); "
                                f"re-evaluate the baseline with the same suite version")
        b_cfg, c_cfg = dict(baseline.suites[s].config), dict(candidate.suites[s].config)
        if b_cfg != c_cfg:
            warnings.append(f"suite '{s}': config differs (baseline {b_cfg}, candidate {c_cfg})")
    return list(candidate.suites)


def _pair_items(b: SuiteResult, c: SuiteResult) -> tuple[list[tuple[ItemScore, ItemScore]], str | None]:
    """The (baseline, candidate) pairs of the items both records hold, and a note when that is not all of them.

    Records made with different ``--limit`` values overlap (seeded subsets are nested), so they are
    compared on their common items; records with no item in common cannot be compared.
    """
    b_ids = {i.item_id: i for i in b.items}
    c_ids = {i.item_id: i for i in c.items}
    for label, res, ids in (("baseline", b, b_ids), ("candidate", c, c_ids)):
        if len(ids) != len(res.items):
            raise TunegateError(f"suite '{res.suite}': {label} has duplicate item ids")
    only_b, only_c = sorted(set(b_ids) - set(c_ids)), sorted(set(c_ids) - set(b_ids))
    pairs = [(b_ids[i.item_id], i) for i in c.items if i.item_id in b_ids]
    if not pairs:
        raise TunegateError(
            f"suite '{c.suite}': no item in common ({len(b_ids)} baseline items e.g. {sorted(b_ids)[:3]}, "
            f"{len(c_ids)} candidate items e.g. {sorted(c_ids)[:3]}); evaluate both on the same suite source "
            "with the same --subset-seed")
    if not (only_b or only_c):
        return pairs, None
    return pairs, (f"suite '{c.suite}': compared on the {len(pairs)} items both records hold (baseline has "
                   f"{len(b_ids)}, candidate {len(c_ids)}); left out {len(only_b)} only in the baseline "
                   f"e.g. {only_b[:3]}, {len(only_c)} only in the candidate e.g. {only_c[:3]}")


def paired_units(
    pairs: Sequence[tuple[ItemScore, ItemScore]], metric: str, cluster: str | None, where: str = "metric"
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Per-unit baseline and candidate values of one metric, and cluster indices (None if independent)."""
    base: list[float] = []
    cand: list[float] = []
    keys: list[str] = []
    for b, c in pairs:
        has_b, has_c = metric in b.scores, metric in c.scores
        if has_b != has_c:
            raise TunegateError(f"{where}: item '{c.item_id}' is scored in only one record")
        if not has_b:
            continue
        bu, cu = item_units(b.scores[metric]), item_units(c.scores[metric])
        if len(bu) != len(cu):
            raise TunegateError(f"{where}: item '{c.item_id}' has {len(bu)} units in the baseline, {len(cu)} in the candidate")
        base.extend(bu)
        cand.extend(cu)
        if cluster == "item":
            keys.extend([c.item_id] * len(cu))
        elif cluster == "group":
            keys.extend([c.group or c.item_id] * len(cu))
    clusters = None
    if cluster is not None:
        _, clusters = np.unique(np.asarray(keys, dtype=str), return_inverse=True)
    return np.asarray(base, float), np.asarray(cand, float), clusters


def item_flips(
    suite: str, metric: str, pairs: Sequence[tuple[ItemScore, ItemScore]], higher_is_better: bool, binary: bool
) -> list[ItemFlip]:
    """Items whose score changed; ``direction`` is "down" when the item got worse (in the good direction)."""
    s = 1.0 if higher_is_better else -1.0
    changed = []
    for b, c in pairs:
        if metric not in b.scores or metric not in c.scores:
            continue
        bv, cv = float(np.mean(item_units(b.scores[metric]))), float(np.mean(item_units(c.scores[metric])))
        if bv != cv:
            changed.append((s * (cv - bv), b, c, bv, cv))
    if not binary:
        down = sorted((x for x in changed if x[0] < 0), key=lambda x: x[0])[:MAX_CONTINUOUS_FLIPS]
        up = sorted((x for x in changed if x[0] > 0), key=lambda x: -x[0])[:MAX_CONTINUOUS_FLIPS]
        changed = down + up
    return [
        ItemFlip(suite=suite, item_id=c.item_id, metric=metric, direction="up" if g > 0 else "down",
                 baseline_score=bv, candidate_score=cv, prompt=c.prompt or b.prompt,
                 baseline_response=b.response, candidate_response=c.response, group=c.group)
        for g, b, c, bv, cv in changed
    ]


def find_metric(comparison: Comparison, key: str) -> MetricComparison:
    """The MetricComparison named ``suite.metric``; TunegateError naming the known ones if absent."""
    for m in comparison.metrics:
        if f"{m.suite}.{m.metric}" == key:
            return m
    known = ", ".join(f"{m.suite}.{m.metric}" for m in comparison.metrics)
    raise TunegateError(f"no metric '{key}' in the comparison (known: {known})")


def _num(x: float) -> float | None:
    return None if x is None or not math.isfinite(x) else float(x)


def _replace(mc: MetricComparison, **changes: object) -> MetricComparison:
    import dataclasses

    return dataclasses.replace(mc, **changes)
