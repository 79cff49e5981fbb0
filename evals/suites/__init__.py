"""The suite registry: each suite's name, its variants and their typed options.

    identity   who the model says it is (target name, forbidden names, developer)
    ifeval     IFEval instruction following, strict and loose as Google's reference (or the organism's items)
    math       GSM8K (lm-eval's strict and flexible extraction) or the organism's arithmetic
    knowledge  MMLU by log-likelihood (lm-eval's prompt), generative MMLU, or the organism's capitals
    judge      chat quality: the candidate's answers against the baseline's, judged pairwise by a model

Families of suites are named by a pattern, not one by one (``FAMILIES``)::

    lm-eval:TASK  any lm-eval task or group by its lm-eval name (lm-eval:gsm8k, lm-eval:mmlu)
    PATH.yaml     a suite defined in a file: data, prompt template, target, kind and metric, no Python

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
    "judge": "tunegate.evals.suites.judge:JudgeSuite",
})
register_suite = SUITES.register

#: Families of suites named by a pattern: each a Suite class whose ``for_name(name)`` is the suite class of one
#: name (cached: one class per name). ``family_of`` says which family a name belongs to.
FAMILIES: Registry[type[Suite]] = Registry("suite family", {
    "lm-eval": "tunegate.evals.suites.lm_eval:LmEvalSuite",
    "file": "tunegate.evals.suites.from_file:FileSuite",
})
#: How each family's names look, for errors and ``--help``.
FAMILY_PATTERNS = {"lm-eval": "lm-eval:TASK", "file": "PATH.yaml"}
SUITE_FILE_SUFFIXES = (".yaml", ".yml")


def suite_names() -> list[str]:
    return SUITES.names()


def family_of(name: str) -> str | None:
    """The family of a suite name: ``lm-eval`` for ``lm-eval:TASK``, ``file`` for a ``.yaml`` path, else None."""
    if name.endswith(SUITE_FILE_SUFFIXES):
        return "file"
    prefix, sep, rest = name.partition(":")
    return prefix if sep and rest and prefix in FAMILIES and prefix != "file" else None


def is_suite(name: str) -> bool:
    """``name`` is a registered suite or a name of a family (whether its task or file exists is checked later)."""
    return name in SUITES or family_of(name) is not None


def suite_key(name: str) -> str:
    """The name a suite is known by in records, options and gates: a suite file's own ``name``, else ``name``."""
    return variants(name).default_class.name if family_of(name) == "file" else name


def variants(name: str) -> Variants:
    """The suite classes registered as ``name`` (one, or several told apart by ``variant``), or of its family."""
    family = family_of(name)
    if family is not None:
        entry: Any = FAMILIES.get(family).for_name(name)
    elif name in SUITES:
        entry = SUITES.get(name)
    else:
        raise SuiteError(f"unknown suite '{name}' (known: {', '.join(SUITES.names())}, "
                         f"{', '.join(FAMILY_PATTERNS.values())})")
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
    """Every registered suite and family with its options, defaults and help, from the options dataclasses
    (``eval --help``)."""
    common = {f.name for f in dataclasses.fields(SuiteOptions)}
    lines = ["every suite:", *_describe_fields(SuiteOptions, (), width)]
    for name in SUITES.names():
        choices = variants(name)
        for variant, cls in choices.classes.items():
            label = name if len(choices.classes) == 1 else \
                f"{name} variant={variant}" + (" (the default)" if variant == choices.default else "")
            lines += _describe_class(label, cls, common, width)
    for family, pattern in FAMILY_PATTERNS.items():
        lines += _describe_class(pattern, FAMILIES.get(family), common, width)
    return "\n".join(lines)


def _describe_class(label: str, cls: type[Suite], common: set[str], width: int) -> list[str]:
    about = (cls.Options.__doc__ or cls.__doc__ or "").strip().replace("``", "")
    return [f"{label}: {about}", *_describe_fields(cls.Options, common, width)]


def _describe_fields(options: type, skip: set[str] | tuple[str, ...], width: int) -> list[str]:
    out = []
    for f in dataclasses.fields(options):
        if f.name in skip:
            continue
        default = json.dumps(f.default, default=lambda v: v.given() if hasattr(v, "given") else str(v))
        head = f"    {f.name} (default: {default})"
        out += textwrap.wrap(f"{head} {f.metadata.get('help', '')}", width, subsequent_indent=" " * 8)
    return out


__all__ = ["FAMILIES", "SUITES", "Suite", "SuiteError", "SuiteOptions", "Variants", "describe_suites", "family_of",
           "get_suite", "is_suite", "parse_suite_options", "register_suite", "suite_key", "suite_names", "variants"]
