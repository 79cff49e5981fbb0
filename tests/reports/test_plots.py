"""Report plots: PNG data URIs, None when there is nothing to draw, one panel per kind of curve."""

from __future__ import annotations

import base64
import struct

from tunegate.evals.records import MetricComparison
from tunegate.reports import plots


def png_size(uri: str) -> tuple[int, int]:
    prefix = "data:image/png;base64,"
    assert uri.startswith(prefix)
    raw = base64.b64decode(uri[len(prefix):])
    assert raw[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", raw[16:24])


def metric(suite: str, delta: float, verdict: str, margin: float = 0.02) -> MetricComparison:
    return MetricComparison(suite, "acc", 0.5, 0.5 + delta, delta, delta - 0.03, delta + 0.03, 0.1, 0.2, 500,
                            10, 12, None, None, verdict, "mcnemar-exact", margin)


def test_training_plot_adds_dpo_panels_for_reward_logs():
    sft = [{"step": s, "loss": 1.0 / s} for s in range(1, 11)]
    dpo = [{**row, "rewards/chosen": 0.1, "rewards/rejected": -0.1, "rewards/margins": 0.2,
            "rewards/accuracies": 0.7} for row in sft]
    sft_w, _ = png_size(plots.training_plot("sft", sft))
    dpo_w, _ = png_size(plots.training_plot("dpo", dpo))
    assert dpo_w > 2.5 * sft_w  # loss | rewards | accuracy


def test_training_plot_of_a_log_without_curves_is_none():
    assert plots.training_plot("sft", [{"train_runtime": 12.0, "step": 10}]) is None


def test_forest_plot_grows_with_rows():
    _, h1 = png_size(plots.forest_plot([metric("math", -0.01, "non-inferior")], "one"))
    _, h4 = png_size(plots.forest_plot([metric(s, -0.05, "regressed") for s in "abcd"], "four"))
    assert h4 > h1
    assert plots.forest_plot([], "none") is None


def test_breakdown_plot_has_one_row_per_key():
    few = {"base": {"a": 0.2, "b": 0.4}, "sft": {"a": 0.3, "b": 0.5}}
    many = {s: {f"subject_{i:02d}": i / 57 for i in range(57)} for s in ("base", "sft")}
    _, h_few = png_size(plots.breakdown_plot("few", ["base", "sft"], few))
    _, h_many = png_size(plots.breakdown_plot("many", ["base", "sft"], many))
    assert h_many > 5 * h_few
    assert plots.breakdown_plot("none", ["base"], {}) is None


def test_suite_stage_plot_draws_each_metric():
    values = {"acc": {"base": (0.5, 0.02), "sft": (0.55, 0.02)}, "acc_norm": {"base": (0.4, None)}}
    assert png_size(plots.suite_stage_plot("mmlu", ["base", "sft"], values))[0] > 100
    assert plots.suite_stage_plot("mmlu", ["base"], {}) is None


def test_history_plot_needs_two_runs_and_makes_a_panel_per_metric():
    run = ("r", "2025-01-01", {"math.exact_match": (0.5, 0.02)})
    assert plots.history_plot([run]) is None
    one = plots.history_plot([run, ("s", "2025-01-02", {"math.exact_match": (0.6, 0.02)})])
    four = plots.history_plot([(r, d, {f"s.m{i}": (0.5, 0.01) for i in range(4)}) for r, d in (("a", "1"), ("b", "2"))])
    assert png_size(four)[0] > 2 * png_size(one)[0]


def test_ci95_ignores_missing_stderr():
    assert plots.ci95(None) == 0.0 and plots.ci95(float("nan")) == 0.0
    assert abs(plots.ci95(0.01) - 0.0196) < 1e-12
