"""Statistics over per-item scores: pure functions on numbers, no I/O.

Two parts: one-run metrics (``flatten_units``, ``mean_stderr``, ``metric_value``)
and paired baseline-vs-candidate statistics (``mcnemar_exact``,
``paired_t_interval``, ``clustered_t_interval``, ``paired_bootstrap``, ``mde``,
``n_needed``, ``adjust_pvalues``, ``paired_compare``).

Example: a metric over 4 items, two of them IFEval prompts with 2 instructions
each (tuple scores are units clustered by item)::

    units, clusters = flatten_units([ItemScore(..., scores={"inst": (1.0, 0.0)}), ...], "inst", "item")
    mean_stderr(units, clusters)   # (0.5, clustered standard error)
"""

from __future__ import annotations

import math
from dataclasses import dataclass as _dataclass
from typing import Sequence

import numpy as np
from scipy import stats as _st

from tunegate.evals.records import ItemScore, MetricSpec, MetricValue, item_units


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
    """Mean and its standard error; cluster-robust (CR1-style, G/(G-1)) when clusters are given.

    With one unit per cluster the clustered estimate equals the usual
    ``std(ddof=1)/sqrt(n)`` (as lm-eval reports).
    """
    n = len(values)
    if n == 0:
        return math.nan, None
    mean = float(values.mean())
    if n < 2:
        return mean, None
    if clusters is None:
        return mean, float(values.std(ddof=1) / math.sqrt(n))
    resid = values - mean
    sums = np.bincount(clusters, weights=resid)
    g = len(sums)
    if g < 2:
        return mean, None
    var = (g / (g - 1)) * float(np.sum(sums**2)) / n**2
    return mean, math.sqrt(var)


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
# Example (McNemar on 500 paired binary outcomes, 40 right->wrong, 18 wrong->right)::
#
#     mcnemar_exact(40, 18)           # 0.0055 (two-sided exact binomial on the discordant pairs)
#     paired_t_interval(d, 0.95)      # (mean delta, low, high, p), as scipy.stats.ttest_rel
#     clustered_t_interval(d, g, .95) # same with a cluster-robust SE (statsmodels OLS cluster)
# --------------------------------------------------------------------------------------

def mcnemar_exact(b: "int | np.ndarray", c: "int | np.ndarray") -> "float | np.ndarray":
    """Two-sided exact McNemar p-value: binomial test of ``min(b, c)`` in ``b + c`` trials at 1/2.

    ``b`` and ``c`` are the discordant counts (right->wrong, wrong->right); arrays
    are handled elementwise (for simulations). Equals
    ``statsmodels.stats.contingency_tables.mcnemar(table, exact=True).pvalue``.
    """
    b_arr, c_arr = np.asarray(b), np.asarray(c)
    n = b_arr + c_arr
    p = np.minimum(1.0, 2.0 * _st.binom.cdf(np.minimum(b_arr, c_arr), n, 0.5))
    p = np.where(n == 0, 1.0, p)
    return float(p) if p.ndim == 0 else p


def paired_t_interval(diffs: np.ndarray, confidence: float = 0.95) -> tuple[float, float, float, float]:
    """Mean of paired differences, its t interval and two-sided p (as ``scipy.stats.ttest_rel``)."""
    n = len(diffs)
    mean = float(np.mean(diffs)) if n else math.nan
    if n < 2:
        return mean, math.nan, math.nan, math.nan
    se = float(np.std(diffs, ddof=1) / math.sqrt(n))
    return (mean, *_t_from_se(mean, se, n - 1, confidence))


def clustered_t_interval(
    diffs: np.ndarray, clusters: np.ndarray, confidence: float = 0.95
) -> tuple[float, float, float, float]:
    """Mean of paired differences with a cluster-robust SE, t interval on G-1 df, two-sided p.

    The SE is ``mean_stderr(diffs, clusters)`` (CR1 with the G/(G-1) factor); it
    equals statsmodels ``OLS(d, ones).fit(cov_type="cluster")`` exactly, because
    statsmodels' extra (N-1)/(N-K) factor is 1 for an intercept-only model (K=1).
    """
    mean, se = mean_stderr(diffs, clusters)
    g = len(np.unique(clusters)) if len(diffs) else 0
    if se is None or g < 2:
        return mean, math.nan, math.nan, math.nan
    return (mean, *_t_from_se(mean, se, g - 1, confidence))


def _t_from_se(mean: float, se: float, df: int, confidence: float) -> tuple[float, float, float]:
    if se == 0.0:
        p = 1.0 if mean == 0.0 else 0.0
        return mean, mean, p
    half = float(_st.t.ppf(0.5 + confidence / 2, df)) * se
    p = float(2 * _st.t.sf(abs(mean) / se, df))
    return mean - half, mean + half, p


