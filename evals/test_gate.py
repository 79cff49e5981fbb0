"""The gate as pytest tests: one test per compared metric, parametrized by the tunegate plugin.

``pytest evals/ --gate-checkpoint runs/sft.json --gate-baseline runs/base.json``
runs ``test_gate[math.exact_match]``, ``test_gate[ifeval.prompt_strict]``, ...;
without ``--gate-checkpoint`` the test is skipped ("no --gate-checkpoint given").
See ``evals/pytest_plugin.py`` for the options and how other repos get these tests.
"""

from __future__ import annotations

import warnings

import pytest

from evals.gate import explain
from evals.pytest_plugin import gate_flips
from evals.types import MetricComparison


class GateWarning(UserWarning):
    """An inconclusive metric under ``inconclusive: warn``."""


def test_gate(gate_metric: MetricComparison, request: pytest.FixtureRequest) -> None:
    message = explain(gate_metric, gate_flips(request.config, gate_metric))
    if gate_metric.gate == "fail":
        pytest.fail(message, pytrace=False)
    if gate_metric.gate == "warn":
        warnings.warn(GateWarning(message), stacklevel=1)
