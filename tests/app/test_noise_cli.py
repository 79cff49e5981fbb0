"""``tunegate noise`` on the organism, and the gate's ``noise_floor`` key through ``tunegate compare``."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import yaml

from tunegate.cli import main
from tunegate.evals.noise import noise_metrics
from tunegate.evals.records import ItemScore, MetricValue, NoiseFloor, NoiseMetric, RunRecord, SuiteResult

ORGANISM = ["--suite-option", 'math.variant="organism"', "--suite-option", 'knowledge.variant="organism"']


def test_noise_on_the_organism_writes_the_reference_record_with_a_floor_per_metric(tmp_path, capsys):
    out = tmp_path / "base.json"
    assert main(["noise", "organism", "--suites", "math,knowledge", *ORGANISM, "--limit", "12",
                 "--batch-size", "8", "--out", str(out), "--quiet"]) == 0
    record = RunRecord.load(out)
    assert record.generation["batch_size"] == 8 and record.noise is not None
    assert record.noise.settings == ("batch_size 8 -> 1",) and record.noise.fingerprint == record.fingerprint
    measured = {(m.suite, m.metric) for m in record.noise.metrics}
    assert measured == {(s, m) for s, r in record.suites.items() for m in r.metrics}
    scored = {(s, m): sum(m in it.scores for it in r.items) for s, r in record.suites.items() for m in r.metrics}
    assert all(m.n == scored[m.suite, m.metric] and 0 <= m.flipped <= m.n for m in record.noise.metrics)
    assert scored["math", "exact_match"] == 12
    printed = capsys.readouterr().out
    assert "A/A noise over batch_size 8 -> 1" in printed and "math.exact_match" in printed


def test_noise_rejects_a_reference_batch_of_one(tmp_path, capsys):
    assert main(["noise", "organism", "--suites", "math", *ORGANISM[:2], "--batch-size", "1",
                 "--out", str(tmp_path / "r.json")]) == 2
    assert "reference batch size must be at least 2" in capsys.readouterr().err
    assert not (tmp_path / "r.json").exists()


def _record(model: str, outcomes: list[int], noise: NoiseFloor | None = None) -> RunRecord:
    items = tuple(ItemScore(f"q{i}", f"Q{i}", "", None, None, {"exact_match": float(o)}) for i, o in enumerate(outcomes))
    value = MetricValue("exact_match", sum(outcomes) / len(outcomes), None, len(outcomes))
    return RunRecord(model, f"fp-{model}", {"math": SuiteResult("math", "1", {"exact_match": value}, items)},
                     noise=noise)


def test_noise_metrics_count_flipped_items_and_the_metric_change():
    ref = _record("m", [1, 1, 0, 0, 1, 0, 1, 0])
    var = _record("m", [1, 0, 1, 0, 0, 0, 1, 0])  # items 1 and 4 went down, item 2 up
    [m] = noise_metrics(ref, var, "batch_size 4 -> 1")
    assert (m.flipped, m.n, m.delta) == (3, 8, -0.125)


FLOOR = NoiseFloor("base", "fp-base", {"batch_size": 32}, ("batch_size 32 -> 1",),
                   (NoiseMetric("math", "exact_match", "batch_size 32 -> 1", 400, 30, -0.09),))


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    """400 items; the candidate loses 32 (8 points) and gains none: McNemar p ~ 2e-10."""
    d = tmp_path_factory.mktemp("noise")
    base = [1] * 240 + [0] * 160
    cand = [0] * 32 + [1] * 208 + [0] * 160
    gate = {"default_margin": None, "metrics": {"math.exact_match": {"margin": 0.05}}}
    paths = {"base": _record("base", base, FLOOR).save(d / "base.json"),
             "bare": _record("base", base).save(d / "bare.json"),
             "cand": _record("cand", cand).save(d / "cand.json"),
             "worse": _record("worse", [0] * 60 + [1] * 180 + [0] * 160).save(d / "worse.json")}
    for name, extra in (("plain", {}), ("floor", {"noise_floor": True})):
        (d / f"{name}.yaml").write_text(yaml.safe_dump(gate | extra))
        paths[name] = d / f"{name}.yaml"
    return paths


def test_a_drop_within_the_noise_floor_warns_when_the_gate_asks_for_it(pair, capsys):
    assert main(["compare", str(pair["base"]), str(pair["cand"]), "--gate", str(pair["plain"])]) == 1
    capsys.readouterr()
    assert main(["compare", str(pair["base"]), str(pair["cand"]), "--gate", str(pair["floor"])]) == 0
    out = capsys.readouterr().out
    assert "warn: math.exact_match: regressed" in out and "within the A/A noise floor 0.09" in out
    header = next(line for line in out.splitlines() if line.startswith("metric"))
    assert "floor" in header.split() and "0.090" in out  # the table's floor column


def test_a_drop_beyond_the_noise_floor_still_fails(pair, capsys):
    assert main(["compare", str(pair["base"]), str(pair["worse"]), "--gate", str(pair["floor"])]) == 1
    assert "fail: math.exact_match: regressed" in capsys.readouterr().out


def test_a_gate_that_needs_a_floor_names_the_metric_when_the_records_have_none(pair, capsys):
    assert main(["compare", str(pair["bare"]), str(pair["cand"]), "--gate", str(pair["floor"])]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "noise_floor: true" in err[0] and "math.exact_match" in err[0]


def test_the_floor_round_trips_through_the_record_and_the_comparison(pair, tmp_path):
    assert RunRecord.load(pair["base"]).noise == FLOOR
    out = tmp_path / "c.json"
    main(["compare", str(pair["base"]), str(pair["cand"]), "--out", str(out)])
    assert json.loads(out.read_text())["metrics"][0]["noise_floor"] == 0.09
    assert dataclasses.replace(FLOOR, metrics=()).floor("math.exact_match") is None
