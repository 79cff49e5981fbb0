"""Paired statistics: the scipy/statsmodels wrappers checked against the libraries on the same numbers,
Tango's interval against a reference implementation and an independent closed form, and power."""

from __future__ import annotations

import numpy as np
import pytest
import statsmodels.api as sm
from scipy import stats
from statsmodels.stats.contingency_tables import mcnemar
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.power import NormalIndPower

from tunegate.evals.stats import (
    adjust_pvalues,
    clustered_t_interval,
    mcnemar_exact,
    mde,
    paired_bootstrap,
    paired_compare,
    paired_proportion_interval,
    paired_t_interval,
    units_needed,
)


@pytest.mark.parametrize("b,c", [(40, 18), (0, 0), (5, 5), (0, 7), (120, 97), (1, 30)])
def test_mcnemar_exact_matches_statsmodels(b, c):
    expected = mcnemar([[300, b], [c, 150]], exact=True).pvalue
    assert mcnemar_exact(b, c) == pytest.approx(expected, rel=1e-12)


def test_one_sided_mcnemar_is_half_the_two_sided_when_right_to_wrong_dominate():
    assert mcnemar_exact(40, 18, "greater") == pytest.approx(mcnemar_exact(40, 18) / 2, rel=1e-12)
    assert mcnemar_exact(18, 40, "greater") > 0.99


def test_paired_t_interval_matches_scipy():
    rng = np.random.default_rng(0)
    base = rng.normal(0.5, 0.2, 300)
    cand = base + rng.normal(-0.02, 0.1, 300)
    mean, lo, hi, p = paired_t_interval(cand - base, 0.9, alternative="less")
    ci = stats.ttest_rel(cand, base).confidence_interval(0.9)
    p_ref = stats.ttest_rel(cand, base, alternative="less").pvalue
    assert (mean, lo, hi, p) == pytest.approx((np.mean(cand - base), ci.low, ci.high, p_ref), rel=1e-10)


def test_clustered_interval_matches_statsmodels_ols_cluster():
    rng = np.random.default_rng(1)
    clusters = np.repeat(np.arange(57), rng.integers(3, 30, 57))
    shared = rng.normal(0, 0.3, 57)[clusters]
    d = (rng.random(len(clusters)) < 0.1 + 0.05 * (shared > 0)).astype(float) - (rng.random(len(clusters)) < 0.12)
    fit = sm.OLS(d, np.ones_like(d)).fit(cov_type="cluster", cov_kwds={"groups": clusters}, use_t=True)
    mean, lo, hi, p = clustered_t_interval(d, clusters, 0.95)
    (ref_lo, ref_hi), = fit.conf_int(0.05)
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


# --- Tango's score interval for a paired difference of proportions ----------------------------


def test_tango_interval_matches_the_reference_implementation_on_a_published_example():
    # Cavo et al. (2012), complete response before/after consolidation therapy: n12 = 6, n21 = 16, N = 161,
    # the worked example of Fagerland, Lydersen & Laake, "Statistical Analysis of Contingency Tables" (2017),
    # ch. 8; their R package contingencytables prints "estimate = -0.0621 (95% CI -0.1240 to -0.0054)"
    # (the package's own check of Tango_asymptotic_score_CI_paired_2x2, in test-ch8.R of
    # github.com/ocbe-uio/contingencytables/tree/HEAD/tests/testthat).
    lo, hi = paired_proportion_interval(up=6, down=16, n=161, confidence=0.95)
    assert (round(lo, 4), round(hi, 4)) == (-0.1240, -0.0054)


@pytest.mark.parametrize("up,down,n", [(6, 16, 161), (0, 4, 10), (1, 7, 21), (40, 20, 160), (3, 0, 500),
                                       (0, 0, 10), (2, 2, 50), (0, 10, 10), (57, 70, 1319)])
