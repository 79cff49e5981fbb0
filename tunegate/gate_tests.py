"""The gate as pytest tests: one test per compared metric, parametrized by the tunegate plugin.

``pytest evals/ --gate-checkpoint runs/sft.json --gate-baseline runs/base.json``
runs ``test_gate[math.exact_match]``, ``test_gate[ifeval.prompt_strict]``, ...;
without ``--gate-checkpoint`` the test is skipped ("no --gate-checkpoint given").
See ``tunegate/pytest_plugin.py`` for the options; the plugin collects this module itself.
"""

from __future__ import annotations

import warnings

import pytest

from tunegate.evals.gate import explain, flips_of
from tunegate.evals.records import Comparison, MetricComparison


class GateWarning(UserWarning):
    """A metric the gate set to warn (underpowered within its margin, or inconclusive under ``inconclusive: warn``)."""


def test_gate(gate_metric: MetricComparison, gate_comparison: Comparison) -> None:
    message = explain(gate_metric, flips_of(gate_comparison, gate_metric))
    if gate_metric.gate == "fail":
        pytest.fail(message, pytrace=False)
    if gate_metric.gate == "warn":
        warnings.warn(GateWarning(message), stacklevel=1)
