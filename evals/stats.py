"""Statistics over per-item scores: pure functions on numbers, no I/O.

Two parts: one-run metrics (``flatten_units``, ``mean_stderr``, ``metric_value``)
and paired baseline-vs-candidate statistics (``paired_compare`` and the pieces it
uses, ``mde`` / ``units_needed`` for power, ``adjust_pvalues``). Each piece calls
scipy or statsmodels; the only hand-written statistic is Tango's paired-proportion
score interval (``paired_proportion_interval``), which neither library ships.

Example: a metric over 4 items, two of them IFEval prompts with 2 instructions
each (tuple scores are units clustered by item)::

    units, clusters = flatten_units([ItemScore(..., scores={"inst": (1.0, 0.0)}), ...], "inst", "item")
    mean_stderr(units, clusters)   # (0.5, clustered standard error)
"""

from __future__ import annotations

import functools
import gc
import math
import warnings
from dataclasses import dataclass as _dataclass
from typing import Literal, Sequence

import numpy as np
from scipy import optimize as _opt
from scipy import stats as _st

from tunegate.evals.records import ItemScore, MetricSpec, MetricValue, item_units

Alternative = Literal["less", "greater"]


def flatten_units(
    scores: Sequence[ItemScore], metric: str, cluster: str | None
) -> tuple[np.ndarray, np.ndarray | None]:
    """Units of one metric across items, and each unit's cluster index (None when independent)."""
    values: list[float] = []
    clusters: list[str] = []
    for s in scores:
        if metric not in s.scores:
            continue
        for v in item_units(s.scores[metric]):
            values.append(float(v))
            if cluster == "item":
                clusters.append(s.item_id)
            elif cluster == "group":
                clusters.append(s.group or s.item_id)
    arr = np.asarray(values, dtype=float)
    if cluster is None:
        return arr, None
    _, idx = np.unique(np.asarray(clusters, dtype=object).astype(str), return_inverse=True)
    return arr, idx


def mean_stderr(values: np.ndarray, clusters: np.ndarray | None = None) -> tuple[float, float | None]:
    """Mean and its standard error: ``scipy.stats.sem``, or the cluster-robust SE of
    statsmodels ``OLS(values, 1).fit(cov_type="cluster")`` when clusters are given.

    With one unit per cluster the clustered estimate equals ``std(ddof=1)/sqrt(n)`` (as lm-eval reports).
    """
    n = len(values)
    if n == 0:
        return math.nan, None
    mean = float(values.mean())
    if n < 2:
        return mean, None
    if clusters is None:
        return mean, float(_st.sem(values))
    if len(np.unique(clusters)) < 2:
        return mean, None
    return mean, _cluster_fit(values, clusters)[1]


def metric_value(spec: MetricSpec, scores: Sequence[ItemScore]) -> MetricValue:
    """A headline metric from per-item scores as the spec declares it."""
    values, clusters = flatten_units(scores, spec.name, spec.cluster)
    mean, se = mean_stderr(values, clusters)
    return MetricValue(
        name=spec.name,
        value=mean,
        stderr=se,
        n=len(values),
        higher_is_better=spec.higher_is_better,
        binary=spec.binary,
        cluster=spec.cluster,
    )


# --------------------------------------------------------------------------------------
# Paired statistics: baseline and candidate answered the same units.
#
# Example (500 paired binary outcomes, 40 right->wrong, 18 wrong->right)::
#
#     mcnemar_exact(40, 18)                          # 0.0055: two-sided exact McNemar (scipy binomtest)
#     mcnemar_exact(40, 18, alternative="greater")   # 0.0027: one-sided, H1 = more right->wrong
#     paired_proportion_interval(18, 40, 500)        # (-0.0752, -0.0146): Tango's score interval
# --------------------------------------------------------------------------------------


def mcnemar_exact(b: int, c: int, alternative: str = "two-sided") -> float:
    """Exact McNemar p-value: ``scipy.stats.binomtest(b, b + c, 0.5)``; 1.0 with no discordant pair.

    ``b`` counts right->wrong, ``c`` wrong->right; ``alternative="greater"`` tests
    "more right->wrong" (the candidate is worse). The two-sided value equals
    ``statsmodels.stats.contingency_tables.mcnemar(table, exact=True).pvalue``.
    """
    if b + c == 0:
        return 1.0
    return float(_st.binomtest(int(b), int(b + c), 0.5, alternative=alternative).pvalue)


