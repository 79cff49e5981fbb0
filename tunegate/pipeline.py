"""base -> eval -> stage 1 -> eval -> stage 2 -> eval -> compare each stage with its input -> report.

Everything lands under the run directory as soon as it exists, so a failure
mid-pipeline keeps every record already written::

    DIR/records/<stage>.json                        RunRecord per stage (base, sft, dpo)
    DIR/baselines/<stage>_vs_<input>.json           the input's record re-scored with the stage's suite options
    DIR/comparisons/<stage>_vs_<input>.json         Comparison (paired deltas, verdicts, gate)
    DIR/plans/<stage>_vs_<input>.json               Plan: items each gated metric needs, and their eval time
    DIR/stages/<stage>/{model/,manifest.json,training_log.json}
    DIR/analysis/<stage>_<kind>.json                analyses switched on in the config (shift, knowledge)
    DIR/summary.json                                headline metrics per stage, verdicts per comparison
    DIR/report.html

A config with ``model_line`` also stores every stage's record (its stage recorded) and each
comparison in the results store (``store=``, the CLI's ``--store``, default ``runs/tunegate.sqlite``),
in one transaction once all stages have run.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from tunegate.core import progress as _progress
from tunegate.core.errors import TunegateError
from tunegate.core.files import write_json_atomic
from tunegate.evals.gate import GateConfig
from tunegate.evals.models import resolve_model_dir
from tunegate.evals.records import Comparison, NoiseFloor, RunRecord
from tunegate.training.config import PipelineConfig, StageConfig
from tunegate.training.methods import DataContext, get_method


log = _progress.log  # a progress line on stderr (stdout is for results), as --quiet/--log-format say


def stage_suite_options(config: PipelineConfig, stage: StageConfig | None) -> dict[str, dict[str, Any]]:
    """The eval suites' options as seen by ``stage`` (its identity target overrides the defaults)."""
    options = config.suites
    if stage is not None and "identity" in options:
        options["identity"].update(stage.identity)
    return options


@dataclass
class PipelineResult:
    out_dir: Path
    records: dict[str, RunRecord] = field(default_factory=dict)
    comparisons: dict[str, Comparison] = field(default_factory=dict)
    phases: dict[str, float] = field(default_factory=dict)
    phases_cpu: dict[str, float] = field(default_factory=dict)
    report: Path | None = None

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.comparisons.values())


class PhaseTimer:
    """Runs the pipeline's phases one by one, announcing each and keeping its wall time in the result."""

    def __init__(self, result: PipelineResult) -> None:
        self.result = result

    def run(self, name: str, fn: Callable[[], Any]) -> Any:
        with _progress.phase(name) as phase:
            value = fn()
        self.result.phases[name] = phase.seconds
        self.result.phases_cpu[name] = phase.cpu_seconds
        return value


def _precheck(config: PipelineConfig) -> str:
    """Fail fast on inputs that can be checked before any training: model, stage data, gate."""
    base = str(resolve_model_dir(config.base_model))
    if not config.eval.completion_mode and not config.eval.backend_options.get("chat_template"):
        check_chat_template(base)
    for i, stage in enumerate(config.stages):
        get_method(stage.method).check_data(stage.data, stage.data_options, config.seed,
                                            f"{config.source}: stages[{i}] ('{stage.name}')")
    load_gate(config)
    return base


def check_chat_template(model_dir: str) -> None:
    """Chat suites and conversational training need the tokenizer's chat template: say which file lacks it."""
    from transformers import AutoTokenizer

    if not getattr(AutoTokenizer.from_pretrained(model_dir), "chat_template", None):
        raise TunegateError(
            f"{model_dir}: tokenizer has no chat template (no chat_template.jinja, no field 'chat_template' in "
            "tokenizer_config.json); add one, or set eval.completion_mode: true for raw prompts")


def load_gate(config: PipelineConfig) -> GateConfig:
    """The gate of a pipeline config: inline rules, or a gate YAML named relative to the config file."""
    if isinstance(config.gate, str):
        path = Path(config.gate)
        return GateConfig.from_yaml(path if path.is_absolute() else Path(config.source).parent / path)
    return GateConfig.from_dict(config.gate or {}, where=f"{config.source}: gate")


