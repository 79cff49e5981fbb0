"""Report plots: matplotlib figures rendered off-screen (Agg) to PNG data URIs.

Every function takes plain values (records, comparisons, log rows) and returns a
``data:image/png;base64,...`` string, or None when there is nothing to draw, so
the HTML embeds images without touching the network. Figures are built with
``matplotlib.figure.Figure`` directly: no pyplot global state, no backend switch
in the caller's process. One real input, a stage's TRL log row::

    {"step": 10, "loss": 0.6931, "learning_rate": 5e-07, "epoch": 0.4,
     "rewards/chosen": 0.012, "rewards/rejected": -0.004, "rewards/margins": 0.016,
     "rewards/accuracies": 0.625}

and a GRPO stage's (the organism's, rewarded by IFEval's checkers)::

    {"step": 20, "loss": 0.0112, "reward": 0.6641, "reward_std": 0.3536, "rewards/ifeval/mean": 0.6641,
     "kl": 0.2594, "entropy": 0.6012, "completions/mean_length": 9.41, "frac_reward_zero_std": 0.25}
"""

from __future__ import annotations

import base64
import io
import math
from typing import Any, Mapping, Sequence

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from tunegate.evals.records import MetricComparison

Z95 = 1.96
DPI = 96
VERDICT_COLORS = {
    "improved": "#1a7f37",
    "regressed": "#cf222e",
    "non-inferior": "#0969da",
    "inconclusive": "#9a6700",
    "underpowered": "#bc4c00",
}
STAGE_COLORS = ("#6e7781", "#0969da", "#8250df", "#bf3989", "#1a7f37", "#9a6700")
HistoryRow = tuple[str, str, Mapping[str, tuple[float, float | None]]]


def figure_to_data_uri(fig: Figure) -> str:
    """Render a figure to a PNG data URI (the figure is discarded afterwards)."""
    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _new_figure(width: float, height: float, constrained: bool = True) -> Figure:
    return Figure(figsize=(width, height), layout="constrained" if constrained else None)


def _legend_outside(fig: Figure, handles: Sequence[Any] | None = None, loc: str = "outside right upper",
                    ncol: int = 1) -> None:
    """The legend beside (or below) the axes, never over the data (constrained layout makes room for it)."""
    fig.legend(**({"handles": handles} if handles is not None else {}), fontsize=7, loc=loc, ncol=ncol,
               frameon=False)


def ci95(stderr: float | None) -> float:
    return 0.0 if stderr is None or not math.isfinite(stderr) else Z95 * stderr


def suite_stage_plot(suite: str, stages: Sequence[str],
                     values: Mapping[str, Mapping[str, tuple[float, float | None]]]) -> str | None:
    """One suite: each metric at each stage with 95% CI error bars.

    ``values[metric][stage] = (value, stderr)``; stages missing a metric are skipped.
    """
    if not values or not stages:
        return None
    fig = _new_figure(max(3.0, 0.6 * len(stages) + 1.2), 2.9)  # four side by side at 1400 px
    ax = fig.add_subplot()
    n = len(values)
    for k, (metric, per_stage) in enumerate(values.items()):
        xs, ys, es = [], [], []
        for i, stage in enumerate(stages):
            if stage in per_stage and math.isfinite(per_stage[stage][0]):
                xs.append(i + (k - (n - 1) / 2) * 0.08)
                ys.append(per_stage[stage][0])
                es.append(ci95(per_stage[stage][1]))
        if xs:
            ax.errorbar(xs, ys, yerr=es, marker="o", capsize=3, linewidth=1.2, label=metric)
    ax.set_xticks(range(len(stages)), list(stages))
    ax.set_title(f"{suite}: metric by stage (95% CI)", fontsize=9)
    ax.grid(axis="y", alpha=0.3)
    ax.tick_params(labelsize=7)
    _legend_outside(fig, loc="outside lower center", ncol=2)
    return figure_to_data_uri(fig)


