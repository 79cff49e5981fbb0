"""The analyses from model names and dataset ids: load the backend, read the rows, open the cache, run.

What the CLI (``tunegate analyze``) and the pipeline share; each takes the caller's EvalSpec (the
backend, its options and the cache; for shift, the suites whose items it re-renders), so an analysis
runs on the backend the evaluations ran on. The analyses themselves stay pure functions plus one
backend pass::

    shift = shift_from_records(RunRecord.load("runs/demo/records/base.json"),
                               RunRecord.load("runs/demo/records/sft.json"))    # ranks under base's model
    knowledge = knowledge_of_data("organism", "organism:sft", KnowledgeOptions(heldout="organism:knowledge_heldout"))
    knowledge = knowledge_after_training(knowledge, "runs/demo/stages/sft/model", spec=EvalSpec(cache_dir="c"))
"""

from __future__ import annotations


from tunegate.evals.analysis.knowledge import KnowledgeAnalysis, KnowledgeOptions, analyze_knowledge, measure_after
from tunegate.evals.analysis.passes import open_cache
from tunegate.evals.analysis.shift import Messages, ShiftAnalysis, ShiftOptions, analyze_shift
from tunegate.evals.records import RunRecord
from tunegate.evals.sources import load_rows
from tunegate.evals.spec import EvalSpec


def suite_messages(spec: EvalSpec, names: set[str]) -> dict[tuple[str, str], Messages]:
    """(suite, item id) -> the chat each item of ``spec``'s suites in ``names`` sends."""
    return {(s.name, it.id): it.messages for s in spec.build() if s.name in names for it in s.items() if it.messages}


def shift_from_records(base: RunRecord, tuned: RunRecord, *, input_model: str | None = None,
                       options: ShiftOptions = ShiftOptions(), spec: EvalSpec = EvalSpec()) -> ShiftAnalysis:
    """Rank ``tuned``'s responses under ``input_model`` (default: the model ``base`` names), on ``spec``'s
    backend; in completion mode when ``base`` was evaluated so, unless ``spec`` says otherwise."""
    if spec.backend_options.completion_mode is None and base.generation.get("completion_mode"):
        spec = spec.varied(completion_mode=True)
    backend = spec.load_backend(input_model or base.model)
    generated = {name for name, result in tuned.suites.items() if "generation" in result.config}
    messages = suite_messages(spec, generated) if spec.suites else None
    with open_cache(spec.cache_dir, spec.use_cache) as cache:
        return analyze_shift(base, tuned, backend, cache, messages=messages, max_items=options.max_items,
                             top_k=options.top_tokens)


def knowledge_of_data(model: str, data: str, options: KnowledgeOptions, *, stage: str | None = None,
                      seed: int = 0, split: str = "train", spec: EvalSpec = EvalSpec()) -> KnowledgeAnalysis:
    """The SliCK categories of ``data``'s checkable rows (and of ``options.heldout``'s) under ``model``."""
    rows = load_rows(data, split=split, options={"seed": seed})
    heldout = load_rows(options.heldout, split=split, options={"seed": seed}) if options.heldout else None
    backend = spec.load_backend(model)
    with open_cache(spec.cache_dir, spec.use_cache) as cache:
        return analyze_knowledge(backend, rows, options, cache, source=data, heldout_rows=heldout, stage=stage)


def knowledge_after_training(analysis: KnowledgeAnalysis, tuned_model: str, *,
                             spec: EvalSpec = EvalSpec()) -> KnowledgeAnalysis:
    """``analysis`` with ``tuned_model``'s zero-shot answers to every categorised fact."""
    backend = spec.load_backend(tuned_model)
    with open_cache(spec.cache_dir, spec.use_cache) as cache:
        return measure_after(analysis, backend, cache)