def paired_bootstrap(
    diffs: np.ndarray,
    clusters: np.ndarray | None = None,
    *,
    confidence: float = 0.95,
    n_resamples: int = 2000,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile bootstrap CI of the mean paired difference (seeded).

    With ``clusters`` whole clusters are resampled (the ratio of resampled sums
    to resampled unit counts), so units sharing a prompt or subject move together.
    """
    if n_resamples < 1:
        raise ValueError("n_resamples must be positive")
    n = len(diffs)
    if n < 2:
        return math.nan, math.nan
    rng = np.random.default_rng(seed)
    if clusters is None:
        sums, counts = np.asarray(diffs, float), np.ones(n)
    else:
        sums = np.bincount(clusters, weights=diffs)
        counts = np.bincount(clusters).astype(float)
    g = len(sums)
    means = np.empty(n_resamples)
    chunk = max(1, 2_000_000 // g)
    for start in range(0, n_resamples, chunk):
        stop = min(n_resamples, start + chunk)
        idx = rng.integers(0, g, size=(stop - start, g))
        means[start:stop] = sums[idx].sum(axis=1) / counts[idx].sum(axis=1)
    alpha = 1 - confidence
    lo, hi = np.quantile(means, [alpha / 2, 1 - alpha / 2])
    return float(lo), float(hi)


def mde(se: float, confidence: float = 0.95, power: float = 0.8) -> float:
    """Minimum detectable effect of a two-sided test at this SE: ``(z_{1-a/2} + z_power) * se``."""
    return float((_st.norm.ppf(0.5 + confidence / 2) + _st.norm.ppf(power)) * se)


def n_needed(n: int, mde_now: float, effect: float) -> int | None:
    """Items needed to detect ``effect`` when ``n`` items give ``mde_now`` (MDE scales as 1/sqrt(n))."""
    if effect <= 0 or not math.isfinite(mde_now) or n <= 0:
        return None
    return max(1, math.ceil(n * (mde_now / effect) ** 2))


def adjust_pvalues(pvalues: Sequence[float | None], method: str = "holm") -> list[float | None]:
    """Holm (step-down, FWER) or Benjamini-Hochberg (FDR) adjusted p-values; None stays None.

    Equals ``statsmodels.stats.multitest.multipletests(p, method="holm"|"fdr_bh")[1]``.
    """
    if method not in ("holm", "bh"):
        raise ValueError(f"correction must be 'holm' or 'bh', got {method!r}")
    idx = [i for i, p in enumerate(pvalues) if p is not None and math.isfinite(p)]
    out: list[float | None] = [None if p is None or not math.isfinite(p) else p for p in pvalues]
    m = len(idx)
    if m == 0:
        return out
    p = np.array([pvalues[i] for i in idx], dtype=float)
    order = np.argsort(p, kind="stable")
    ranked = p[order]
    if method == "holm":
        adj = np.maximum.accumulate((m - np.arange(m)) * ranked)
    else:
        adj = np.minimum.accumulate((m / np.arange(m, 0, -1) * ranked[::-1]))[::-1]
    adj = np.minimum(adj, 1.0)
    for rank, j in enumerate(order):
        out[idx[j]] = float(adj[rank])
    return out


@_dataclass(frozen=True)
class PairedResult:
    """The numbers behind one metric's verdict (delta = candidate - baseline, in the metric's units)."""

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
    mde: float
    test: str


def paired_compare(
    base: np.ndarray,
    cand: np.ndarray,
    clusters: np.ndarray | None = None,
    *,
    binary: bool = True,
    confidence: float = 0.95,
    power: float = 0.8,
    n_resamples: int = 2000,
    seed: int = 0,
) -> PairedResult:
    """Paired comparison of per-unit scores (same units, same order).

    binary, unclustered: exact McNemar p, paired t interval on the 0/1 differences.
    binary, clustered:   cluster-robust t test and interval (McNemar assumes independent pairs).
    continuous:          paired t p-value (clustered when clustered), percentile bootstrap CI
                         (cluster bootstrap when clustered).
    The MDE uses the SE of the mean difference; for binary data with no discordant
    pair at all the SE is taken as if one pair were discordant (never an MDE of 0).
    """
    if base.shape != cand.shape:
        raise ValueError(f"paired arrays differ in shape: {base.shape} vs {cand.shape}")
    d = cand - base
    n = len(d)
    n_clusters = n if clusters is None else len(np.unique(clusters))
    up, down = int(np.sum(d > 0)), int(np.sum(d < 0))
    if clusters is None:
        delta, lo, hi, p = paired_t_interval(d, confidence)
        se = float(np.std(d, ddof=1) / math.sqrt(n)) if n > 1 else math.nan
    else:
        delta, lo, hi, p = clustered_t_interval(d, clusters, confidence)
        se = mean_stderr(d, clusters)[1] or math.nan
    if binary and clusters is None:
        p, test = mcnemar_exact(down, up), "mcnemar-exact"
    elif binary:
        test = f"clustered-t({n_clusters} clusters)"
    else:
        lo, hi = paired_bootstrap(d, clusters, confidence=confidence, n_resamples=n_resamples, seed=seed)
        test = "paired-t+bootstrap" if clusters is None else "clustered-t+cluster-bootstrap"
    se_for_mde = se
    if binary and n > 0 and up + down == 0:
        se_for_mde = math.sqrt(1.0 / n) / math.sqrt(n)  # one discordant pair in n: var(d) ~ 1/n
    return PairedResult(
        baseline=float(base.mean()) if n else math.nan,
        candidate=float(cand.mean()) if n else math.nan,
        delta=delta, ci_low=lo, ci_high=hi, p_value=p, se=se, n=n, n_clusters=n_clusters,
        flips_up=up, flips_down=down, mde=mde(se_for_mde, confidence, power), test=test,
    )