def forest_plot(metrics: Sequence[MetricComparison], title: str) -> str | None:
    """Deltas with their CIs, one row per suite/metric, with each metric's non-inferiority margin."""
    if not metrics:
        return None
    rows = list(reversed(metrics))
    fig = _new_figure(5.8, 0.9 + 0.27 * len(rows))  # two side by side at 1400 px
    ax = fig.add_subplot()
    ax.axvline(0.0, color="#57606a", linewidth=0.8)
    margin_drawn = False
    for y, m in enumerate(rows):
        color = VERDICT_COLORS.get(m.verdict, "#57606a")
        ax.plot([m.ci_low, m.ci_high], [y, y], color=color, linewidth=2)
        ax.plot([m.delta], [y], marker="D" if m.trained else "o", color=color, markersize=5)
        if m.margin:
            bad = -m.margin if m.higher_is_better else m.margin
            ax.plot([bad, bad], [y - 0.35, y + 0.35], color="#cf222e", linestyle="--", linewidth=1.2,
                    label=None if margin_drawn else "non-inferiority margin")
            margin_drawn = True
    labels = [f"{m.suite}.{m.metric}" + (" (trained)" if m.trained else "") for m in rows]
    ax.set_yticks(range(len(rows)), labels, fontsize=8)
    ax.set_ylim(-0.7, len(rows) - 0.3)
    ax.set_xlabel("delta (candidate - baseline)", fontsize=8)
    ax.set_title(title, fontsize=10)
    ax.grid(axis="x", alpha=0.3)
    handles = [ax.plot([], [], color=c, linewidth=2, label=v)[0] for v, c in VERDICT_COLORS.items()
               if any(m.verdict == v for m in rows)]
    if margin_drawn:
        handles += [h for h in ax.get_lines() if h.get_label() == "non-inferiority margin"][:1]
    _legend_outside(fig, handles)
    return figure_to_data_uri(fig)


def _series(log: Sequence[Mapping[str, Any]], key: str) -> tuple[list[float], list[float]]:
    xs, ys = [], []
    for i, row in enumerate(log):
        v = row.get(key)
        if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v):
            xs.append(float(row.get("step", i)))
            ys.append(float(v))
    return xs, ys


#: Training-curve panels, each drawn when the log has one of its keys: every method's loss; DPO's implicit rewards
#: and preference accuracy; GRPO/RLOO's mean reward of the sampled completions and KL to the input model.
TRAINING_PANELS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("loss", ("loss", "eval_loss")),
    ("rewards", ("rewards/chosen", "rewards/rejected", "rewards/margins")),
    ("preference accuracy", ("rewards/accuracies",)),
    ("reward", ("reward",)),
    ("KL to the input model", ("kl",)),
)


def training_panels(logs: Mapping[str, Sequence[Mapping[str, Any]]]) -> list[tuple[str, list[str]]]:
    """The panels with data; the reward panel adds each reward function's mean when there are several."""
    present = {k for log in logs.values() for row in log for k in row}
    per_function = sorted(k for k in present if k.startswith("rewards/") and k.endswith("/mean"))
    panels = []
    for title, keys in TRAINING_PANELS:
        wanted = [*keys, *per_function] if title == "reward" and len(per_function) > 1 else list(keys)
        found = [k for k in wanted if any(_series(log, k)[0] for log in logs.values())]
        if found:
            panels.append((title, found))
    return panels


def training_plot(stage: str, log: Sequence[Mapping[str, Any]] | Mapping[str, Sequence[Mapping[str, Any]]]) -> str | None:
    """A stage's training curves (``TRAINING_PANELS``). ``log`` is one run's TRL log history, or run name ->
    log history: the runs of one stage (variants of a pipeline, LoRA beside full) drawn on the same axes."""
    logs = dict(log) if isinstance(log, Mapping) else {"": log}
    panels = training_panels(logs)
    if not panels:
        return None
    below = len(logs) > 1 and any(len(keys) > 1 for _, keys in panels)  # a legend under a panel needs room
    fig = _new_figure(2.8 * len(panels) + 0.6, 2.4 + (0.5 if below else 0))  # SFT and DPO side by side at 1400 px
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, (panel_title, keys) in zip(axes, panels):
        for color, (run, rows) in zip(STAGE_COLORS[1:] * 4, logs.items()):
            for style, key in zip(("-", "--", ":", "-."), keys):
                xs, ys = _series(rows, key)
                label = f"{run} {key}".strip() if len(keys) > 1 or not run else run
                ax.plot(xs, ys, marker="." if len(xs) < 40 else None, linewidth=1.2, label=label,
                        linestyle=style, **({"color": color} if len(logs) > 1 else {}))
        ax.set_title(f"{stage}: {panel_title}", fontsize=9)
        ax.set_xlabel("step", fontsize=8)
        ax.grid(alpha=0.3)
        ax.tick_params(labelsize=7)
        if len(keys) > 1 and len(logs) > 1:  # runs x curves: below the axes, off the data
            ax.legend(fontsize=6, loc="upper center", bbox_to_anchor=(0.5, -0.22), ncol=2, frameon=False)
        elif len(keys) > 1 or len(logs) > 1:
            ax.legend(fontsize=7)
    return figure_to_data_uri(fig)


