"""The suite registry: ``get_suite(name, **options)`` builds a registered suite with its options.

    identity   who the model says it is (target name, forbidden names, developer)
    ifeval     IFEval instruction following, strict and loose as Google's reference
    math       GSM8K (lm-eval's strict and flexible extraction) or the organism's arithmetic
    knowledge  MMLU by log-likelihood (lm-eval's prompt), generative MMLU, or the organism's capitals

A new suite is one module here plus one line in ``SUITES``; code outside tunegate can add its own
with ``register_suite("name")`` on a Suite class or a factory function::

    get_suite("math", variant="organism", limit=50)   # an ArithmeticSuite over organism:arithmetic
    get_suite("maths")                                # SuiteError: unknown suite 'maths' (known: ...)
"""

from __future__ import annotations

import json
from typing import Any, Callable

from tunegate.core.errors import SuiteError, TunegateError
from tunegate.core.registry import Registry
from tunegate.evals.suites.base import Suite

SUITES: Registry[Callable[..., Suite]] = Registry("suite", {
    "identity": "tunegate.evals.suites.identity:IdentitySuite",
    "ifeval": "tunegate.evals.suites.ifeval:IFEvalSuite",
    "math": "tunegate.evals.suites.math:math_suite",
    "knowledge": "tunegate.evals.suites.knowledge:knowledge_suite",
})
register_suite = SUITES.register


def suite_names() -> list[str]:
    return SUITES.names()


def get_suite(name: str, **options: Any) -> Suite:
    """Build the suite registered as ``name`` with its options; unknown names and options are a SuiteError."""
    if name not in SUITES:
        raise SuiteError(f"unknown suite '{name}' (known: {', '.join(SUITES.names())})")
    try:
        return SUITES.get(name)(**options)
    except TypeError as exc:
        raise SuiteError(f"suite '{name}': bad option ({exc})") from None


def parse_suite_options(pairs: list[str], suites: list[str], limit: int | None,
                        seed: int = 0) -> dict[str, dict[str, Any]]:
    """``SUITE.KEY=VALUE`` pairs (VALUE parsed as JSON, else kept as text) as per-suite options; ``limit``
    adds a seeded subset of that many items to every suite (the same ``seed`` gives the same items)."""
    options: dict[str, dict[str, Any]] = {s: {} for s in suites}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        suite, dot, name = key.partition(".")
        if not sep or not dot or not name:
            raise TunegateError(f"--suite-option '{pair}': expected SUITE.KEY=VALUE")
        if suite not in options:
            raise TunegateError(f"--suite-option '{pair}': suite '{suite}' is not in --suites")
        try:
            value: Any = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        options[suite][name] = value
    for opts in options.values():
        if limit is not None:
            opts.setdefault("limit", limit)
            opts.setdefault("subset_seed", seed)
    return options


__all__ = ["SUITES", "Suite", "SuiteError", "get_suite", "parse_suite_options", "register_suite", "suite_names"]
