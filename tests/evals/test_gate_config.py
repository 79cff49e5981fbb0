"""Gate rules: YAML parsing and validation, verdicts, and the pass/fail/warn judgement."""

from __future__ import annotations

import pytest
from statsmodels.stats.multitest import multipletests

from tunegate.evals.compare import compare_records, find_metric
from tunegate.core.errors import TunegateError
from tunegate.evals.gate import FALLBACK_MARGIN, GateConfig, MetricRule, format_gate_summary, judge, verdict
from tunegate.evals.records import MetricComparison
from tunegate.evals.stats import weighted_holm
from tests.evals.test_compare_records import make_record

GATE_YAML = """
confidence: 0.9
inconclusive: fail
underpowered: warn
correction: bh
family: [math.exact_match]
metrics:
  identity.adherence: {target: ">= 0.9"}
  identity.leak_rate: {target: "<= 0.05"}
  math.exact_match: {margin: 0.03}
"""


def test_yaml_gate_is_parsed(tmp_path):
    path = tmp_path / "gate.yaml"
    path.write_text(GATE_YAML)
    gate = GateConfig.from_yaml(path)
    assert (gate.confidence, gate.inconclusive, gate.underpowered, gate.correction) == (0.9, "fail", "warn", "bh")
    assert gate.family == ("math.exact_match",)
    assert gate.rules[0] == MetricRule("identity.adherence", op=">=", target=0.9)
    assert gate.rules[2] == MetricRule("math.exact_match", margin=0.03)