def breakdown_plot(title: str, stages: Sequence[str], per_stage: Mapping[str, Mapping[str, float]]) -> str | None:
    """Accuracy per key (instruction id, subject) at each stage as a dot plot, sorted by the change.

    ``per_stage[stage] = {key: accuracy}``; keys are sorted by last-minus-first stage.
    """
    present = [s for s in stages if per_stage.get(s)]
    if not present:
        return None
    keys = sorted({k for s in present for k in per_stage[s]})
    first, last = per_stage[present[0]], per_stage[present[-1]]
    keys.sort(key=lambda k: (last.get(k, math.nan) - first.get(k, math.nan)) if k in first and k in last else 0.0)
    width, height = 5.8, max(1.5, 0.9 + 0.19 * len(keys))  # two side by side at 1400 px
    fig = _new_figure(width, height, constrained=False)  # manual margins: constrained layout is slow on tall plots
    label_in = 0.055 * max(len(k) for k in keys) + 0.2
    legend_in = 0.06 * max(len(s) for s in present) + 0.45  # the legend sits right of the axes, off the points
    fig.subplots_adjust(left=min(0.6, label_in / width), right=1 - legend_in / width, bottom=0.55 / height,
                        top=1 - 0.35 / height)
    ax = fig.add_subplot()
    ys = range(len(keys))
    spans = [(y, [per_stage[s][k] for s in present if k in per_stage[s]]) for y, k in zip(ys, keys)]
    spans = [(y, min(v), max(v)) for y, v in spans if len(v) > 1]
    if spans:
        ax.hlines([s[0] for s in spans], [s[1] for s in spans], [s[2] for s in spans],
                  color="#d0d7de", linewidth=2, zorder=1)
    for i, stage in enumerate(present):
        pts = [(per_stage[stage][k], y) for y, k in zip(ys, keys) if k in per_stage[stage]]
        ax.scatter([p[0] for p in pts], [p[1] for p in pts], s=18, zorder=2,
                   color=STAGE_COLORS[i % len(STAGE_COLORS)], label=stage)
    ax.set_yticks(list(ys), keys, fontsize=7)
    ax.set_ylim(-0.8, len(keys) - 0.2)
    ax.set_xlim(-0.02, 1.02)
    ax.set_xlabel("accuracy", fontsize=8)
    ax.set_title(title, fontsize=10)
    ax.grid(axis="x", alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False, borderaxespad=0)
    return figure_to_data_uri(fig)


