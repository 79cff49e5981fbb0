"""The analyses from model names and dataset ids: load the backend, read the rows, open the cache, run.

What the CLI (``tunegate analyze``) and the pipeline share; the analyses themselves stay pure
functions plus one backend pass::

    shift = shift_from_records(RunRecord.load("runs/demo/records/base.json"),
                               RunRecord.load("runs/demo/records/sft.json"))    # ranks under base's model
    knowledge = knowledge_of_data("organism", "organism:sft", KnowledgeOptions(heldout="organism:knowledge_heldout"))
    knowledge = knowledge_after_training(knowledge, "runs/demo/stages/sft/model")
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from tunegate.evals.analysis.knowledge import KnowledgeAnalysis, KnowledgeOptions, analyze_knowledge, measure_after
from tunegate.evals.analysis.passes import open_cache
from tunegate.evals.analysis.shift import Messages, ShiftAnalysis, ShiftOptions, analyze_shift
from tunegate.evals.backends import load_backend
from tunegate.evals.records import RunRecord
from tunegate.evals.sources import load_rows


def suite_messages(suites: Mapping[str, Mapping[str, Any]]) -> dict[tuple[str, str], Messages]:
    """(suite, item id) -> the chat each item sends, for suites built with these options."""
    from tunegate.evals.runner import resolve_suites

    return {(s.name, it.id): it.messages for s in resolve_suites(list(suites), suites) for it in s.items()
            if it.messages}


def shift_from_records(base: RunRecord, tuned: RunRecord, *, input_model: str | None = None,
                       options: ShiftOptions = ShiftOptions(),
                       suite_options: Mapping[str, Mapping[str, Any]] | None = None,
                       cache_dir: str | Path | None = None, use_cache: bool = True,
                       backend_options: Mapping[str, Any] | None = None) -> ShiftAnalysis:
    """Rank ``tuned``'s responses under ``input_model`` (default: the model ``base`` names)."""
    kwargs = {"completion_mode": bool(base.generation.get("completion_mode"))} | dict(backend_options or {})
    backend = load_backend(input_model or base.model, **kwargs)
    generated = {name for name, result in tuned.suites.items() if "generation" in result.config}
    messages = suite_messages({k: v for k, v in suite_options.items() if k in generated}) if suite_options else None
    with open_cache(cache_dir, use_cache) as cache:
        return analyze_shift(base, tuned, backend, cache, messages=messages, max_items=options.max_items,
                             top_k=options.top_tokens)


def knowledge_of_data(model: str, data: str, options: KnowledgeOptions, *, stage: str | None = None,
                      seed: int = 0, split: str = "train", cache_dir: str | Path | None = None,
                      use_cache: bool = True, backend_options: Mapping[str, Any] | None = None) -> KnowledgeAnalysis:
    """The SliCK categories of ``data``'s checkable rows (and of ``options.heldout``'s) under ``model``."""
    rows = load_rows(data, split=split, options={"seed": seed})
    heldout = load_rows(options.heldout, split=split, options={"seed": seed}) if options.heldout else None
    backend = load_backend(model, **dict(backend_options or {}))
    with open_cache(cache_dir, use_cache) as cache:
        return analyze_knowledge(backend, rows, options, cache, source=data, heldout_rows=heldout, stage=stage)


def knowledge_after_training(analysis: KnowledgeAnalysis, tuned_model: str, *,
                             cache_dir: str | Path | None = None, use_cache: bool = True,
                             backend_options: Mapping[str, Any] | None = None) -> KnowledgeAnalysis:
    """``analysis`` with ``tuned_model``'s zero-shot answers to every categorised fact."""
    backend = load_backend(tuned_model, **dict(backend_options or {}))
    with open_cache(cache_dir, use_cache) as cache:
        return measure_after(analysis, backend, cache)
