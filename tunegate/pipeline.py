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

Before any model loads, the phase "check inputs" resolves and validates everything the run will read
(the base model and its chat template, every stage's data, each suite's data as every stage evaluates
it, the gate, the accelerate config): a bad input fails in seconds, not after the base model's eval.

A run directory holds one run: once the inputs check out, a reused ``--out`` loses what an earlier run
wrote there (its records, baselines, comparisons, plans, analyses, summary, report, and the directories
of stages this config does not have), so the report never mixes two runs.
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
from tunegate.evals.models import loading, resolve_model_dir
from tunegate.evals.records import Comparison, RunRecord
from tunegate.evals.spec import EvalSpec
from tunegate.training.config import PipelineConfig, StageConfig
from tunegate.training.methods import DataContext, get_method

log = _progress.log  # a progress line on stderr (stdout is for results), as --quiet/--log-format say


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


@dataclass(frozen=True)
class RunSettings:
    """How a run executes, besides its config (the command line's flags)."""

    max_steps: int | None = None
    cache_dir: str | Path | None = None
    progress: bool = True
    report: bool = True
    num_processes: int = 1
    accelerate_config: str | Path | None = None
    store: str | Path | None = None

    @property
    def launched(self) -> bool:
        """Each stage trains under ``accelerate launch`` (tunegate.training.launch), not in this process."""
        return self.num_processes > 1 or self.accelerate_config is not None


@dataclass(frozen=True)
class Evaluated:
    """A model the pipeline has evaluated: the stage that made it, where it is, its record."""

    name: str
    model: str
    record: RunRecord


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


def check_chat_template(model_dir: str, trust_remote_code: bool = False) -> None:
    """Chat suites and conversational training need the tokenizer's chat template: say which file lacks it."""
    from transformers import AutoTokenizer

    with loading(model_dir):
        tokenizer = AutoTokenizer.from_pretrained(model_dir, trust_remote_code=trust_remote_code)
    if not getattr(tokenizer, "chat_template", None):
        raise TunegateError(
            f"{model_dir}: tokenizer has no chat template (no chat_template.jinja, no field 'chat_template' in "
            "tokenizer_config.json); add one, or set eval.backend_options.completion_mode: true for raw prompts")


def load_gate(config: PipelineConfig) -> GateConfig:
    """The gate of a pipeline config: inline rules, a gate YAML named relative to the config file, or a
    shipped gate by name (``gate: dpo``)."""
    if isinstance(config.gate, str):
        return GateConfig.from_yaml(config.gate, relative_to=Path(config.source).parent)
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
    if num_processes < 1:
        raise TunegateError(f"--num-processes must be at least 1, got {num_processes}")
    settings = RunSettings(max_steps, cache_dir, progress, report, num_processes, accelerate_config, store)
    return PipelineRun(config, Path(out_dir), settings).run()


