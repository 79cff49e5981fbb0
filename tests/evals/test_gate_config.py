"""Gate rules: YAML parsing and validation, verdicts, and the pass/fail/warn judgement."""

from __future__ import annotations

import pytest

from tunegate.evals.compare import compare_records, find_metric, verdict
from tunegate.evals.errors import TunegateError
from tunegate.evals.gate import GateConfig, MetricRule, judge
from tunegate.evals.records import MetricComparison
from tests.evals.test_compare_records import make_record

GATE_YAML = """
confidence: 0.9
inconclusive: fail
correction: bh
metrics:
  identity.adherence: {target: ">= 0.9"}
  identity.leak_rate: {target: "<= 0.05"}
  math.exact_match: {margin: 0.03}
"""


def test_yaml_gate_is_parsed(tmp_path):
    path = tmp_path / "gate.yaml"
    path.write_text(GATE_YAML)
    gate = GateConfig.from_yaml(path)
    assert (gate.confidence, gate.inconclusive, gate.correction) == (0.9, "fail", "bh")
    assert gate.rules[0] == MetricRule("identity.adherence", op=">=", target=0.9)
    assert gate.rules[2] == MetricRule("math.exact_match", margin=0.03)


@pytest.mark.parametrize("data,message", [
    ({"confidence": 1.5}, "confidence must be in"),
    ({"inconclusive": "ignore"}, "inconclusive must be 'warn' or 'fail'"),
    ({"correction": "bonferroni"}, "correction must be 'holm' or 'bh'"),
    ({"metrics": {"math.exact_match": {"target": "about 0.9"}}}, "target must look like '>= 0.9'"),
    ({"metrics": {"math.exact_match": {"margin": "small"}}}, "margin must be a number"),
    ({"metrics": {"math.exact_match": {}}}, "give a target"),
    ({"metrics": {"exact_match": {"margin": 0.02}}}, "expected 'suite.metric'"),
    ({"metrics": {"math.exact_match": {"margn": 0.02}}}, r"unknown key\(s\) \['margn'\]"),
    ({"thresholds": {}}, r"unknown key\(s\) \['thresholds'\]"),
])
def test_invalid_gate_config_is_a_clear_error(data, message):
    with pytest.raises(TunegateError, match=message):
        GateConfig.from_dict(data)


def test_invalid_yaml_names_the_file(tmp_path):
    path = tmp_path / "gate.yaml"
    path.write_text("metrics: [unclosed")
    with pytest.raises(TunegateError, match=f"{path}: malformed YAML"):
        GateConfig.from_yaml(path)


def test_unlisted_metrics_get_the_default_margin_unless_it_is_null():
    gate = GateConfig.from_dict({"metrics": {"math.exact_match": {"margin": 0.05}}})
    rules = gate.rules_for(["math.exact_match", "ifeval.prompt_strict"])
    assert rules["ifeval.prompt_strict"].margin == 0.02 and rules["math.exact_match"].margin == 0.05
    only_listed = GateConfig.from_dict({"default_margin": None, "metrics": {"math.exact_match": {"margin": 0.05}}})
    assert list(only_listed.rules_for(["math.exact_match", "ifeval.prompt_strict"])) == ["math.exact_match"]


@pytest.mark.parametrize("delta,lo,hi,p,expected", [
    (0.05, 0.02, 0.08, 0.001, "improved"),
    (-0.005, -0.015, 0.005, 0.4, "non-inferior"),
    (-0.05, -0.08, -0.02, 0.001, "regressed"),
    (-0.01, -0.05, 0.03, 0.6, "inconclusive"),
    (-0.012, -0.018, -0.006, 0.001, "non-inferior"),  # a significant drop within the margin
])
def test_verdict(delta, lo, hi, p, expected):
    assert verdict(delta, lo, hi, p, 0.05, 0.02) == expected


def test_verdict_flips_sign_for_lower_is_better_metrics():
    # leak rate rose by 5 points: worse
    assert verdict(0.05, 0.02, 0.08, 0.001, 0.05, 0.02, higher_is_better=False) == "regressed"
    assert verdict(-0.05, -0.08, -0.02, 0.001, 0.05, 0.02, higher_is_better=False) == "improved"


def _mc(**kw) -> MetricComparison:
    base = dict(suite="math", metric="exact_match", baseline=0.6, candidate=0.6, delta=0.0, ci_low=-0.05,
                ci_high=0.05, p_value=1.0, p_adjusted=1.0, n=100, flips_up=5, flips_down=5, mde=0.07,
                n_needed=1225, verdict="inconclusive", test="mcnemar-exact", margin=0.02)
    return MetricComparison(**{**base, **kw})


def test_untrained_inconclusive_warns_or_fails_as_configured():
    rule = MetricRule("math.exact_match", margin=0.02)
    assert judge(_mc(), rule, "warn")[0] == "warn"
    state, reason = judge(_mc(), rule, "fail")
    assert state == "fail" and "MDE 0.070 at n=100; ~1225 items needed" in reason


def test_trained_suite_passes_when_inconclusive_but_fails_when_regressed():
    rule = MetricRule("identity.adherence", margin=0.02)
    assert judge(_mc(trained=True), rule)[0] == "pass"
    assert judge(_mc(trained=True, verdict="regressed"), rule)[0] == "fail"


def test_target_must_be_met_even_when_improved():
    rule = MetricRule("identity.adherence", op=">=", target=0.9)
    state, reason = judge(_mc(candidate=0.85, verdict="improved", trained=True), rule)
    assert state == "fail" and reason == "misses target >= 0.9: candidate 0.850"
    assert judge(_mc(candidate=0.93, verdict="improved", trained=True), rule)[0] == "pass"


def test_gate_end_to_end_trains_identity_and_protects_math():
    base = make_record(21, suites=("math", "identity"), p={"identity": 0.5})
    cand = make_record(22, model="dpo", like=base, suites=("math", "identity"), flip={"identity": -0.95, "math": 0.1})
    gate = GateConfig.from_dict({"metrics": {"identity.adherence": {"target": ">= 0.9"}}})
    comp = compare_records(base, cand, gate, trains=("identity",))
    assert find_metric(comp, "identity.adherence").gate == "pass"
    assert find_metric(comp, "math.exact_match").gate == "fail"
    assert not comp.passed
