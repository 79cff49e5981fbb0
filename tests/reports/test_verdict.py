"""The verdict header's ship line: the stage's own gate settings, recovered from its saved comparison."""

from __future__ import annotations

import pytest

from tunegate.evals.compare import compare_records
from tunegate.evals.gate import GateConfig
from tunegate.reports.verdict import gate_of
from tests.evals.test_compare_records import make_record


@pytest.mark.parametrize("name", ["dpo", "sft"])
def test_a_comparison_judged_again_under_its_recovered_gate_gets_the_same_verdicts(name):
    """The shipped dpo gate weighs IFEval 4 of 6 (weighted Holm); sft's is unweighted: both come back whole."""
    base = make_record(61)
    cand = make_record(62, model="cand", like=base, flip={"knowledge": 0.06, "ifeval": 0.03, "math": 0.02})
    original = compare_records(base, cand, GateConfig.from_yaml(name), trains=("identity",))
    again = compare_records(base, cand, gate_of(original), trains=("identity",))
    gated = [m for m in original.metrics if m.gate != "info"]
    assert {m.verdict for m in gated} >= {"regressed"}
    assert again.family == original.family
    pick = {(m.suite, m.metric): m for m in again.metrics}
    for m in gated:
        twin = pick[m.suite, m.metric]
        assert twin.verdict == m.verdict
        for field in ("p_adjusted", "alpha", "margin"):
            want = getattr(m, field)
            assert getattr(twin, field) == (want if want is None else pytest.approx(want, rel=1e-9)), field