class PipelineRun:
    """One run of a pipeline config: its inputs checked, then each stage's data, training, eval and comparison."""

    def __init__(self, config: PipelineConfig, out: Path, settings: RunSettings) -> None:
        self.config, self.out, self.settings = config, out, settings
        self.result = PipelineResult(out_dir=out)
        self.phases = PhaseTimer(self.result)
        #: Each stage's EvalSpec (its suites with its options); the base model is evaluated with the first's.
        self.specs = {stage.name: config.eval_spec(stage, settings.cache_dir) for stage in config.stages}
        self.gate = GateConfig()
        self.noise: Any = None

    def run(self) -> PipelineResult:
        from tunegate.training.stages import quiet_training_logs

        self.out.mkdir(parents=True, exist_ok=True)
        quiet_training_logs()
        base = self.phases.run("check inputs", self.check)
        clear_previous_run(self.out, [stage.name for stage in self.config.stages])
        started = time.perf_counter()
        try:
            done = self.eval_base(base)
            for stage in self.config.stages:
                done = self.run_stage(stage, done)
        except BaseException as exc:
            write_summary(self.result, self.config, time.perf_counter() - started, error=f"{type(exc).__name__}: {exc}")
            raise
        write_summary(self.result, self.config, time.perf_counter() - started)
        store_results(self.result, self.config, self.settings.store)
        if self.settings.report:
            self.result.report = self.phases.run("report", lambda: _render(self.out))
            write_summary(self.result, self.config, time.perf_counter() - started)
        return self.result

    def check(self) -> str:
        """Everything the run will read, resolved and validated before any model loads (in seconds): the base
        model and its chat template, every stage's data and knowledge data, the gate, the accelerate config,
        and every suite's data as each stage evaluates it. Returns the base model's directory."""
        from tunegate.evals.sources import load_rows
        from tunegate.training.launch import check_accelerate_config
        from tunegate.training.stages import build_trl_config

        config = self.config
        base = str(resolve_model_dir(config.base_model))
        if not config.eval.backend_options.completion_mode and not config.eval.backend_options.chat_template:
            check_chat_template(base, config.trust_remote_code)
        for i, stage in enumerate(config.stages):
            where = f"{config.source}: stages[{i}] ('{stage.name}')"
            get_method(stage.method).check_data(stage.data, stage.data_options, config.seed, where)
            build_trl_config(stage.method, self.stage_args(stage), self.out / "stages" / stage.name, config.seed,
                             where=f"{config.source}: stages[{i}].args")  # its own checks (GRPO's batch sizes)
            if stage.knowledge is not None and stage.knowledge.heldout:
                load_rows(stage.knowledge.heldout, split=stage.data_options.get("split", "train"),
                          options={"seed": config.seed})
        self.gate = load_gate(config)
        if self.settings.accelerate_config is not None:
            check_accelerate_config(self.settings.accelerate_config)
        for suite in {s for spec in self.specs.values() for s in spec.suites}:  # each distinct suite once
            suite.build().items()
        return base

    def spec(self, stage: StageConfig) -> EvalSpec:
        return self.specs[stage.name]

    def stage_args(self, stage: StageConfig) -> dict[str, Any]:
        """The stage's TRL Config fields as it trains: its ``args:``, and ``--max-steps`` over them."""
        return dict(stage.args) | ({"max_steps": self.settings.max_steps} if self.settings.max_steps else {})

    def evaluate(self, model: str, name: str, stage: StageConfig, reference: RunRecord | None = None) -> RunRecord:
        """``model``'s record; ``reference`` (the stage's input record) is what a pairwise judge suite judges against."""
        from tunegate.evals.runner import evaluate

        return evaluate(model, self.spec(stage).referenced(reference), stage=name,
                        out=self.out / "records" / f"{name}.json", progress=self.settings.progress)

    def eval_base(self, base: str) -> Evaluated:
        """The base model's record, with the A/A noise floor of the eval set-up when ``eval.noise_items`` asks."""
        first = self.config.stages[0]
        record = self.phases.run("eval base", lambda: self.evaluate(base, "base", first))
        items, backend = self.config.eval.noise_items, self.spec(first).backend
        if items and backend != "hf":
            log(f"noise base: skipped (eval.noise_items varies batch size and dtype in the hf backend; "
                f"this run evaluates with '{backend}')")
        elif items:
            self.noise = self.phases.run("noise base", lambda: measure_base_noise(self.spec(first), base, items))
            record = dataclasses.replace(record, noise=self.noise)
            record.save(self.out / "records" / "base.json")
        self.result.records["base"] = record
        return Evaluated("base", base, record)

    def run_stage(self, stage: StageConfig, prev: Evaluated) -> Evaluated:
        """Data, analyses before, training, eval, comparison and analyses after, of one stage."""
        method = get_method(stage.method)
        context = DataContext(model_dir=prev.model, stage_dir=self.out / "stages" / stage.name, seed=self.config.seed,
                              where=f"{self.config.source}: stage '{stage.name}'", eval=self.spec(stage),
                              args=stage.args, log=log, options=method.parse_options(stage.options, stage.name))
        rows, source = self.phases.run(f"data {stage.name}", lambda: method.dataset(
            stage.data, stage.data_options, context))
        knowledge = analyze_stage(self, stage, prev)
        trained = self.phases.run(f"train {stage.name}", lambda: self.train(stage, prev, rows, source))
        model = str(trained.model_dir)
        record = self.phases.run(f"eval {stage.name}", lambda: self.evaluate(model, stage.name, stage, prev.record))
        self.result.records[stage.name] = record
        self.compare(stage, prev, record)
        analyze_stage(self, stage, prev, Evaluated(stage.name, model, record), knowledge)
        return Evaluated(stage.name, model, record)

    def train(self, stage: StageConfig, prev: Evaluated, rows: list[dict[str, Any]], source: Any) -> Any:
        from tunegate.training.launch import train_stage_launched
        from tunegate.training.stages import train_stage

        s = self.settings
        kwargs = dict(out_dir=self.out / "stages" / stage.name, name=stage.name, args=self.stage_args(stage),
                      lora=stage.lora,
                      seed=self.config.seed, data_source=source, trains=stage.trains, options=stage.options,
                      extra_manifest={"input_stage": prev.name}, trust_remote_code=self.config.trust_remote_code)
        if s.launched:
            return train_stage_launched(stage.method, prev.model, rows, num_processes=s.num_processes,
                                        accelerate_config=s.accelerate_config, **kwargs)
        from datasets import Dataset

        return train_stage(stage.method, prev.model, Dataset.from_list(rows), **kwargs)

    def compare(self, stage: StageConfig, prev: Evaluated, record: RunRecord) -> Comparison:
        """The stage's record against its input's, re-scored with the stage's suite options; saved with its plan."""
        from tunegate.evals.compare import compare_records
        from tunegate.evals.plan import plan
        from tunegate.evals.rescore import rescore

        name = f"{stage.name}_vs_{prev.name}"
        baseline = rescore(prev.record, self.spec(stage))
        if baseline is not prev.record:
            baseline.save(self.out / "baselines" / f"{name}.json")
        comparison = compare_records(baseline, record, self.gate, trains=stage.trains, noise=self.noise)
        comparison.save(self.out / "comparisons" / f"{name}.json")
        _progress.emit("comparison", name=name, passed=comparison.passed,
                       verdicts={f"{m.suite}.{m.metric}": [m.verdict, m.gate] for m in comparison.metrics})
        plan(baseline, self.gate, record, trains=stage.trains, comparison=comparison).save(
            self.out / "plans" / f"{name}.json")
        self.result.comparisons[name] = comparison
        return comparison


