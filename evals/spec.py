"""The eval spec: which suites run with which options, on which backend with which options, cached where.

Every entry point builds one (``tunegate eval`` and ``tunegate noise`` from flags, ``tunegate run`` from
the pipeline YAML, the pytest plugin from its ``--gate-*`` options, ``tunegate analyze``, the DPO pair
builder) and every consumer takes it whole: ``evaluate(model, spec)``, ``measure_noise(model, spec)``
(which varies it), ``rescore(record, spec)``. Nothing re-packs its settings into dicts on the way::

    spec = eval_spec(["identity", "math"], {"identity": {"target": "Tiny", "probes": "organism"},
                                            "math": {"variant": "organism"}},
                     limit=20, backend_options=BackendOptions(batch_size=8))
    spec.suites[1]                  # SuiteSpec(suite=ArithmeticSuite, options=ArithmeticOptions(limit=20, ...))
    spec.check()                    # every suite's data read and validated: before any model loads
    evaluate("organism", spec)      # tunegate.evals.runner
    spec.varied(batch_size=1)       # the same spec at batch size 1 (the noise pass's variant)

``--limit N`` means one thing at every entry point (``capped``): at most N items per suite, the first N
of one seeded order; a suite's own smaller ``limit`` stays.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

from tunegate.core.errors import TunegateError
from tunegate.evals.backends import DEFAULT_BACKEND, BackendOptions, check_backend, load_backend
from tunegate.evals.records import RunRecord
from tunegate.evals.requests import Backend
from tunegate.evals.suites import family_of, parse_suite_options, suite_key
from tunegate.evals.suites.base import Suite, SuiteOptions, options_config

#: What ``--limit`` means wherever it is a flag (``eval``, ``noise``, ``run``, the plugin's ``--gate-limit``).
LIMIT_HELP = ("cap every suite at N items: the first N of one seeded order, so records of different limits "
              "compare on their common items; a suite's own smaller limit stays")
#: What ``--lm-eval-include-path`` means (``eval``, ``noise``, ``analyze``; the plugin's ``--gate-lm-eval-include-path``;
#: a pipeline config's ``eval.lm_eval_include_path``): every lm-eval suite's ``include_path`` unless it sets one.
LM_EVAL_INCLUDE_HELP = ("folder of lm-eval task YAMLs for the lm-eval:TASK suites, found before lm-eval's own tasks, "
                        "as lm-eval's --include_path")


@dataclass(frozen=True)
class SuiteSpec:
    """One suite to run: its class (the variant chosen) and its typed options."""

    suite: type[Suite]
    options: SuiteOptions

    @property
    def name(self) -> str:
        return self.suite.name

    def build(self, reference: RunRecord | None = None) -> Suite:
        """The suite; ``reference`` is the baseline record a suite scored against one takes (``Suite.reference``)."""
        suite = self.suite(self.options)
        if reference is not None:
            suite.reference = reference
        return suite

    def config(self) -> dict[str, Any]:
        """What the record keeps as this suite's config: the variant and the options, whole."""
        return options_config(self.suite.variant, self.options)

    def capped(self, limit: int | None) -> "SuiteSpec":
        return dataclasses.replace(self, options=self.options.capped(limit))


