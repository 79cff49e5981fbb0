"""Record-level behaviour of compare_records: pairing, bad input, warnings, flips.

``make_record`` builds real-shaped RunRecords (the organism's suite layout, real
item counts) from seeded per-item outcomes; other test modules import it.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from tunegate.evals.compare import compare_records, find_metric
from tunegate.core.errors import TunegateError
from tunegate.evals.gate import GateConfig, MetricRule
from tunegate.evals.stats import flatten_units, mean_stderr
from tunegate.evals.records import EvalItem, ItemScore, MetricValue, RunRecord, SuiteResult, question_hash

#: (suite, metric, n items, units per item, higher_is_better, binary, cluster, n groups)
LAYOUT = {
    "math": [("exact_match", True, True, None)],
    "ifeval": [("prompt_strict", True, True, None), ("inst_strict", True, True, "item")],
    "knowledge": [("accuracy", True, True, "group")],
    "identity": [("adherence", True, True, None), ("leak_rate", False, True, None)],
}
N_ITEMS = {"math": 1319, "ifeval": 541, "knowledge": 570, "identity": 100}


def make_record(
    seed: int = 0,
    *,
    model: str = "base",
    p: dict[str, float] | None = None,
    like: RunRecord | None = None,
    flip: dict[str, float] | None = None,
    suites: tuple[str, ...] = ("math", "ifeval", "knowledge", "identity"),
    env: dict | None = None,
) -> RunRecord:
    """A RunRecord with seeded 0/1 outcomes.

    Without ``like``: each unit is right with probability ``p[suite]`` (default 0.6).
    With ``like``: start from ``like``'s outcomes and, per suite, turn each right unit
    wrong with probability ``flip[suite]`` (negative: turn wrong units right), so
    the two records are correlated the way two checkpoints of one model are.
    """
    rng = np.random.default_rng(seed)
    p = p or {}
    flip = flip or {}
    out = {}
    for suite in suites:
        n = N_ITEMS[suite]
        items = []
        for i in range(n):
            item_id = f"{suite}-{i:04d}"
            base_item = like.suites[suite].items[i] if like else None
            scores = {}
            for metric, hib, _, cluster in LAYOUT[suite]:
                k = 1 + i % 3 if cluster == "item" else 1
                if base_item is None:
                    prob = p.get(suite, 0.6) if hib else 1 - p.get(suite, 0.6)
                    units = (rng.random(k) < prob).astype(float)
                else:
                    old = np.atleast_1d(np.asarray(base_item.scores[metric], float))
                    f = flip.get(suite, 0.0)
                    good = old == (1.0 if hib else 0.0)
                    if f >= 0:
                        change = good & (rng.random(len(old)) < f)
                    else:
                        change = ~good & (rng.random(len(old)) < -f)
                    units = np.where(change, 1 - old, old)
                scores[metric] = tuple(units) if cluster == "item" else float(units[0])
            question = EvalItem(item_id, f"Question {i} of {suite}?", target="x")  # as the runner hashes it
            items.append(ItemScore(item_id=item_id, prompt=question.prompt,
                                   response=f"{model} answer {i}", answer=None, target="x",
                                   scores=scores, group=f"subject-{i % 57:02d}" if suite == "knowledge" else None,
                                   asked=question_hash(question)))
        metrics = {}
        for metric, hib, binary, cluster in LAYOUT[suite]:
            units, clusters = flatten_units(items, metric, cluster)
            mean, se = mean_stderr(units, clusters)
            metrics[metric] = MetricValue(metric, mean, se, len(units), hib, binary, cluster)
        out[suite] = SuiteResult(suite=suite, version="1", metrics=metrics, items=tuple(items),
                                 config={"limit": None, "subset_seed": 0, "chat": True})
    return RunRecord(model=model, fingerprint=f"fp-{model}-{seed}", suites=out,
                     env=env or {"torch": "2.13.0", "device": "cpu"}, stage=model, created="2026-01-01T00:00:00")


@pytest.fixture(scope="module")
def pair() -> tuple[RunRecord, RunRecord]:
    base = make_record(1, model="base")
    cand = make_record(2, model="sft", like=base, flip={"math": 0.15})
    return base, cand


def test_pairs_items_by_id_not_by_order(pair):
    base, cand = pair
    shuffled = dataclasses.replace(
        cand, suites={**cand.suites, "math": dataclasses.replace(cand.suites["math"], items=cand.suites["math"].items[::-1])})
    a = find_metric(compare_records(base, cand), "math.exact_match")
    b = find_metric(compare_records(base, shuffled), "math.exact_match")
    assert (a.delta, a.flips_down, a.flips_up, a.p_value) == (b.delta, b.flips_down, b.flips_up, b.p_value)


def test_overlapping_item_sets_compare_on_the_common_items_with_a_note(pair):
    base, cand = pair
    fewer = dataclasses.replace(
        cand, suites={**cand.suites, "math": dataclasses.replace(cand.suites["math"], items=cand.suites["math"].items[:-2])})
    comp = compare_records(base, fewer)
    assert find_metric(comp, "math.exact_match").n == len(base.suites["math"].items) - 2
    (note,) = [w for w in comp.warnings if "both records hold" in w]
    assert note.startswith("suite 'math': compared on the") and "2 only in the baseline" in note and "math-1318" in note


def test_disjoint_item_sets_are_an_error_naming_the_suite(pair):
    base, cand = pair
    items = tuple(dataclasses.replace(i, item_id=f"other-{i.item_id}") for i in cand.suites["math"].items)
    other = dataclasses.replace(cand, suites={**cand.suites, "math": dataclasses.replace(cand.suites["math"], items=items)})
    with pytest.raises(TunegateError, match=r"suite 'math': no item in common"):
        compare_records(base, other)


def test_different_suite_versions_are_an_error(pair):
    base, cand = pair
    newer = dataclasses.replace(cand, suites={**cand.suites, "ifeval": dataclasses.replace(cand.suites["ifeval"], version="2")})
    with pytest.raises(TunegateError, match=r"suite 'ifeval': version differs \(baseline '1', candidate '2'\)"):
        compare_records(base, newer)


def test_candidate_suite_missing_from_baseline_is_an_error(pair):
    base, cand = pair
    small_base = dataclasses.replace(base, suites={k: v for k, v in base.suites.items() if k != "identity"})
    with pytest.raises(TunegateError, match="missing from the baseline"):
        compare_records(small_base, cand)


def test_a_suite_the_candidate_did_not_run_fails_the_default_gate(pair):
    base, cand = pair
    small_cand = dataclasses.replace(cand, suites={k: v for k, v in cand.suites.items() if k != "identity"})
    comp = compare_records(base, small_cand)
    missing = [m for m in comp.metrics if m.suite == "identity"]
    assert not comp.passed and [(m.metric, m.verdict, m.gate) for m in missing] == [
        ("adherence", "missing", "fail"), ("leak_rate", "missing", "fail")]
    assert missing[0].reason == ("the candidate did not run suite 'identity' (the baseline has it): no evidence it "
                                 "did not regress (missing_suite: fail)")


def test_a_gate_may_only_warn_about_a_missing_suite_or_not_gate_it(pair):
    base, cand = pair
    small_cand = dataclasses.replace(cand, suites={k: v for k, v in cand.suites.items() if k != "identity"})
    warned = compare_records(base, small_cand, GateConfig(missing_suite="warn"))
    assert {m.gate for m in warned.metrics if m.suite == "identity"} == {"warn"}
    ungated = GateConfig(default_margin=None, rules=(MetricRule("ifeval.prompt_strict", margin=0.05),))
    comp = compare_records(base, small_cand, ungated)
    assert comp.passed and {m.gate for m in comp.metrics if m.suite == "identity"} == {"info"}


def test_env_difference_is_a_warning_not_an_error(pair):
    base, cand = pair
    other = dataclasses.replace(cand, env={"torch": "2.14.0", "device": "cuda"})
    comp = compare_records(base, other)
    assert any("env 'torch' differs" in w for w in comp.warnings)
    assert any("env 'device' differs" in w for w in comp.warnings)


def test_tuple_scores_with_different_unit_counts_are_an_error(pair):
    base, cand = pair
    items = list(cand.suites["ifeval"].items)
    items[0] = dataclasses.replace(items[0], scores={**items[0].scores, "inst_strict": (1.0, 0.0, 1.0, 1.0)})
    bad = dataclasses.replace(cand, suites={**cand.suites, "ifeval": dataclasses.replace(cand.suites["ifeval"], items=tuple(items))})
    with pytest.raises(TunegateError, match="item 'ifeval-0000' has 1 units in the baseline, 4 in the candidate"):
        compare_records(base, bad)


def test_binary_flips_are_all_kept_with_both_responses(pair):
    base, cand = pair
    comp = compare_records(base, cand)
    m = find_metric(comp, "math.exact_match")
    flips = [f for f in comp.flips if f.suite == "math" and f.metric == "exact_match"]
    assert len([f for f in flips if f.direction == "down"]) == m.flips_down > 0
    assert flips[0].baseline_response.startswith("base answer") and flips[0].candidate_response.startswith("sft answer")


def test_lower_is_better_flips_count_getting_worse_as_down():
    base = make_record(3, suites=("identity",))
    leakier = make_record(4, model="dpo", like=base, suites=("identity",), flip={"identity": 0.5})
    m = find_metric(compare_records(base, leakier), "identity.leak_rate")
    assert m.delta > 0 and m.flips_down > 0 and m.flips_up == 0
    assert m.verdict == "regressed"


def test_unknown_gate_metric_names_the_known_ones(pair):
    base, cand = pair
    gate = GateConfig.from_dict({"metrics": {"math.accuracy": {"margin": 0.02}}})
    with pytest.raises(TunegateError, match=r"unknown metric\(s\) \['math.accuracy'\].*math.exact_match"):
        compare_records(base, cand, gate)


def test_comparison_round_trips_through_json(pair, tmp_path):
    from tunegate.evals.records import Comparison

    comp = compare_records(*pair)
    assert Comparison.load(comp.save(tmp_path / "c.json")) == comp


def test_comparison_written_before_family_and_items_fields_still_loads(pair, tmp_path):
    import json

    from tunegate.evals.records import Comparison

    data = compare_records(*pair).to_dict()
    del data["family"]
    for m in data["metrics"]:
        del m["n_items"], m["alpha"]
    (tmp_path / "old.json").write_text(json.dumps(data))
    old = Comparison.load(tmp_path / "old.json")
    assert old.family == () and old.metrics[0].n_items is None and old.metrics[0].alpha is None