def history_plot(history: Sequence[HistoryRow], max_panels: int = 16) -> str | None:
    """Each metric over stored runs (oldest first) with a 95% CI band; None with fewer than two runs."""
    if len(history) < 2:
        return None
    rows = sorted(history, key=lambda r: r[1])
    keys = sorted({k for _, _, metrics in rows for k in metrics})[:max_panels]
    if not keys:
        return None
    cols = min(4, len(keys))
    nrows = math.ceil(len(keys) / cols)
    fig = _new_figure(2.6 * cols + 0.4, 2.1 * nrows + 0.3)
    axes = fig.subplots(nrows, cols, squeeze=False)
    for ax in axes.flat[len(keys):]:
        ax.set_visible(False)
    for ax, key in zip(axes.flat, keys):
        xs, ys, lo, hi = [], [], [], []
        for i, (_, _, metrics) in enumerate(rows):
            if key not in metrics or metrics[key][0] is None:
                continue
            value, stderr = metrics[key]
            xs.append(i)
            ys.append(value)
            lo.append(value - ci95(stderr))
            hi.append(value + ci95(stderr))
        ax.fill_between(xs, lo, hi, alpha=0.2, color="#0969da", linewidth=0)
        ax.plot(xs, ys, marker="o", markersize=3, color="#0969da", linewidth=1.2)
        ax.set_title(key, fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
    axes.flat[0].set_xlabel("run (oldest first)", fontsize=7)
    return figure_to_data_uri(fig)


SHIFT_COLORS = {"unshifted": "#d0d7de", "marginal": "#d4a72c", "shifted": "#cf222e"}
CATEGORY_COLORS = {"HighlyKnown": "#1a7f37", "MaybeKnown": "#0969da", "WeaklyKnown": "#d4a72c", "Unknown": "#cf222e"}


def stacked_shares_plot(title: str, rows: Sequence[tuple[str, Mapping[str, float]]],
                        colors: Mapping[str, str], xlabel: str = "share") -> str | None:
    """Horizontal stacked bars, one per row label, of shares that sum to 1 (token classes, categories).

    ``rows = [("sft: identity", {"unshifted": 0.21, "marginal": 0.09, "shifted": 0.70}), ...]``.
    """
    if not rows:
        return None
    fig = _new_figure(6.4, 0.9 + 0.3 * len(rows))
    ax = fig.add_subplot()
    labels = [label for label, _ in reversed(rows)]
    left = [0.0] * len(labels)
    for key, color in colors.items():
        widths = [shares.get(key, 0.0) for _, shares in reversed(rows)]
        ax.barh(range(len(labels)), widths, left=left, color=color, label=key, height=0.7)
        for y, (x0, w) in enumerate(zip(left, widths)):
            if w >= 0.08:
                ax.text(x0 + w / 2, y, f"{w:.0%}", ha="center", va="center", fontsize=7)
        left = [a + b for a, b in zip(left, widths)]
    ax.set_yticks(range(len(labels)), labels, fontsize=8)
    ax.set_xlim(0, 1)
    ax.set_xlabel(xlabel, fontsize=8)
    ax.set_title(title, fontsize=10)
    _legend_outside(fig, loc="outside lower center", ncol=len(colors))
    return figure_to_data_uri(fig)


def shift_position_plot(series: Mapping[str, Sequence[tuple[float, float, int]]]) -> str | None:
    """Shifted (solid) and marginal (dashed) share by tenth of a response, one colour per stage.

    ``series[stage] = [(marginal share, shifted share, positions), ...]`` for the ten tenths.
    """
    series = {k: v for k, v in series.items() if any(n for _, _, n in v)}
    if not series:
        return None
    fig = _new_figure(5.2, 2.8)
    ax = fig.add_subplot()
    for i, (stage, bins) in enumerate(series.items()):
        color = STAGE_COLORS[(i + 1) % len(STAGE_COLORS)]
        xs = [(k + 0.5) / len(bins) for k, (_, _, n) in enumerate(bins) if n]
        ax.plot(xs, [s for _, s, n in bins if n], marker="o", markersize=3, color=color, label=f"{stage}: shifted")
        ax.plot(xs, [m for m, _, n in bins if n], linestyle="--", color=color, linewidth=1, label=f"{stage}: marginal")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("relative position in the response", fontsize=8)
    ax.set_ylabel("share of positions", fontsize=8)
    ax.set_title("where in a response tokens shift", fontsize=10)
    ax.grid(alpha=0.3)
    _legend_outside(fig)
    return figure_to_data_uri(fig)


def category_accuracy_plot(title: str, accuracy: Mapping[str, Mapping[str, tuple[int, int]]]) -> str | None:
    """Accuracy per knowledge category, one bar group per series (e.g. "held-out", "trained (fit)").

    ``accuracy[series][category] = (correct, answered)``; categories never answered are left out.
    """
    categories = [c for c in CATEGORY_COLORS if any(c in acc for acc in accuracy.values())]
    if not categories:
        return None
    fig = _new_figure(5.2, 2.8)
    ax = fig.add_subplot()
    width = 0.8 / max(1, len(accuracy))
    for i, (name, acc) in enumerate(accuracy.items()):
        xs = [k + (i - (len(accuracy) - 1) / 2) * width for k, c in enumerate(categories) if c in acc]
        ys = [acc[c][0] / acc[c][1] for c in categories if c in acc]
        bars = ax.bar(xs, ys, width=width * 0.95, color=STAGE_COLORS[(i + 1) % len(STAGE_COLORS)], label=name)
        for bar, c in zip(bars, [c for c in categories if c in acc]):
            ax.text(bar.get_x() + bar.get_width() / 2, bar.get_height() + 0.02, f"{acc[c][0]}/{acc[c][1]}",
                    ha="center", fontsize=7)
    ax.set_xticks(range(len(categories)), categories, fontsize=8)
    ax.set_ylim(0, 1.12)
    ax.set_ylabel("accuracy", fontsize=8)
    ax.set_title(title, fontsize=10)
    ax.grid(axis="y", alpha=0.3)
    _legend_outside(fig)
    return figure_to_data_uri(fig)