@dataclass(frozen=True)
class EvalSpec:
    """Everything an evaluation needs besides the model."""

    suites: tuple[SuiteSpec, ...] = ()
    backend: str = DEFAULT_BACKEND
    backend_options: BackendOptions = field(default_factory=BackendOptions)
    cache_dir: str | Path | None = None
    use_cache: bool = True
    #: the baseline record that suites scored against a baseline (the pairwise judge) use when their options
    #: name none: the plugin's baseline, a pipeline stage's input record (``referenced``)
    reference: RunRecord | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        check_backend(self.backend, self.backend_options)
        names = [s.name for s in self.suites]
        if len(set(names)) != len(names):
            raise TunegateError(f"suites: each suite once, got {names}")

    def names(self) -> list[str]:
        return [s.name for s in self.suites]

    def suite(self, name: str) -> SuiteSpec | None:
        return next((s for s in self.suites if s.name == name), None)

    def capped(self, limit: int | None) -> "EvalSpec":
        """At most ``limit`` items per suite (``--limit``); a suite's own smaller limit stays."""
        return dataclasses.replace(self, suites=tuple(s.capped(limit) for s in self.suites))

    def varied(self, **backend_options: Any) -> "EvalSpec":
        """The same evaluation with some backend options changed (the noise pass: ``batch_size=1``)."""
        return dataclasses.replace(self, backend_options=dataclasses.replace(self.backend_options, **backend_options))

    def referenced(self, record: RunRecord | None) -> "EvalSpec":
        """The same evaluation, with ``record`` as the baseline that suites scored against one judge against."""
        return dataclasses.replace(self, reference=record)

    def build(self) -> list[Suite]:
        return [s.build(self.reference) for s in self.suites]

    def check(self) -> list[Suite]:
        """The suites, built, with their items read and validated: a missing dataset or a bad row fails here,
        in seconds, before any model loads (the runner then reuses the items read)."""
        suites = self.build()
        for suite in suites:
            suite.items()
        return suites

    def load_backend(self, model: str) -> Backend:
        return load_backend(model, self.backend, self.backend_options)


def eval_spec(suites: Sequence[str | Suite], options: Mapping[str, Mapping[str, Any]] | None = None, *,
              limit: int | None = None, subset_seed: int | None = None, backend: str = DEFAULT_BACKEND,
              backend_options: BackendOptions | None = None, cache_dir: str | Path | None = None,
              use_cache: bool = True, where: str = "", lm_eval_include_path: str | None = None) -> EvalSpec:
    """An EvalSpec from suite names (or built suites) and each suite's options as a mapping.

    ``limit`` caps every suite (``LIMIT_HELP``); ``subset_seed`` is every suite's seed unless its options
    set one; ``lm_eval_include_path`` is every ``lm-eval:TASK`` suite's ``include_path`` unless its options
    set one; ``where`` starts each option error ("--suite-option ifeval: unknown ..."). Options are keyed by
    the suite's name as records know it (a suite file's own ``name``, see ``suite_key``).
    """
    options = options or {}
    keys = [suite_key(s) if isinstance(s, str) else s.name for s in suites]
    for name in options:
        if name not in keys:
            raise TunegateError(f"{where or 'suite options'}: suite '{name}' is not evaluated "
                                f"(suites: {', '.join(keys)})")
    specs = []
    for s, key in zip(suites, keys):
        if isinstance(s, Suite):
            specs.append(SuiteSpec(type(s), s.options))
            continue
        data = dict(options.get(key) or {})
        if subset_seed is not None:
            data.setdefault("subset_seed", subset_seed)
        if lm_eval_include_path is not None and family_of(s) == "lm-eval":
            data.setdefault("include_path", lm_eval_include_path)
        specs.append(SuiteSpec(*parse_suite_options(s, data, f"{where} {key}" if where else f"suite '{key}'")))
    return EvalSpec(tuple(specs), backend, backend_options or BackendOptions(), cache_dir, use_cache).capped(limit)


def suite_option_pairs(pairs: Sequence[str], flag: str = "--suite-option") -> dict[str, dict[str, Any]]:
    """``SUITE.KEY=VALUE`` pairs as per-suite option mappings; VALUE is parsed as JSON, else kept as text."""
    options: dict[str, dict[str, Any]] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        suite, dot, name = key.partition(".")
        if not sep or not dot or not name or not suite:
            raise TunegateError(f"{flag} '{pair}': expected SUITE.KEY=VALUE")
        try:
            value: Any = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        options.setdefault(suite, {})[name] = value
    return options