def paired_proportion_interval(
    up: int, down: int, n: int, confidence: float = 0.95, design_effect: float = 1.0
) -> tuple[float, float]:
    """Tango's (1998) asymptotic score interval for a paired difference of proportions, ``(up - down) / n``.

    ``up`` units went wrong->right, ``down`` right->wrong, out of ``n`` pairs. The
    interval is the set of differences the score test does not reject; it stays
    valid with few or no discordant pairs (n=10, none discordant: +/-0.278, not
    [0, 0]). ``design_effect`` > 1 widens it for clustered units: every count is
    divided by it (the effective sample size of Rao and Scott), which divides the
    score statistic by ``sqrt(design_effect)``.
    Hand-written: neither scipy nor statsmodels (0.15) has a paired-difference score interval.
    """
    if n <= 0:
        return math.nan, math.nan
    z = float(_st.norm.ppf(0.5 + confidence / 2)) * math.sqrt(max(design_effect, 1.0))
    est = (up - down) / n

    def score(d0: float) -> float:  # Tango's T(d0): decreasing in d0, zero at the estimate
        if d0 == est:
            return 0.0
        a, b = 2.0 * n, -up - down + (2.0 * n - up + down) * d0
        c = -down * d0 * (1.0 - d0)
        q21 = (math.sqrt(max(b * b - 4 * a * c, 0.0)) - b) / (2 * a)  # constrained MLE of P(down)
        var = n * (2 * q21 + d0 * (1 - d0))
        return (up - down - n * d0) / math.sqrt(var) if var > 0 else math.copysign(math.inf, est - d0)

    edge = 1.0 - 1e-12
    lo = -1.0 if score(-edge) <= z else _opt.brentq(lambda d: score(d) - z, -edge, est, xtol=1e-12)
    hi = 1.0 if score(edge) >= -z else _opt.brentq(lambda d: score(d) + z, est, edge, xtol=1e-12)
    return float(lo), float(hi)


def paired_t_interval(
    diffs: np.ndarray, confidence: float = 0.95, alternative: str = "two-sided"
) -> tuple[float, float, float, float]:
    """Mean of paired differences, its two-sided t interval, and the p-value of ``alternative``:
    ``scipy.stats.ttest_1samp(diffs, 0)`` (the same test as ``ttest_rel(candidate, baseline)``)."""
    n = len(diffs)
    mean = float(np.mean(diffs)) if n else math.nan
    if n < 2:
        return mean, math.nan, math.nan, math.nan
    if np.ptp(diffs) == 0:  # no spread: scipy returns nan; the interval is the point
        return mean, mean, mean, _degenerate_p(mean, alternative)
    res = _st.ttest_1samp(diffs, 0.0, alternative=alternative)
    ci = _st.ttest_1samp(diffs, 0.0).confidence_interval(confidence)
    return mean, float(ci.low), float(ci.high), float(res.pvalue)


def clustered_t_interval(
    diffs: np.ndarray, clusters: np.ndarray, confidence: float = 0.95, alternative: str = "two-sided"
) -> tuple[float, float, float, float]:
    """Mean of paired differences with statsmodels' cluster-robust SE
    (``OLS(d, 1).fit(cov_type="cluster")``, t on G-1 df): mean, two-sided interval, p of ``alternative``."""
    mean = float(np.mean(diffs)) if len(diffs) else math.nan
    if len(diffs) < 2 or len(np.unique(clusters)) < 2:
        return mean, math.nan, math.nan, math.nan
    fit, se = _cluster_fit(diffs, clusters)
    if se == 0.0:
        return mean, mean, mean, _degenerate_p(mean, alternative)
    lo, hi = fit.conf_int(1 - confidence)[0]
    t, df = float(fit.tvalues[0]), float(fit.df_resid)
    p = {"two-sided": float(fit.pvalues[0]), "less": float(_st.t.cdf(t, df)), "greater": float(_st.t.sf(t, df))}
    return mean, float(lo), float(hi), p[alternative]


def _degenerate_p(mean: float, alternative: str) -> float:
    """p of a test whose every difference equals ``mean``: 1 when the data cannot support ``alternative``."""
    if mean == 0:
        return 1.0
    return {"two-sided": 0.0, "less": float(mean > 0), "greater": float(mean < 0)}[alternative]


def _cluster_fit(values: np.ndarray, clusters: np.ndarray):  # type: ignore[no-untyped-def]
    import statsmodels.api as sm  # lazily: a second of import time

    fit = sm.OLS(values, np.ones_like(values)).fit(cov_type="cluster", cov_kwds={"groups": clusters}, use_t=True)
    return fit, float(fit.bse[0])