def test_tango_limits_are_roots_of_the_closed_form_quartic(up, down, n):
    # Yang, Sun & Hardin (Stat Med 2013): Tango's limits are real roots of a quartic in the difference,
    # derived independently of the root search used here.
    g = stats.norm.ppf(0.975) ** 2
    b, c, N = up, down, n
    coef = [N**2 * (N / g + 1) ** 2,
            -N * (b - c) * (N / g + 1) * (4 * N / g + 1),
            2 * N * (b - c) ** 2 * (3 * N / g + 2) / g - N**2 * ((b + c) / g + 1),
            N * (b - c) * (2 * (b + c) / g + 1) - (b - c) ** 3 * (4 * N / g + 1) / g,
            (b - c) ** 2 * ((b - c) ** 2 / g - (b + c)) / g]
    roots = np.roots(coef)
    real = roots[np.abs(roots.imag) < 1e-6].real
    for limit in paired_proportion_interval(up, down, n):
        assert abs(limit) == 1.0 or np.min(np.abs(real - limit)) < 1e-6


def test_tango_interval_without_discordant_pairs_is_not_zero_width():
    # at up = down = 0 the limits are +/- z^2 / (n + z^2): n = 10 gives +/-0.278, never [0, 0]
    z2 = stats.norm.ppf(0.975) ** 2
    lo, hi = paired_proportion_interval(0, 0, 10)
    assert (lo, hi) == pytest.approx((-z2 / (10 + z2), z2 / (10 + z2)))


def test_tango_interval_covers_the_true_difference_with_few_discordant_pairs():
    # n = 30 pairs, 3% and 10% discordance per direction (about 1 and 3 discordant pairs)
    rng = np.random.default_rng(5)
    tables, counts = np.unique(rng.multinomial(30, [0.03, 0.10, 0.87], size=2000)[:, :2], axis=0, return_counts=True)
    hits = [lo <= 0.03 - 0.10 <= hi for lo, hi in (paired_proportion_interval(u, d, 30) for u, d in tables)]
    assert np.average(hits, weights=counts) >= 0.94


def test_design_effect_widens_the_interval_as_fewer_independent_units():
    # 50 prompts, each with 4 instructions that always flip together: the clustered interval of the 200 units
    # is the interval of the 50 prompts
    rng = np.random.default_rng(6)
    base = (rng.random(50) < 0.6).astype(float)
    cand = np.where(rng.random(50) < 0.2, 1 - base, base)
    one = paired_compare(base, cand)
    four = paired_compare(np.repeat(base, 4), np.repeat(cand, 4), np.repeat(np.arange(50), 4))
    assert four.design_effect == pytest.approx(4, rel=0.05)
    assert (four.ci_low, four.ci_high) == pytest.approx((one.ci_low, one.ci_high), abs=0.01)


# --- power -------------------------------------------------------------------------------------


def _binary_pair(n: int, up: int, down: int) -> tuple[np.ndarray, np.ndarray]:
    base = np.zeros(n)
    base[:down] = 1
    cand = base.copy()
    cand[:down] = 0
    cand[down:down + up] = 1
    return base, cand


def test_mde_is_the_drop_statsmodels_gives_80_percent_power():
    res = paired_compare(*_binary_pair(500, 30, 40))
    drop = mde(res, 0.05 / 3, 0.8)
    sd = res.se * np.sqrt(res.n)  # per-unit SD the test uses (McNemar, normal approximation)
    power = NormalIndPower().power(drop / sd, nobs1=res.n, alpha=0.05 / 3, ratio=0, alternative="larger")
    assert power == pytest.approx(0.8, abs=1e-6)


def test_mde_is_never_zero_without_discordant_pairs():
    same = np.array([1.0, 0.0] * 250)
    res = paired_compare(same, same.copy())
    assert mde(res, 0.05) > 0.01 and res.flips_up == res.flips_down == 0 and res.p_value == 1.0


def test_units_needed_is_where_the_mde_reaches_the_effect():
    res = paired_compare(*_binary_pair(500, 30, 40))
    need = units_needed(res, 0.03, 0.05 / 3)
    bigger = paired_compare(*_binary_pair(need, round(30 * need / 500), round(40 * need / 500)))
    assert mde(bigger, 0.05 / 3) == pytest.approx(0.03, abs=0.001)


def test_continuous_metric_uses_bootstrap_ci_and_one_sided_t_p_value():
    rng = np.random.default_rng(5)
    base = rng.random(200)
    cand = base + rng.normal(0.05, 0.1, 200)
    res = paired_compare(base, cand, binary=False, seed=3)
    assert res.test == "paired-t+bootstrap"
    assert res.p_value == pytest.approx(stats.ttest_rel(cand, base, alternative="less").pvalue)
    assert (res.ci_low, res.ci_high) == paired_bootstrap(cand - base, seed=3)