def run_pipeline(config: PipelineConfig, out_dir: str | Path, *, max_steps: int | None = None,
                 cache_dir: str | Path | None = None, progress: bool = True, report: bool = True,
                 num_processes: int = 1, accelerate_config: str | Path | None = None,
                 store: str | Path | None = None) -> PipelineResult:
    """Run every stage of ``config``, evaluating before and after each, and write the run directory.

    ``store``: the results store to write when the config has a ``model_line`` (None: no store).

    ``num_processes`` > 1 (or an ``accelerate_config``) trains each stage under ``accelerate launch``
    (training.launch); evaluation stays in this process.
    """
    from datasets import Dataset

    from tunegate.evals.compare import compare_records
    from tunegate.evals.plan import plan
    from tunegate.evals.runner import evaluate, rescore
    from tunegate.training.launch import train_stage_launched
    from tunegate.training.stages import quiet_training_logs, train_stage

    if num_processes < 1:
        raise TunegateError(f"--num-processes must be at least 1, got {num_processes}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    result = PipelineResult(out_dir=out)
    phases = PhaseTimer(result)
    quiet_training_logs()
    base = phases.run("check inputs", lambda: _precheck(config))
    gate = load_gate(config)
    eval_kwargs = config.eval.backend_kwargs()
    suites = list(config.suites)

    def run_eval(model: str, stage_name: str, stage: StageConfig | None) -> RunRecord:
        return evaluate(model, suites, suite_options=stage_suite_options(config, stage), stage=stage_name,
                        out=out / "records" / f"{stage_name}.json", cache_dir=cache_dir, progress=progress,
                        **eval_kwargs)

    started = time.perf_counter()
    try:
        prev_name, prev_model = "base", base
        prev = phases.run("eval base", lambda: run_eval(base, "base", config.stages[0]))
        noise = None
        if config.eval.noise_items and eval_kwargs["backend"] != "hf":
            log(f"noise base: skipped (eval.noise_items varies batch size and dtype in the hf backend; "
                f"this run evaluates with '{eval_kwargs['backend']}')")
        elif config.eval.noise_items:
            noise = phases.run("noise base", lambda: measure_base_noise(config, base))
            prev = dataclasses.replace(prev, noise=noise)
            prev.save(out / "records" / "base.json")
        result.records["base"] = prev
        for stage in config.stages:
            context = DataContext(model_dir=prev_model, stage_dir=out / "stages" / stage.name, seed=config.seed,
                                  where=f"{config.source}: stage '{stage.name}'", backend_options=eval_kwargs,
                                  args=stage.args, log=log)
            rows, source = phases.run(f"data {stage.name}", lambda: get_method(stage.method).dataset(
                stage.data, stage.data_options, context))
            knowledge = analyze_stage(phases, config, stage, out, prev, prev_model, cache_dir=cache_dir,
                                      backend_options=eval_kwargs)
            args = dict(stage.args) | ({"max_steps": max_steps} if max_steps else {})
            stage_kwargs = dict(out_dir=out / "stages" / stage.name, name=stage.name, args=args, lora=stage.lora,
                                seed=config.seed, data_source=source, trains=stage.trains,
                                extra_manifest={"input_stage": prev_name})
            if num_processes == 1 and accelerate_config is None:
                train = lambda: train_stage(stage.method, prev_model, Dataset.from_list(rows), **stage_kwargs)  # noqa: E731
            else:
                train = lambda: train_stage_launched(stage.method, prev_model, rows, num_processes=num_processes,  # noqa: E731
                                                     accelerate_config=accelerate_config, **stage_kwargs)
            trained = phases.run(f"train {stage.name}", train)
            record = phases.run(f"eval {stage.name}", lambda: run_eval(str(trained.model_dir), stage.name, stage))
            result.records[stage.name] = record
            baseline = rescore(prev, stage_suite_options(config, stage))
            if baseline is not prev:
                baseline.save(out / "baselines" / f"{stage.name}_vs_{prev_name}.json")
            comparison = compare_records(baseline, record, gate, trains=stage.trains, noise=noise)
            comparison.save(out / "comparisons" / f"{stage.name}_vs_{prev_name}.json")
            _progress.emit("comparison", name=f"{stage.name}_vs_{prev_name}", passed=comparison.passed,
                           verdicts={f"{m.suite}.{m.metric}": [m.verdict, m.gate] for m in comparison.metrics})
            plan(baseline, gate, record, trains=stage.trains, comparison=comparison).save(
                out / "plans" / f"{stage.name}_vs_{prev_name}.json")
            result.comparisons[f"{stage.name}_vs_{prev_name}"] = comparison
            analyze_stage(phases, config, stage, out, prev, prev_model, record, str(trained.model_dir), knowledge,
                          cache_dir=cache_dir, backend_options=eval_kwargs)
            prev_name, prev_model, prev = stage.name, str(trained.model_dir), record
    except BaseException as exc:
        write_summary(result, config, time.perf_counter() - started, error=f"{type(exc).__name__}: {exc}")
        raise
    write_summary(result, config, time.perf_counter() - started)
    store_results(result, config, store)
    if report:
        result.report = phases.run("report", lambda: _render(out))
        write_summary(result, config, time.perf_counter() - started)
    return result


def measure_base_noise(config: PipelineConfig, base: str) -> NoiseFloor | None:
    """The A/A noise floor of the eval set-up, measured on the base model over ``eval.noise_items`` seeded
    items per suite (the same subset for every suite option set); shown beside every stage's CIs. Its
    passes show no bars and emit no metrics events: the phase line "noise base" stands for them."""
    from tunegate.evals.noise import measure_noise

    options = {name: {**opts, "limit": min(config.eval.noise_items, opts.get("limit") or config.eval.noise_items)}
               for name, opts in stage_suite_options(config, config.stages[0]).items()}
    record = measure_noise(base, list(config.suites), suite_options=options, batch_size=config.eval.batch_size,
                           completion_mode=config.eval.completion_mode, progress=False)
    return record.noise
def analyze_stage(phases: PhaseTimer, config: PipelineConfig, stage: StageConfig, out: Path, input_record: RunRecord,
                  input_model: str, record: RunRecord | None = None, model: str | None = None,
                  knowledge: Any = None, *, cache_dir: str | Path | None = None,
                  backend_options: dict[str, Any] | None = None) -> Any:
    """The stage's analyses that the config switches on (tunegate.evals.analysis), each saved to
    DIR/analysis/<stage>_<kind>.json. Before training (no ``record``): the knowledge categories of the
    stage's data under its input model, returned. After: the tuned ``model``'s answers to those facts,
    and the token shift of the stage's eval responses under the input model."""
    from tunegate.evals.analysis import analysis_path
    from tunegate.evals.analysis import run as analyses

    opts = dict(cache_dir=cache_dir, backend_options=backend_options)
    if record is None:
        if stage.knowledge is None or not isinstance(stage.data, str):
            return None
        knowledge = phases.run(f"knowledge {stage.name}", lambda: analyses.knowledge_of_data(
            input_model, stage.data, stage.knowledge, stage=stage.name, seed=config.seed,
            split=stage.data_options.get("split", "train"), **opts))
        knowledge.save(analysis_path(out, stage.name, "knowledge"))
        return knowledge
    if knowledge is not None:
        knowledge = phases.run(f"knowledge {stage.name} after", lambda: analyses.knowledge_after_training(
            knowledge, str(model), **opts))
        knowledge.save(analysis_path(out, stage.name, "knowledge"))
    if config.analysis.shift.enabled:
        shift = phases.run(f"shift {stage.name}", lambda: analyses.shift_from_records(
            input_record, record, input_model=input_model, options=config.analysis.shift,
            suite_options=stage_suite_options(config, stage), **opts))
        shift.save(analysis_path(out, stage.name, "shift"))
    return knowledge


def store_results(result: PipelineResult, config: PipelineConfig, store: str | Path | None) -> dict[str, str]:
    """Every stage's record and comparison under the config's model line, in one transaction: ``{stage: run_id}``."""
    if store is None or not config.model_line:
        return {}
    from tunegate.evals.store import Store

    with Store(store) as db:
        ids = db.add_pipeline(config.model_line, list(result.records.values()), list(result.comparisons.values()))
        log(f"stored runs {', '.join(f'{stage}={run_id}' for stage, run_id in ids.items())} "
            f"(model line {config.model_line}) in {db.path}")
    return ids


def _render(out: Path) -> Path | None:
    from tunegate.reports.html import render_run_dir

    return render_run_dir(out)


def write_summary(result: PipelineResult, config: PipelineConfig, seconds: float, error: str | None = None) -> Path:
    """summary.json: each stage's headline metrics and each comparison's verdicts, for scripts."""
    summary = {
        "name": config.name, "base_model": config.base_model, "overrides": list(config.overrides),
        "stages": list(result.records),
        "passed": result.passed and error is None, "error": error, "seconds": round(seconds, 2),
        "phases": result.phases, "phases_cpu": result.phases_cpu,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "metrics": {stage: {f"{s}.{m}": mv.value for s, sr in rec.suites.items() for m, mv in sr.metrics.items()}
                    for stage, rec in result.records.items()},
        "comparisons": {name: {"passed": c.passed, "trains": list(c.trains), "verdicts": {
            f"{m.suite}.{m.metric}": {"verdict": m.verdict, "gate": m.gate, "delta": m.delta,
                                      "ci": [m.ci_low, m.ci_high], "reason": m.reason} for m in c.metrics}}
            for name, c in result.comparisons.items()},
    }
    return write_json_atomic(result.out_dir / "summary.json", summary)