def paired_bootstrap(
    diffs: np.ndarray,
    clusters: np.ndarray | None = None,
    *,
    confidence: float = 0.95,
    n_resamples: int = 2000,
    seed: int = 0,
) -> tuple[float, float]:
    """BCa bootstrap CI of the mean paired difference: ``scipy.stats.bootstrap`` (seeded).

    With ``clusters`` whole clusters are resampled: scipy resamples the per-cluster
    (sum, unit count) pairs together (``paired=True``) and the statistic is the ratio
    of their totals, so units sharing a prompt or subject move together.
    """
    if n_resamples < 1:
        raise ValueError("n_resamples must be positive")
    if len(diffs) < 2:
        return math.nan, math.nan
    if np.ptp(diffs) == 0:  # every resample has the same mean
        return float(diffs[0]), float(diffs[0])
    rng = np.random.default_rng(seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", _st.DegenerateDataWarning)
        if clusters is None:
            res = _st.bootstrap((diffs,), np.mean, n_resamples=n_resamples, confidence_level=confidence,
                                vectorized=True, rng=rng)
        else:
            sums = np.bincount(clusters, weights=diffs)
            counts = np.bincount(clusters).astype(float)
            res = _st.bootstrap((sums, counts), lambda s, c, axis=-1: s.sum(axis) / c.sum(axis),
                                paired=True, vectorized=True, n_resamples=n_resamples,
                                confidence_level=confidence, rng=rng)
    lo, hi = res.confidence_interval
    return float(lo), float(hi)


def adjust_pvalues(pvalues: Sequence[float | None], method: str = "holm") -> list[float | None]:
    """Holm (step-down, FWER) or Benjamini-Hochberg (FDR) adjusted p-values; None stays None.

    ``statsmodels.stats.multitest.multipletests(p, method="holm"|"fdr_bh")[1]`` over the given ones.
    """
    if method not in ("holm", "bh"):
        raise ValueError(f"correction must be 'holm' or 'bh', got {method!r}")
    idx = [i for i, p in enumerate(pvalues) if p is not None and math.isfinite(p)]
    out: list[float | None] = [None] * len(pvalues)
    if idx:
        from statsmodels.stats.multitest import multipletests

        gc.freeze()  # multipletests(method="holm") calls gc.collect(): ~1 s over a process holding big records
        try:
            adj = multipletests([pvalues[i] for i in idx], method="holm" if method == "holm" else "fdr_bh")[1]
        finally:
            gc.unfreeze()
        for i, p in zip(idx, adj):
            out[i] = float(p)
    return out


@_dataclass(frozen=True)
class PairedResult:
    """The numbers behind one metric's verdict (delta = candidate - baseline, in the metric's units).

    ``p_value`` is one-sided: H1 = the candidate is worse (``alternative`` of
    ``paired_compare``). ``se`` is the standard error the test uses; ``n_test`` its
    independent observations (units, or clusters for a clustered test) and ``df``
    its degrees of freedom (None for a normal-theory test). ``design_effect`` is
    (clustered SE / naive SE)^2, at least 1 (1 when unclustered).
    """

    baseline: float
    candidate: float
    delta: float
    ci_low: float
    ci_high: float
    p_value: float
    se: float
    n: int  # units
    n_clusters: int  # independent items (= n when unclustered)
    flips_up: int  # units whose value rose
    flips_down: int  # units whose value fell
    test: str
    binary: bool = True
    n_test: int = 0
    df: float | None = None
    design_effect: float = 1.0


def paired_compare(
    base: np.ndarray,
    cand: np.ndarray,
    clusters: np.ndarray | None = None,
    *,
    binary: bool = True,
    alternative: Alternative = "less",
    confidence: float = 0.95,
    n_resamples: int = 2000,
    seed: int = 0,
) -> PairedResult:
    """Paired comparison of per-unit scores (same units, same order); ``alternative`` names
    the direction of "worse" ("less": the candidate's values are lower).

    binary, unclustered: one-sided exact McNemar p; Tango's score interval.
    binary, clustered:   one-sided cluster-robust t (G-1 df); Tango's interval widened by the design effect.
    continuous:          one-sided paired t (clustered when clustered); BCa bootstrap interval
                         (cluster bootstrap when clustered).
    """
    if base.shape != cand.shape:
        raise ValueError(f"paired arrays differ in shape: {base.shape} vs {cand.shape}")
    d = cand - base
    n = len(d)
    n_clusters = n if clusters is None else len(np.unique(clusters))
    up, down = int(np.sum(d > 0)), int(np.sum(d < 0))
    if n == 0:
        return PairedResult(math.nan, math.nan, math.nan, math.nan, math.nan, 1.0, math.nan, 0, 0, 0, 0,
                            "none", binary, 0)
    delta = float(d.mean())
    naive_se = float(np.std(d, ddof=1) / math.sqrt(n)) if n > 1 else math.nan
    deff, df = 1.0, None
    if clusters is None and binary:
        worse = down if alternative == "less" else up
        p, se = mcnemar_exact(worse, up + down - worse, "greater"), math.sqrt(up + down) / n
        lo, hi = paired_proportion_interval(up, down, n, confidence)
        test, n_test = "mcnemar-exact", n
    elif clusters is None:
        _, lo, hi, p = paired_t_interval(d, confidence, alternative)
        se, n_test, df = naive_se, n, n - 1
        lo, hi = paired_bootstrap(d, confidence=confidence, n_resamples=n_resamples, seed=seed)
        test = "paired-t+bootstrap"
    else:
        _, lo, hi, p = clustered_t_interval(d, clusters, confidence, alternative)
        se = mean_stderr(d, clusters)[1] or 0.0
        n_test, df = n_clusters, n_clusters - 1
        if naive_se > 0:
            deff = max(1.0, (se / naive_se) ** 2)
        if binary:
            lo, hi = paired_proportion_interval(up, down, n, confidence, deff)
            test = f"clustered-t({n_clusters} clusters)"
        else:
            lo, hi = paired_bootstrap(d, clusters, confidence=confidence, n_resamples=n_resamples, seed=seed)
            test = "clustered-t+cluster-bootstrap"
    return PairedResult(
        baseline=float(base.mean()), candidate=float(cand.mean()), delta=delta, ci_low=lo, ci_high=hi,
        p_value=1.0 if not math.isfinite(p) else p, se=se, n=n, n_clusters=n_clusters, flips_up=up,
        flips_down=down, test=test, binary=binary, n_test=n_test, df=df, design_effect=deff,
    )


# --------------------------------------------------------------------------------------
# Power: the drop the one-sided test at ``alpha`` catches with probability ``power``, and the
# units that would make a given drop that detectable. Both use the test's own power function
# (statsmodels: the one-tail normal sample size for the McNemar normal approximation, TTestPower for t tests).
# --------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=256)
def _multiplier(alpha: float, power: float, df: float | None, n_test: int) -> float:
    """k with MDE = k * SE, from the test's power function: for a normal-theory test
    ``sqrt(normal_sample_size_one_tail(1, power, alpha))`` (= z_{1-alpha} + z_power); for a t test
    statsmodels' ``TTestPower`` standardized effect at ``n_test`` observations, times sqrt(n_test)."""
    from statsmodels.stats.power import TTestPower, normal_sample_size_one_tail

    if df is None or n_test < 3:
        return math.sqrt(float(normal_sample_size_one_tail(1.0, power, alpha)))
    es = TTestPower().solve_power(effect_size=None, nobs=n_test, alpha=alpha, power=power, alternative="larger")
    return float(es) * math.sqrt(n_test)


def mde(res: PairedResult, alpha: float, power: float = 0.8) -> float:
    """Minimum detectable drop of the one-sided test at ``alpha`` with probability ``power``.

    ``k * se``, with k from the test's power function. For a binary metric a drop
    of m needs about ``m * n / design_effect`` discordant units, so the MDE is at
    least ``k^2 * design_effect / n`` (never 0 when no unit changed). Capped at 1
    for binary metrics (no drop is detectable below that n).
    """
    if res.n < 1 or not math.isfinite(res.se):
        return math.nan
    k = _multiplier(alpha, power, res.df, res.n_test)
    m = k * res.se
    if res.binary:
        m = min(1.0, max(m, k * k * res.design_effect / res.n))
    return float(m)


def units_needed(res: PairedResult, effect: float, alpha: float, power: float = 0.8) -> int | None:
    """Units at which the MDE of this design falls to ``effect``, at the same unit
    variance and design effect (clusters convert to units at the observed units per cluster)."""
    if effect <= 0 or res.n < 1 or not math.isfinite(res.se):
        return None
    from statsmodels.stats.power import TTestPower, normal_sample_size_one_tail

    per_test = res.n / max(res.n_test, 1)  # units per test observation
    sigma = res.se * math.sqrt(res.n_test)  # SD of one test observation
    floor = 0.0
    if res.binary:  # a drop of `effect` needs about effect * n / deff discordant units
        floor = _multiplier(alpha, power, None, 0) ** 2 * res.design_effect / effect
    if sigma <= 0:
        return max(1, math.ceil(floor)) if res.binary else None
    es = effect / sigma
    if res.df is None:
        nobs = normal_sample_size_one_tail(effect, power, alpha, std_null=sigma)
    else:
        try:
            nobs = TTestPower().solve_power(effect_size=es, nobs=None, alpha=alpha, power=power, alternative="larger")
        except (ValueError, RuntimeError):  # statsmodels' root search can fail far outside its bounds
            return None
    return max(1, math.ceil(max(float(nobs) * per_test, floor)))
