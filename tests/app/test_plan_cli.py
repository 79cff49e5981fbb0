"""``tunegate plan``: items needed per gated metric from the gate's own decision path, checked by simulation."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from tunegate.cli import main
from tunegate.evals.gate import GateConfig, Measured, decide
from tunegate.evals.records import ItemScore, MetricValue, RunRecord, SuiteResult
from tunegate.evals.stats import paired_compare
from tests.evals.test_compare_records import make_record

GATE = {"default_margin": None, "metrics": {"math.exact_match": {"margin": 0.05}, "knowledge.accuracy": {"margin": 0.05}}}


def _suite(name: str, metric: str, outcomes: np.ndarray, seconds: float) -> SuiteResult:
    items = tuple(ItemScore(f"{name}-{i}", "", "", None, None, {metric: float(o)}) for i, o in enumerate(outcomes))
    return SuiteResult(name, "1", {metric: MetricValue(metric, float(outcomes.mean()), None, len(outcomes))}, items,
                       seconds=seconds)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A baseline at 60% / 50% accuracy over 300 items, a candidate with 10% of math items changed."""
    d = tmp_path_factory.mktemp("plan")
    rng = np.random.default_rng(7)
    math_b, know = (rng.random(300) < 0.6).astype(float), (rng.random(300) < 0.5).astype(float)
    flip = rng.random(300) < 0.1
    math_c = np.where(flip, 1 - math_b, math_b)
    base = RunRecord("base", "fp-b", {"math": _suite("math", "exact_match", math_b, 6.0),
                                      "knowledge": _suite("knowledge", "accuracy", know, 1.5)})
    cand = RunRecord("cand", "fp-c", {"math": _suite("math", "exact_match", math_c, 6.0),
                                      "knowledge": _suite("knowledge", "accuracy", know, 1.5)})
    (d / "gate.yaml").write_text(yaml.safe_dump(GATE))
    return {"base": base.save(d / "base.json"), "cand": cand.save(d / "cand.json"), "gate": d / "gate.yaml",
            "dir": d}


def _plan(capsys, *args: str) -> dict:
    assert main(["plan", *args, "--json"]) == 0
    return {f"{r['suite']}.{r['metric']}": r for r in json.loads(capsys.readouterr().out)["rows"]}


def _power(n: int, accuracy: float, discordance: float, drop: float, reps: int, seed: int) -> float:
    """Share of ``reps`` simulated pairs (n items, true ``drop`` in math, knowledge unchanged) that decide
    calls regressed. Outcomes are drawn per item from the four cells of the paired 2x2 table."""
    rng = np.random.default_rng(seed)
    down, up = (discordance + drop) / 2, (discordance - drop) / 2
    both = accuracy - down
    gate = GateConfig.from_dict(GATE)
    same = np.r_[np.ones(n // 2), np.zeros(n - n // 2)]
    unchanged = Measured("knowledge", "accuracy", paired_compare(same, same))
    caught = 0
    for _ in range(reps):
        cell = rng.choice(4, size=n, p=[down, up, both, 1 - down - up - both])
        base, cand = np.isin(cell, (0, 2)).astype(float), np.isin(cell, (1, 2)).astype(float)
        metrics, _ = decide([Measured("math", "exact_match", paired_compare(base, cand)), unchanged], gate)
        caught += metrics[0].verdict == "regressed"
    return caught / reps


def test_planned_items_catch_a_margin_drop_with_the_promised_power(files, capsys):
    # baseline only: the candidate is assumed independent at the same accuracy (2p(1-p) discordant)
    row = _plan(capsys, "--gate", str(files["gate"]), "--baseline", str(files["base"]))["math.exact_match"]
    p = row["accuracy"]
    assert row["discordance"] == pytest.approx(2 * p * (1 - p)) and row["alpha"] == pytest.approx(0.025)
    assert abs(_power(row["n_needed"], p, row["discordance"], 0.05, reps=1000, seed=1) - 0.8) <= 0.05


def test_with_a_candidate_the_plan_uses_the_observed_discordance_and_keeps_its_power(files, capsys):
    row = _plan(capsys, "--gate", str(files["gate"]), "--baseline", str(files["base"]),
                "--candidate", str(files["cand"]))["math.exact_match"]
    b = RunRecord.load(files["base"]).suites["math"].items
    c = RunRecord.load(files["cand"]).suites["math"].items
    observed = sum(x.scores["exact_match"] != y.scores["exact_match"] for x, y in zip(b, c)) / len(b)
    assert row["discordance"] == pytest.approx(observed) and row["source"] == "candidate"
    assert abs(_power(row["n_needed"], row["accuracy"], observed, 0.05, reps=1000, seed=2) - 0.8) <= 0.05


def test_plan_with_a_candidate_gives_the_items_compare_reports(files, capsys, tmp_path):
    # a margin the 300 items cannot reach: compare's own n_needed is the plan's
    gate = tmp_path / "tight.yaml"
    gate.write_text(yaml.safe_dump({"default_margin": None, "metrics": {"math.exact_match": {"margin": 0.03},
                                                                        "knowledge.accuracy": {"margin": 0.03}}}))
    rows = _plan(capsys, "--gate", str(gate), "--baseline", str(files["base"]), "--candidate", str(files["cand"]))
    main(["compare", str(files["base"]), str(files["cand"]), "--gate", str(gate), "--json"])
    compared = {f"{m['suite']}.{m['metric']}": m["n_needed"] for m in json.loads(capsys.readouterr().out)["metrics"]}
    assert {k: r["n_needed"] for k, r in rows.items()} == {k: compared[k] for k in rows}


def test_plan_prices_the_items_at_the_record_timing(files, capsys):
    rows = _plan(capsys, "--gate", str(files["gate"]), "--baseline", str(files["base"]), "--mde", "0.1")
    assert {r["effect"] for r in rows.values()} == {0.1}
    assert rows["math.exact_match"]["seconds"] == pytest.approx(rows["math.exact_match"]["n_needed"] * 6.0 / 300, abs=0.01)
    assert main(["plan", "--gate", str(files["gate"]), "--baseline", str(files["base"])]) == 0
    out = capsys.readouterr().out
    assert "across 2 gated metrics" in out and "x2 for baseline and candidate" in out


def test_plan_rejects_an_mde_outside_0_1(files, capsys):
    assert main(["plan", "--gate", str(files["gate"]), "--baseline", str(files["base"]), "--mde", "1.5"]) == 2
    assert "--mde must be in (0, 1)" in capsys.readouterr().err
