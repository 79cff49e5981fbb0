"""Variants of one pipeline side by side (LoRA beside a full fine-tune): per stage, each variant's training,
time, gate and deltas, and the stage's training curves with one line per variant.

The report gets variants when ``tunegate report`` is given several run directories (``reports.loading``:
their stages are labelled ``VARIANT/STAGE``). For two runs of ``training/demo.yaml``, one with
``--set stages.0.lora=...``, the section reads::

    sft   full  full fine-tune         61.2 s  FAILED  identity.adherence 0.000 → 0.700 +0.700 improved  ...
          lora  LoRA r=16, alpha 32    40.8 s  FAILED  identity.adherence 0.000 → 0.300 +0.300 improved  ...
    dpo   full  full fine-tune          9.0 s  PASSED  ...
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from tunegate.evals.records import Comparison
from tunegate.reports import plots
from tunegate.reports.loading import Variant, split_label
from tunegate.reports.verdict import headline_keys, metric_key


def training_of(manifest: Mapping[str, Any]) -> str:
    """How a stage trained, in a few words: its method, LoRA's rank and alpha or a full fine-tune."""
    lora = manifest.get("lora")
    how = f"LoRA r={lora.get('r', 8)}, alpha {lora.get('lora_alpha', 8)}" if lora else "full fine-tune"
    return f"{manifest['method']}, {how}" if manifest.get("method") else how


def variant_section(variants: Mapping[str, Variant], comparisons: Sequence[Comparison],
                    endpoints: Sequence[tuple[str, str]],
                    manifests: Mapping[str, Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Per stage (pipeline order), one row per variant: input, training, seconds, gate and each gated metric."""
    names = list(variants)
    stages: dict[str, list[dict[str, Any]]] = {}
    for c, (base, cand) in zip(comparisons, endpoints):
        variant, stage = split_label(cand, names)
        if variant is None:
            continue
        manifest = manifests.get(cand, {})
        stages.setdefault(stage, []).append({
            "variant": variant, "input": base, "training": training_of(manifest), "seconds": manifest.get("seconds"),
            "passed": c.passed, "cells": {metric_key(m): m for m in c.metrics if metric_key(m) in headline_keys(c)}})
    blocks = []
    for stage, rows in stages.items():
        rows.sort(key=lambda r: names.index(r["variant"]))
        keys = list(dict.fromkeys(k for r in rows for k in r["cells"]))
        blocks.append({"stage": stage, "metrics": keys, "rows": rows})
    return blocks


def training_by_stage(training_logs: Mapping[str, Sequence[Mapping[str, Any]]],
                      labels: Sequence[str], variants: Sequence[str]) -> list[tuple[str, str | None]]:
    """One training plot per stage, each variant's curves on the same axes (a stage all variants share: one)."""
    ordered = [s for s in labels if s in training_logs] + [s for s in training_logs if s not in labels]
    grouped: dict[str, dict[str, Sequence[Mapping[str, Any]]]] = {}
    for label in ordered:
        variant, stage = split_label(label, variants)
        grouped.setdefault(stage, {})[variant or stage] = training_logs[label]
    return [(stage, plots.training_plot(stage, runs if len(runs) > 1 else next(iter(runs.values()))))
            for stage, runs in grouped.items()]
