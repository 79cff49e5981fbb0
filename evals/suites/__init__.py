"""The suite registry: each suite's name, its variants and their typed options.

    identity   who the model says it is (target name, forbidden names, developer)
    ifeval     IFEval instruction following, strict and loose as Google's reference (or the organism's items)
    math       GSM8K (lm-eval's strict and flexible extraction) or the organism's arithmetic
    knowledge  MMLU by log-likelihood (lm-eval's prompt), generative MMLU, or the organism's capitals

A new suite is one module here (a Suite subclass with its ``Options`` dataclass, or ``Variants`` of
several) plus one line in ``SUITES``; code outside tunegate adds its own with ``register_suite("name")``.
Options are read through ``tunegate.core.typed_config``: an unknown one is an error that lists the
suite's options with a did-you-mean, one of another variant says which::

    get_suite("math", variant="organism", limit=50)   # an ArithmeticSuite over organism:arithmetic
    get_suite("maths")                                # SuiteError: unknown suite 'maths' (known: ...)
    get_suite("ifeval", bogus=1)                      # suite 'ifeval': unknown option 'bogus' (known: limit, ...)
    get_suite("math", variant="organism", fewshot=5)  # suite 'math': option 'fewshot' is for variant gsm8k, ...
"""

from __future__ import annotations

import dataclasses
import json
import textwrap
from typing import Any, Mapping

from tunegate.core.errors import SuiteError
from tunegate.core.registry import Registry
from tunegate.core.typed_config import check_keys, from_mapping
from tunegate.evals.suites.base import Suite, SuiteOptions, Variants

SUITES: Registry[type[Suite] | Variants] = Registry("suite", {
    "identity": "tunegate.evals.suites.identity:IdentitySuite",
    "ifeval": "tunegate.evals.suites.ifeval:VARIANTS",
    "math": "tunegate.evals.suites.math:VARIANTS",
    "knowledge": "tunegate.evals.suites.knowledge:VARIANTS",
})
register_suite = SUITES.register


def suite_names() -> list[str]:
    return SUITES.names()


def variants(name: str) -> Variants:
    """The suite classes registered as ``name`` (one, or several told apart by ``variant``)."""
    if name not in SUITES:
        raise SuiteError(f"unknown suite '{name}' (known: {', '.join(SUITES.names())})")
    entry = SUITES.get(name)
    return entry if isinstance(entry, Variants) else Variants({entry.variant or "default": entry})


def parse_suite_options(name: str, data: Mapping[str, Any], where: str) -> tuple[type[Suite], SuiteOptions]:
    """The suite class and its typed options that ``data`` (``{"variant": ..., option: value}``) asks for.

    ``where`` starts every error (a flag, or a config file and field)."""
    choices = variants(name)
    cls = choices.resolve(data.get("variant"), name, where)
    given = {k: v for k, v in data.items() if k != "variant"}
    own = [f.name for f in dataclasses.fields(cls.Options)]
    for key in given:
        others = [v for v, c in choices.classes.items() if key in {f.name for f in dataclasses.fields(c.Options)}]
        if key not in own and others:
            raise SuiteError(f"{where}: option '{key}' is for variant {' or '.join(others)} of suite '{name}', "
                             f"not '{cls.variant}'")
    check_keys(given, own, where, what="option", listed=True)
    return cls, from_mapping(cls.Options, given, where)


def get_suite(name: str, **options: Any) -> Suite:
    """Build the suite registered as ``name`` with its options; unknown names and options are a SuiteError."""
    cls, typed = parse_suite_options(name, options, f"suite '{name}'")
    return cls(typed)


def describe_suites(width: int = 100) -> str:
    """Every registered suite with its options, defaults and help, from the options dataclasses (``eval --help``)."""
    common = {f.name for f in dataclasses.fields(SuiteOptions)}
    lines = ["every suite:", *_describe_fields(SuiteOptions, (), width)]
    for name in SUITES.names():
        choices = variants(name)
        for variant, cls in choices.classes.items():
            label = name if len(choices.classes) == 1 else \
                f"{name} variant={variant}" + (" (the default)" if variant == choices.default else "")
            about = (cls.Options.__doc__ or cls.__doc__ or "").strip().replace("``", "")
            lines.append(f"{label}: {about}")
            lines += _describe_fields(cls.Options, common, width)
    return "\n".join(lines)


def _describe_fields(options: type, skip: set[str] | tuple[str, ...], width: int) -> list[str]:
    out = []
    for f in dataclasses.fields(options):
        if f.name in skip:
            continue
        head = f"    {f.name} (default: {json.dumps(f.default)})"
        out += textwrap.wrap(f"{head} {f.metadata.get('help', '')}", width, subsequent_indent=" " * 8)
    return out


__all__ = ["SUITES", "Suite", "SuiteError", "SuiteOptions", "Variants", "describe_suites", "get_suite",
           "parse_suite_options", "register_suite", "suite_names", "variants"]