@pytest.mark.parametrize("data,message", [
    ({"confidence": 1.5}, "confidence must be in"),
    ({"inconclusive": "ignore"}, "inconclusive must be 'warn' or 'fail'"),
    ({"underpowered": "pass"}, "underpowered must be one of"),
    ({"family": "everything"}, "family must be 'gated', 'all' or a list"),
    ({"correction": "bonferroni"}, "correction must be 'holm' or 'bh'"),
    ({"metrics": {"math.exact_match": {"target": "about 0.9"}}}, "metrics.math.exact_match.target: must look like '>= 0.9'"),
    ({"metrics": {"math.exact_match": {"margin": "small"}}}, "metrics.math.exact_match.margin: must be a number"),
    ({"metrics": {"math.exact_match": {}}}, "give a target"),
    ({"metrics": {"exact_match": {"margin": 0.02}}}, "expected 'suite.metric'"),
    ({"metrics": {"math.exact_match": {"margn": 0.02}}}, r"unknown key\(s\) \['margn'\]"),
    ({"thresholds": {}}, r"unknown key\(s\) \['thresholds'\]"),
    ({"metrics": {"math.exact_match": {"margin": 0.02, "weight": 0}}}, "metrics.math.exact_match.weight: must be a positive number"),
    ({"correction": "bh", "metrics": {"math.exact_match": {"margin": 0.02, "weight": 2}}}, "weights apply to correction: holm"),
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
    assert rules["ifeval.prompt_strict"].margin == FALLBACK_MARGIN and rules["math.exact_match"].margin == 0.05
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


def test_verdict_is_underpowered_when_nothing_is_shown_and_the_mde_exceeds_the_margin():
    assert verdict(-0.01, -0.05, 0.03, 0.6, 0.05, 0.02, underpowered=True) == "underpowered"
    assert verdict(-0.05, -0.08, -0.02, 0.001, 0.05, 0.02, underpowered=True) == "regressed"


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
    assert judge(_mc(), rule, GateConfig(inconclusive="warn"))[0] == "warn"
    state, reason = judge(_mc(), rule, GateConfig(inconclusive="fail"))
    assert state == "fail" and reason == "inconclusive: delta +0.000 [-0.050, +0.050] reaches below -0.02; MDE 0.070 at n=100"


def test_underpowered_fails_on_a_point_drop_beyond_the_margin_by_default():
    rule = MetricRule("math.exact_match", margin=0.02)
    state, reason = judge(_mc(verdict="underpowered", delta=-0.03, candidate=0.57), rule)
    assert state == "fail" and "point estimate dropped beyond margin 0.02" in reason and "~1225 items needed" in reason
    assert judge(_mc(verdict="underpowered", delta=-0.01, candidate=0.59), rule)[0] == "warn"


@pytest.mark.parametrize("policy,delta,state", [("warn", -0.03, "warn"), ("fail", -0.01, "fail"), ("fail", 0.01, "fail")])
def test_underpowered_does_what_the_gate_says(policy, delta, state):
    rule = MetricRule("math.exact_match", margin=0.02)
    assert judge(_mc(verdict="underpowered", delta=delta), rule, GateConfig(underpowered=policy))[0] == state


def test_trained_suite_passes_when_inconclusive_but_fails_when_regressed():
    rule = MetricRule("identity.adherence", margin=0.02)
    assert judge(_mc(trained=True), rule)[0] == "pass"
    assert judge(_mc(trained=True, verdict="regressed"), rule)[0] == "fail"


def test_target_must_be_met_even_when_improved():
    rule = MetricRule("identity.adherence", op=">=", target=0.9)
    state, reason = judge(_mc(candidate=0.85, verdict="improved", trained=True), rule)
    assert state == "fail" and reason == "misses target >= 0.9: candidate 0.850"
    assert judge(_mc(candidate=0.93, verdict="improved", trained=True), rule)[0] == "pass"


def test_a_target_rule_is_judged_on_its_target_alone():
    rule = MetricRule("identity.adherence", op=">=", target=0.9)
    assert judge(_mc(candidate=0.93, delta=-0.04, verdict="regressed", trained=True), rule)[0] == "pass"


def test_family_is_the_metrics_with_a_margin_unless_configured():
    known = ["math.exact_match", "math.flexible_match", "identity.adherence"]
    rules = {"math.exact_match": MetricRule("math.exact_match", margin=0.05),
             "identity.adherence": MetricRule("identity.adherence", op=">=", target=0.9)}
    assert GateConfig().family_of(known, rules) == ("math.exact_match",)
    assert GateConfig(family="all").family_of(known, rules) == tuple(known)
    with pytest.raises(TunegateError, match=r"gate family names unknown metric\(s\) \['math.accuracy'\]"):
        GateConfig(family=("math.accuracy",)).family_of(known, rules)


def test_only_the_family_is_adjusted_and_its_mde_uses_the_family_level():
    base = make_record(23, suites=("math", "ifeval", "knowledge"))
    cand = make_record(24, model="sft", like=base, suites=("math", "ifeval", "knowledge"), flip={"math": 0.02})
    gate = GateConfig.from_dict({"default_margin": None, "metrics": {
        "math.exact_match": {"margin": 0.05}, "ifeval.prompt_strict": {"margin": 0.05},
        "knowledge.accuracy": {"margin": 0.05}}})
    comp = compare_records(base, cand, gate)
    assert comp.family == ("math.exact_match", "ifeval.prompt_strict", "knowledge.accuracy")
    inst = find_metric(comp, "ifeval.inst_strict")
    assert inst.p_adjusted is None and inst.gate == "info" and inst.alpha == pytest.approx(0.05)
    fam = [find_metric(comp, k) for k in comp.family]
    assert [m.p_adjusted for m in fam] == pytest.approx(list(multipletests([m.p_value for m in fam], method="holm")[1]))
    assert all(m.alpha == pytest.approx(0.05 / 3) for m in fam)


def test_weights_set_each_members_level_and_its_weighted_holm_p():
    base = make_record(23, suites=("math", "ifeval", "knowledge"))
    cand = make_record(24, model="sft", like=base, suites=("math", "ifeval", "knowledge"), flip={"ifeval": -0.1})
    rules = {"math.exact_match": {"margin": 0.05}, "ifeval.prompt_strict": {"margin": 0.05},
             "knowledge.accuracy": {"margin": 0.05}}
    equal = compare_records(base, cand, GateConfig.from_dict({"default_margin": None, "metrics": rules}))
    rules["ifeval.prompt_strict"]["weight"] = 2
    comp = compare_records(base, cand, GateConfig.from_dict({"default_margin": None, "metrics": rules}))
    fam = [find_metric(comp, k) for k in comp.family]
    assert [m.alpha for m in fam] == pytest.approx([0.0125, 0.025, 0.0125])
    assert [m.p_adjusted for m in fam] == pytest.approx(weighted_holm([m.p_value for m in fam], [1, 2, 1]))
    assert [m.mde < find_metric(equal, f"{m.suite}.{m.metric}").mde for m in fam] == [False, True, False]
    assert "weighted holm, first-step alpha math.exact_match 0.0125, ifeval.prompt_strict 0.025" in format_gate_summary(comp)


def test_gate_end_to_end_trains_identity_and_protects_math():
    base = make_record(21, suites=("math", "identity"), p={"identity": 0.5})
    cand = make_record(22, model="dpo", like=base, suites=("math", "identity"), flip={"identity": -0.95, "math": 0.1})
    gate = GateConfig.from_dict({"metrics": {"identity.adherence": {"target": ">= 0.9"}}})
    comp = compare_records(base, cand, gate, trains=("identity",))
    assert find_metric(comp, "identity.adherence").gate == "pass"
    assert find_metric(comp, "math.exact_match").gate == "fail"
    assert not comp.passed


@pytest.mark.parametrize("text, message", [
    ("confidence: 1.5\n", "confidence must be in [0.5, 1), got 1.5"),
    ("power: high\n", "power must be a number, got 'high'"),
    ("metrics:\n  math.exact_match: {margin: 1.5}\n", "metrics.math.exact_match.margin: must be in [0, 1), got 1.5"),
    ("missing_suite: ignore\n", "missing_suite must be one of ['fail', 'warn'], got 'ignore'"),
    ("confidence: 0.9\nmetrics:\n  math.exact_match: {margin: 0.02}\nconfidence: 0.99\n",
     "duplicate key 'confidence' at line 4 (first at line 1)"),
    ("metrics:\n  math.exact_match:\n    margin: 0.02\n    margin: 0.2\n",
     "duplicate key 'margin' at line 4 (first at line 3)"),
])
def test_a_bad_gate_file_is_one_line_naming_the_file_and_the_field(tmp_path, capsys, text, message):
    from tunegate.cli import main

    record = make_record(3, suites=("math",)).save(tmp_path / "r.json")
    gate = tmp_path / "gate.yaml"
    gate.write_text(text)
    assert main(["compare", str(record), str(record), "--gate", str(gate)]) == 2
    assert capsys.readouterr().err == f"tunegate: error: {gate}: {message}\n"
