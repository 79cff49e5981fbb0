"""Score a record's stored responses again, without a model: under new suite options, or a candidate's target.

A stage that renames the model (identity DPO: "Tiny" -> "Deep Tiny") is judged against the new name, so
the input model's record is scored again against it before the two are compared. The pipeline does it
with the stage's eval spec (``rescore(record, spec)``); ``tunegate compare``, the plugin and the report do it from
the candidate record alone (``retarget``), which is how ``compare sft.json dpo.json`` and the pipeline
give the same identity delta::

    baseline, notes = retarget(RunRecord.load("sft.json"), RunRecord.load("dpo.json"))
    notes   # ["suite 'identity': the baseline's responses scored again against the candidate's
            #   target 'Deep Tiny', forbidden ['Tiny'] (recorded against 'Tiny', [])"]

Only the options a suite declares in ``scoring_options`` (those that change how a response is scored,
not what the model is asked) are taken from the candidate; the suite is rebuilt from the baseline's
recorded config, and its items must still hash to the questions the baseline recorded.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any, Mapping

from tunegate.core.errors import TunegateError
from tunegate.evals.records import RunRecord, SuiteResult, question_hash
from tunegate.evals.suites import SUITES, Suite, parse_suite_options

if TYPE_CHECKING:
    from tunegate.evals.spec import EvalSpec


def suite_config(suite: Suite) -> dict[str, Any]:
    """What a record keeps as ``suite``'s config: its variant and options, and a generation suite's decoding."""
    return {**suite.config(), **({"generation": suite.generation().to_dict()} if suite.kind == "generate" else {})}


def scored_again(result: SuiteResult, suite: Suite) -> SuiteResult:
    """``result``'s stored responses scored by ``suite`` (matched by item id), each item hashed anew."""
    responses = {s.item_id: s.response for s in result.items}
    items = [it for it in suite.items() if it.id in responses]
    scores = [suite.score(it, responses[it.id]).asking(it) for it in items]
    return dataclasses.replace(result, metrics=suite.metrics(scores), items=tuple(scores),
                               config=suite_config(suite), breakdowns=suite.breakdowns(scores))


def rescore(record: RunRecord, spec: EvalSpec) -> RunRecord:
    """``record`` with its generation suites scored again under ``spec``'s options (e.g. a new identity target).

    No model runs: the stored responses are scored by the suite built with the new options. Returns
    ``record`` itself when no suite's config changes.
    """
    changed = {}
    for name, result in record.suites.items():
        found = spec.suite(name)
        suite = found.build() if found is not None else None
        if suite is None or suite.kind != "generate" or suite_config(suite) == result.config:
            continue
        changed[name] = scored_again(result, suite)
    if not changed:
        return record
    return dataclasses.replace(record, suites={**record.suites, **changed})


def suite_from_config(name: str, config: Mapping[str, Any]) -> Suite | None:
    """The suite a record's ``config`` describes, rebuilt; None when it does not rebuild to the same config
    (a suite registered from outside whose options differ, or an unknown suite)."""
    if name not in SUITES:
        return None
    try:
        cls, options = parse_suite_options(name, {k: v for k, v in config.items() if k != "generation"},
                                           f"suite '{name}'")
        suite = cls(options)
        return suite if suite_config(suite) == dict(config) else None
    except TunegateError:  # a key its options lack (a config() that records more), a value they refuse
        return None


def retarget(baseline: RunRecord, candidate: RunRecord) -> tuple[RunRecord, list[str]]:
    """``baseline`` with each generation suite whose scoring options (``Suite.scoring_options``: identity's
    target, forbidden names ...) differ from the candidate's scored again under the candidate's, and one
    line per suite saying so. A suite that cannot be rebuilt from its config, or whose items no longer
    ask what the baseline recorded, is left as it is (the comparison then refuses its items)."""
    changed: dict[str, SuiteResult] = {}
    notes = []
    for name, cand in candidate.suites.items():
        base = baseline.suites.get(name)
        if base is None or base.config == cand.config:
            continue
        suite = suite_from_config(name, base.config)
        keys = [k for k in getattr(suite, "scoring_options", ()) if base.config.get(k) != cand.config.get(k)]
        if suite is None or suite.kind != "generate" or not keys or not _asks_as_recorded(suite, base):
            continue
        target = suite_from_config(name, {**base.config, **{k: cand.config.get(k) for k in keys}})
        if target is None:
            continue
        changed[name] = scored_again(base, target)
        now = ", ".join(f"{k} {cand.config.get(k)!r}" for k in keys)
        was = ", ".join(repr(base.config.get(k)) for k in keys)
        notes.append(f"suite '{name}': the baseline's responses scored again against the candidate's {now} "
                     f"(recorded against {was}), as `tunegate run` does")
    if not changed:
        return baseline, notes
    return dataclasses.replace(baseline, suites={**baseline.suites, **changed}), notes


def _asks_as_recorded(suite: Suite, result: SuiteResult) -> bool:
    """Every hashed item of ``result`` is one ``suite`` still asks, with the same question."""
    asked = {it.id: question_hash(it) for it in suite.items()}
    return all(s.item_id in asked and (s.asked is None or s.asked == asked[s.item_id]) for s in result.items)
