"""Paired statistics checked against scipy/statsmodels on the same numbers, and by simulation."""

from __future__ import annotations

import math

import numpy as np
import pytest
import statsmodels.api as sm
from scipy import stats
from statsmodels.stats.contingency_tables import mcnemar
from statsmodels.stats.multitest import multipletests

from tunegate.evals.compare import simulate_verdicts
from tunegate.evals.stats import (
    adjust_pvalues,
    clustered_t_interval,
    mcnemar_exact,
    mde,
    n_needed,
    paired_bootstrap,
    paired_compare,
    paired_t_interval,
)


@pytest.mark.parametrize("b,c", [(40, 18), (0, 0), (5, 5), (0, 7), (120, 97), (1, 30)])
def test_mcnemar_exact_matches_statsmodels(b, c):
    expected = mcnemar([[300, b], [c, 150]], exact=True).pvalue
    assert mcnemar_exact(b, c) == pytest.approx(expected, rel=1e-12)


def test_mcnemar_exact_is_vectorised():
    b, c = np.array([40, 3, 0]), np.array([18, 9, 0])
    assert mcnemar_exact(b, c) == pytest.approx([mcnemar_exact(40, 18), mcnemar_exact(3, 9), 1.0])


def test_paired_t_interval_matches_scipy():
    rng = np.random.default_rng(0)
    base = rng.normal(0.5, 0.2, 300)
    cand = base + rng.normal(-0.02, 0.1, 300)
    mean, lo, hi, p = paired_t_interval(cand - base, 0.9)
    ref = stats.ttest_rel(cand, base)
    ci = ref.confidence_interval(0.9)
    assert (mean, lo, hi, p) == pytest.approx((np.mean(cand - base), ci.low, ci.high, ref.pvalue), rel=1e-10)


def test_clustered_interval_matches_statsmodels_ols_cluster():
    rng = np.random.default_rng(1)
    clusters = np.repeat(np.arange(57), rng.integers(3, 30, 57))
    shared = rng.normal(0, 0.3, 57)[clusters]
    d = (rng.random(len(clusters)) < 0.1 + 0.05 * (shared > 0)).astype(float) - (rng.random(len(clusters)) < 0.12)
    fit = sm.OLS(d, np.ones_like(d)).fit(cov_type="cluster", cov_kwds={"groups": clusters}, use_t=True)
    mean, lo, hi, p = clustered_t_interval(d, clusters, 0.95)
    (ref_lo, ref_hi), = fit.conf_int(0.05)
    # statsmodels' small-sample factor is G/(G-1) * (N-1)/(N-K); with K=1 the second factor is 1: exact match
    assert (mean, lo, hi, p) == pytest.approx((fit.params[0], ref_lo, ref_hi, fit.pvalues[0]), rel=1e-10)


def test_clustered_se_is_wider_than_naive_when_units_share_a_cluster():
    rng = np.random.default_rng(2)
    clusters = np.repeat(np.arange(100), 5)
    d = np.repeat(rng.choice([-1.0, 0.0, 1.0], 100, p=[0.1, 0.8, 0.1]), 5)  # whole clusters flip together
    _, lo_c, hi_c, _ = clustered_t_interval(d, clusters)
    _, lo, hi, _ = paired_t_interval(d)
    assert hi_c - lo_c > 2 * (hi - lo)


@pytest.mark.parametrize("method,sm_method", [("holm", "holm"), ("bh", "fdr_bh")])
def test_adjusted_pvalues_match_statsmodels(method, sm_method):
    p = [0.001, 0.04, 0.03, 0.2, 0.04, 0.9]
    assert adjust_pvalues(p, method) == pytest.approx(list(multipletests(p, method=sm_method)[1]))


def test_adjusted_pvalues_keep_missing_ones_missing():
    assert adjust_pvalues([0.01, None, 0.04]) == pytest.approx([0.02, None, 0.04])


def test_bootstrap_is_seeded_and_brackets_the_t_interval():
    rng = np.random.default_rng(3)
    d = rng.normal(-0.03, 0.2, 400)
    assert paired_bootstrap(d, seed=7) == paired_bootstrap(d, seed=7)
    lo, hi = paired_bootstrap(d, seed=7)
    _, t_lo, t_hi, _ = paired_t_interval(d)
    assert abs(lo - t_lo) < 0.005 and abs(hi - t_hi) < 0.005


def test_cluster_bootstrap_is_wider_than_unit_bootstrap_for_clustered_data():
    rng = np.random.default_rng(4)
    clusters = np.repeat(np.arange(80), 6)
    d = np.repeat(rng.normal(0, 0.3, 80), 6) + rng.normal(0, 0.05, 480)
    lo_c, hi_c = paired_bootstrap(d, clusters, seed=1)
    lo, hi = paired_bootstrap(d, seed=1)
    assert hi_c - lo_c > 1.5 * (hi - lo)


def test_mde_and_n_needed_agree_with_the_normal_approximation():
    assert mde(0.01, 0.95, 0.8) == pytest.approx((1.959964 + 0.841621) * 0.01, rel=1e-6)
    # at 4x the items the MDE halves, so an effect of half the current MDE needs 4x the items
    assert n_needed(500, 0.04, 0.02) == 2000
    assert n_needed(500, math.nan, 0.02) is None


def test_mde_is_never_zero_without_discordant_pairs():
    same = np.array([1.0, 0.0] * 250)
    res = paired_compare(same, same.copy())
    assert res.mde > 0 and res.flips_up == res.flips_down == 0 and res.p_value == 1.0


def test_continuous_metric_uses_bootstrap_ci_and_t_p_value():
    rng = np.random.default_rng(5)
    base = rng.random(200)
    cand = base + rng.normal(0.05, 0.1, 200)
    res = paired_compare(base, cand, binary=False, seed=3)
    assert res.test == "paired-t+bootstrap"
    assert res.p_value == pytest.approx(stats.ttest_rel(cand, base).pvalue)
    assert (res.ci_low, res.ci_high) == paired_bootstrap(cand - base, seed=3)


# Simulation: 1,000 pairs of correlated binary runs at n = 500 (12% of units change between runs).
# Measured (seed 0 / 1): false-positive "regressed" share 0.021; power for a true 5-point drop 0.873.


def test_false_positive_regressed_rate_stays_below_alpha():
    shares = simulate_verdicts(500, drop=0.0, margin=0.0, sims=1000, seed=0)
    assert shares["regressed"] <= 0.05


def test_power_to_detect_a_five_point_drop_at_n_500():
    shares = simulate_verdicts(500, drop=0.05, margin=0.02, sims=1000, seed=1)
    assert shares["regressed"] >= 0.8
    assert shares["improved"] == 0.0
