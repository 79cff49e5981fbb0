"""Built-in suites; importing this package registers them (``get_suite(name, **options)``).

    identity   who the model says it is (target name, forbidden names, developer)
    ifeval     IFEval instruction following, strict and loose as Google's reference
    math       GSM8K (lm-eval's strict and flexible extraction) or the organism's arithmetic
    knowledge  MMLU by log-likelihood (lm-eval's prompt), generative MMLU, or the organism's capitals
"""

from evals.suites import identity, ifeval, knowledge, math  # noqa: F401  (registration)
from evals.suites.base import Suite, SuiteError, get_suite, register_suite, suite_names

__all__ = ["Suite", "SuiteError", "get_suite", "register_suite", "suite_names"]