#: What a run writes directly under its directory (``stages/`` is handled per stage).
RUN_OUTPUTS = ("records", "baselines", "comparisons", "plans", "analysis")


def clear_previous_run(out: Path, stages: list[str]) -> None:
    """Remove what an earlier run wrote in ``out``: its JSON outputs, summary and report, and the
    directories of stages not in ``stages`` (a stage of this run is overwritten when it trains)."""
    import shutil

    old = [p for folder in RUN_OUTPUTS for p in (out / folder).glob("*.json")]
    old += [p for p in (out / "summary.json", out / "report.html") if p.is_file()]
    gone = [p for p in (out / "stages").glob("*") if p.is_dir() and p.name not in stages]
    if not old and not gone:
        return
    for path in old:
        path.unlink()
    for path in gone:
        shutil.rmtree(path)
    what = f"; stage(s) {', '.join(p.name for p in gone)} removed" if gone else ""
    log(f"{out}: held an earlier run; its records, comparisons and report are replaced by this run's{what}")


def measure_base_noise(spec: EvalSpec, base: str, items: int) -> Any:
    """The A/A noise floor of the eval set-up (the stage's EvalSpec, varied by the noise pass), measured on the
    base model over ``items`` seeded items per suite; shown beside every stage's CIs. Its passes show no bars
    and emit no metrics events: the phase line "noise base" stands for them."""
    from tunegate.evals.noise import measure_noise

    return measure_noise(base, spec.capped(items), progress=False).noise


def analyze_stage(run: PipelineRun, stage: StageConfig, prev: Evaluated, tuned: Evaluated | None = None,
                  knowledge: Any = None) -> Any:
    """The stage's analyses that the config switches on (tunegate.evals.analysis), each saved to
    DIR/analysis/<stage>_<kind>.json. Before training (no ``tuned``): the knowledge categories of the
    stage's data under its input model, returned. After: the tuned model's answers to those facts,
    and the token shift of the stage's eval responses under the input model."""
    from tunegate.evals.analysis import analysis_path
    from tunegate.evals.analysis import run as analyses

    config, spec, phases = run.config, run.spec(stage), run.phases
    if tuned is None:
        if stage.knowledge is None or not isinstance(stage.data, str):
            return None
        knowledge = phases.run(f"knowledge {stage.name}", lambda: analyses.knowledge_of_data(
            prev.model, stage.data, stage.knowledge, stage=stage.name, seed=config.seed,
            split=stage.data_options.get("split", "train"), spec=spec))
        knowledge.save(analysis_path(run.out, stage.name, "knowledge"))
        return knowledge
    if knowledge is not None:
        knowledge = phases.run(f"knowledge {stage.name} after", lambda: analyses.knowledge_after_training(
            knowledge, tuned.model, spec=spec))
        knowledge.save(analysis_path(run.out, stage.name, "knowledge"))
    if config.analysis.shift.enabled:
        shift = phases.run(f"shift {stage.name}", lambda: analyses.shift_from_records(
            prev.record, tuned.record, input_model=prev.model, options=config.analysis.shift, spec=spec))
        shift.save(analysis_path(run.out, stage.name, "shift"))
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
