"""Several runs of one pipeline in one report: each run a variant, its stages labelled VARIANT/STAGE.

The runs are real (``lora_and_full_runs``: the quick demo fine-tuned in full and with LoRA on both stages);
before variants, ``tunegate report full lora`` gave two "Δ sft vs base" columns and one run's training
curves replaced the other's.
"""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import pytest

from tunegate.cli import main
from tunegate.reports.loading import ReportInputs, as_variant, load_paths, share_common_stages

STAGES = ["base", "full/sft", "lora/sft", "full/dpo", "lora/dpo"]


@pytest.mark.slow
def test_two_run_directories_are_variants_that_share_their_base(lora_and_full_runs) -> None:
    full, lora = lora_and_full_runs
    inputs = load_paths([full, lora])
    assert [r.stage for r in inputs.records] == STAGES  # the base, evaluated alike in both runs, once
    assert [(c.baseline_stage, c.candidate_stage) for c in inputs.comparisons] == [
        ("full/sft", "full/dpo"), ("base", "full/sft"), ("lora/sft", "lora/dpo"), ("base", "lora/sft")]
    assert sorted(inputs.training_logs) == ["full/dpo", "full/sft", "lora/dpo", "lora/sft"]
    for name, run in (("full", full), ("lora", lora)):  # each variant keeps its own curves and manifest
        assert inputs.training_logs[f"{name}/dpo"] == json.loads((run / "stages" / "dpo" / "training_log.json").read_text())
        assert inputs.manifests[f"{name}/sft"]["lora"] == (None if name == "full" else
                                                          {"r": 8, "lora_alpha": 16, "target_modules": "all-linear"})
    passed = [json.loads((run / "summary.json").read_text())["passed"] for run in (full, lora)]
    assert inputs.summary["passed"] == all(passed) and list(inputs.variants) == ["full", "lora"]


@pytest.mark.slow
def test_report_over_two_runs_has_one_column_and_one_delta_per_stage_and_variant(lora_and_full_runs, tmp_path) -> None:
    out = tmp_path / "lora-vs-full.html"
    assert main(["report", *map(str, lora_and_full_runs), "--out", str(out)]) == 0
    html = out.read_text()
    table = html[html.index('<table class="metrics">'):]
    heads = [re.sub(r"<[^>]+>", "", h).strip() for h in re.findall(r"<th[^>]*>(.*?)</th>", table[:table.index("</thead>")])]
    assert heads == ["suite", "metric", *STAGES, "Δ full/sft vs base", "Δ lora/sft vs base", "Δ full/dpo vs full/sft",
                     "Δ lora/dpo vs lora/sft"]
    assert re.findall(r'alt="training curves ([^"]+)"', html) == ["sft", "dpo"]  # one plot per stage, both variants
    assert re.findall(r'<tr data-variant="([^"]+)">', html) == ["full", "lora", "full", "lora"]


def test_a_stage_the_variants_share_is_shown_once_and_one_that_differs_once_per_variant(report_inputs) -> None:
    """Variant b's base and dpo records differ from a's (another fingerprint), its sft record is a's."""
    records, comparisons, logs, manifests = report_inputs
    assert [r.stage for r in records] == ["base", "sft", "dpo"]
    merged = ReportInputs()
    for name in ("a", "b"):
        own = records if name == "a" else [dataclasses.replace(r, fingerprint=f"{r.fingerprint}-b")
                                           if r.stage != "sft" else r for r in records]
        merged.extend(as_variant(ReportInputs(records=list(own), comparisons=list(comparisons),
                                              training_logs=dict(logs), manifests=dict(manifests),
                                              summary={"passed": name == "a"}), name, Path(name)))
    shared = share_common_stages(merged)
    assert [r.stage for r in shared.records] == ["a/base", "b/base", "sft", "a/dpo", "b/dpo"]
    assert {(c.baseline_stage, c.candidate_stage) for c in shared.comparisons} == {
        ("a/base", "sft"), ("b/base", "sft"), ("sft", "a/dpo"), ("sft", "b/dpo")}
    assert shared.summary == {"passed": False, "error": None}
