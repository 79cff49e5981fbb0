"""Pipeline configs (YAML), validated before anything runs.

A stage's ``args:`` map onto its TRL Config's fields (SFTConfig, DPOConfig) by their own names;
``lora:`` onto peft's LoraConfig; ``options:`` onto its method's own options; each suite's options
(``eval.suites``, and a stage's ``suites:`` over them) onto that suite's options dataclass, and
``eval.backend_options`` onto ``BackendOptions``. The fields of each level are declared once, with their
help; ``typed_config.from_mapping`` reports unknown (with a did-you-mean), missing and mistyped fields,
and ``parse_config`` adds what a type cannot say (TRL's fields, each stage's suites built with its
overrides, unique stage names). Example (``training/demo.yaml``, shortened)::

    name: organism-demo
    base_model: organism            # the embedded organism; or a hub id / local path
    eval:
      suites:
        identity: {probes: organism}
        math: {variant: organism}
      backend_options: {batch_size: 64}
      # backend: openai                            # hf (default), vllm or openai
      # backend_options: {base_url: "http://127.0.0.1:8000/v1"}
    stages:
      - name: sft
        method: sft
        data: organism:sft
        trains: [identity, ifeval]
        suites: {identity: {target: Tiny}}
        args: {learning_rate: 1.0e-3, num_train_epochs: 4, per_device_train_batch_size: 16}

``pipeline.eval_spec(stage)`` is the EvalSpec (tunegate.evals.spec) that evaluates a stage's model:
``eval.suites`` with the stage's ``suites:`` over them, the backend, and ``--limit`` as a cap.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

from tunegate.core.errors import TunegateError
from tunegate.core.files import load_yaml, read_yaml
from tunegate.core.typed_config import check_keys, from_mapping
from tunegate.evals.analysis.knowledge import KnowledgeOptions
from tunegate.evals.analysis.shift import ShiftOptions
from tunegate.evals.backends import BackendOptions, check_backend
from tunegate.evals.spec import EvalSpec, SuiteSpec
from tunegate.evals.suites import FAMILY_PATTERNS, family_of, is_suite, parse_suite_options, suite_key, suite_names
from tunegate.training.identity_dpo import NEUTRAL_SYSTEM_PROMPT
from tunegate.training.methods import METHODS, get_method

#: Fields of the TRL Config that tunegate sets itself.
MANAGED_ARGS = ("output_dir",)
#: Fields of older configs and where each lives now (one home per setting).
MOVED = {("eval", "batch_size"): "eval.backend_options.batch_size",
         ("eval", "completion_mode"): "eval.backend_options.completion_mode",
         ("eval", "chat_template_kwargs"): "eval.backend_options.chat_template_kwargs",
         ("stages", "identity"): "stages[i].suites.identity"}


@dataclass(frozen=True)
class StageConfig:
    """One training stage: a method over a dataset, and the suites it trains."""

    name: str = field(metadata={"help": "stage name (unique, not 'base'); names the stage's records and directory"})
    method: str = field(metadata={"help": "training method: a name in tunegate.training.methods.METHODS "
                                          "(sft, dpo, grpo, rloo)"})
    data: Any = field(metadata={"help": "dataset (hub id, local path, organism:NAME) or a builder mapping"})
    trains: tuple[str, ...] = field(default=(), metadata={"help": "suites this stage trains: gated on targets, "
                                                                   "the others on non-inferiority"})
    args: dict[str, Any] = field(default_factory=dict, metadata={"help": "fields of the method's TRL Config"})
    lora: dict[str, Any] | None = field(default=None, metadata={"help": "peft LoraConfig fields; null: full fine-tuning"})
    options: dict[str, Any] = field(default_factory=dict, metadata={
        "help": "the method's own options (its Options dataclass; sft and dpo have none, grpo: rewards)"})
    suites: dict[str, dict[str, Any]] = field(default_factory=dict, metadata={
        "help": "suite options for this stage's evaluation over eval.suites, e.g. {identity: {target: Tiny}}; "
                "the stage's input model is re-scored with them"})
    data_options: dict[str, Any] = field(default_factory=dict,
                                         metadata={"help": "options of the dataset loader (split, name, limit)"})
    knowledge: KnowledgeOptions | None = field(default=None, metadata={
        "help": "before training, the SliCK knowledge categories of the stage's data under its input model; "
                "after, the tuned model's accuracy per category (null: off)"})


@dataclass(frozen=True)
class EvalConfig:
    """The evaluation run before the first stage and after each."""

    suites: dict[str, dict[str, Any] | None] = field(default_factory=dict,
                                                     metadata={"help": "suite name -> its options"})
    backend: str = field(default="hf", metadata={"help": "evaluation backend: hf, vllm or openai "
                                                         "(tunegate.evals.backends.BACKENDS)"})
    backend_options: BackendOptions = field(default_factory=BackendOptions, metadata={
        "help": "the backend's options (tunegate.evals.backends.BackendOptions), e.g. {batch_size: 64} for hf, "
                "{base_url: 'http://127.0.0.1:8000/v1'} for openai, {chat_template_kwargs: {enable_thinking: false}}"})
    lm_eval_include_path: str | None = field(default=None, metadata={
        "help": "folder of lm-eval task YAMLs for the lm-eval:TASK suites, found before lm-eval's own tasks, as "
                "lm-eval's --include_path"})
    noise_items: int | None = field(default=None, metadata={
        "help": "measure the A/A noise floor (tunegate noise: batch size N vs 1, and dtypes on CUDA) of the base "
                "model on this many items per suite; every stage's comparison shows it (None: not measured; "
                "skipped with a log line on another backend)"})

    def __post_init__(self) -> None:
        check_backend(self.backend, self.backend_options)
        if self.noise_items is not None and self.noise_items < 1:
            raise TunegateError(f"field 'noise_items' must be a positive number of items, got {self.noise_items}")


@dataclass(frozen=True)
class AnalysisConfig:
    """Analyses that explain each stage beyond its scores (tunegate.evals.analysis); each is off unless set."""

    shift: ShiftOptions = field(default_factory=ShiftOptions,
                                metadata={"help": "token shift of each stage's eval responses under its input model"})


@dataclass(frozen=True)
class PipelineConfig:
    """A pipeline: base model -> eval -> stage -> eval -> ... with a gate per stage."""

    name: str = field(metadata={"help": "name of the pipeline (shown in the report)"})
    base_model: str = field(metadata={"help": "hub id, local checkpoint directory, or organism"})
    stages: tuple[StageConfig, ...] = field(metadata={"help": "training stages, in order"})
    eval: EvalConfig = field(default_factory=EvalConfig, metadata={"help": "suites and evaluation settings"})
    gate: dict[str, Any] | str | None = field(default=None, metadata={"help": "gate rules, or a path to a gate YAML"})
    analysis: AnalysisConfig = field(default_factory=AnalysisConfig, metadata={"help": "analyses of each stage"})
    seed: int = field(default=0, metadata={"help": "seed of training and data order"})
    model_line: str | None = field(default=None, metadata={"help": "model line in the results store"})
    source: str = field(default="<config>", metadata={"help": "the file this config was read from"})
    overrides: tuple[str, ...] = field(default=(), metadata={"help": "the --set/--limit applied to the file"})
    limit: int | None = field(default=None, metadata={"help": "--limit: at most this many items per eval suite"})
    trust_remote_code: bool = field(default=False, metadata={
        "help": "run the Python code a checkpoint ships (config.json auto_map) in training, evaluation and analyses; "
                "off unless set (kept in each record and stage manifest)"})

    def suite_options(self, stage: StageConfig) -> dict[str, dict[str, Any]]:
        """Each evaluated suite's options as ``stage`` sees them: ``eval.suites``, the stage's ``suites:`` over them.

        The identity suite asks with the system prompt the identity-DPO builder trains with (unless it sets its
        own ``system_prompt``, ``null`` included): Qwen2.5's template would otherwise add "You are Qwen, created
        by Alibaba Cloud", telling the model at eval time the very name DPO trains away.
        """
        options = {name: {**(opts or {}), **_stage_suite(stage, name)} for name, opts in self.eval.suites.items()}
        builder = next((s.data for s in self.stages if isinstance(s.data, Mapping) and s.data.get("builder") == "identity"),
                       None)
        if "identity" in options and builder is not None and "system_prompt" not in options["identity"]:
            options["identity"]["system_prompt"] = builder.get("system_prompt", NEUTRAL_SYSTEM_PROMPT)
        return options

    def eval_spec(self, stage: StageConfig, cache_dir: str | Path | None = None) -> EvalSpec:
        """The EvalSpec of ``stage``'s evaluations (the base model's: the first stage's), capped at ``--limit``."""
        index = self.stages.index(stage)
        specs = []
        include = self.eval.lm_eval_include_path
        for name, data in self.suite_options(stage).items():
            where = f"{self.source}: eval.suites.{name}"
            if _stage_suite(stage, name):
                where = f"{self.source}: stages[{index}].suites.{name} (over eval.suites.{name})"
            if include is not None and family_of(name) == "lm-eval":
                data.setdefault("include_path", include)
            specs.append(SuiteSpec(*parse_suite_options(name, data, where)))
        options = self.eval.backend_options.updated(trust_remote_code=self.trust_remote_code or None)
        return EvalSpec(tuple(specs), self.eval.backend, options, cache_dir).capped(self.limit)


def _stage_suite(stage: StageConfig, name: str) -> dict[str, Any]:
    """A stage's options of the suite ``name`` evaluates, keyed by that name or by its record name (a suite file's)."""
    return {**stage.suites.get(suite_key(name), {}), **stage.suites.get(name, {})}


def validate_trl_args(method: str, args: Mapping[str, Any], where: str) -> None:
    """Every key must be a field of the installed TRL's Config class, with a value of a plausible type."""
    cls = get_method(method).config_class()
    fields = {f.name: f for f in dataclasses.fields(cls)}
    check_keys(args, set(fields) - set(MANAGED_ARGS), f"{where} ({cls.__name__})")
    for key, value in args.items():
        default = fields[key].default
        if value is None and "None" in str(fields[key].type):  # e.g. SFTConfig.max_length: null = no truncation
            continue
        if isinstance(default, bool) and not isinstance(value, bool):
            raise TunegateError(f"{where}: field '{key}' must be true or false, got {value!r}")
        if isinstance(default, (int, float)) and not isinstance(default, bool) and not isinstance(value, (int, float)):
            raise TunegateError(f"{where}: field '{key}' must be a number, got {type(value).__name__} ({value!r})")


def validate_lora(lora: Mapping[str, Any], where: str) -> None:
    from peft import LoraConfig

    check_keys(lora, {f.name for f in dataclasses.fields(LoraConfig)}, f"{where} (peft LoraConfig)")


def parse_config(data: Any, source: str = "<config>", overrides: tuple[str, ...] = (),
                 limit: int | None = None) -> PipelineConfig:
    """Validate a pipeline config mapping; every error names the file and the field.

    Everything a run will read from the config is checked here, in under a second and before any model
    loads: each stage's suites are built with its options, its method's options and TRL fields read."""
    _moved(data, source)
    config = from_mapping(PipelineConfig, data, source, source=source, overrides=overrides, limit=limit)
    for suite in config.eval.suites:
        if not is_suite(suite):
            raise TunegateError(f"{source}: eval.suites: unknown suite '{suite}' (known: "
                                f"{', '.join(sorted(suite_names()))}, {', '.join(FAMILY_PATTERNS.values())})")
    if config.eval.backend_options.trust_remote_code is not None:
        raise TunegateError(f"{source}: eval.backend_options.trust_remote_code: set trust_remote_code at the top "
                            f"level of the config (it covers training as well)")
    if not config.stages:
        raise TunegateError(f"{source}: field 'stages' must be a non-empty list")
    names = [s.name for s in config.stages]
    if len(set(names)) != len(names) or "base" in names:
        raise TunegateError(f"{source}: stage names must be unique and not 'base', got {names}")
    for i, stage in enumerate(config.stages):
        _check_stage(config, stage, f"{source}: stages[{i}]")
    return config


def _check_stage(config: PipelineConfig, stage: StageConfig, where: str) -> None:
    """One stage's method, TRL fields, LoRA, method options, suites and knowledge analysis, as the run will read them."""
    if stage.method not in METHODS:
        raise TunegateError(f"{where}: field 'method' must be one of {', '.join(METHODS.names())}, "
                            f"got {stage.method!r}")
    validate_trl_args(stage.method, stage.args, f"{where}.args")
    if stage.lora:
        validate_lora(stage.lora, f"{where}.lora")
    method = get_method(stage.method)
    method.check_config(method.parse_options(stage.options, f"{where}.options"), stage.data, where)
    if stage.knowledge is not None and not isinstance(stage.data, str):
        raise TunegateError(f"{where}.knowledge: needs the stage's 'data' to be a dataset (hub id, path, "
                            f"organism:NAME) whose rows carry 'answer', not a builder")
    evaluated = list(config.eval.suites) + [suite_key(name) for name in config.eval.suites]
    for key, suites in (("trains", stage.trains), ("suites", stage.suites)):
        for suite in suites:
            if suite not in evaluated:
                raise TunegateError(f"{where}.{key}: suite '{suite}' is not evaluated "
                                    f"(eval.suites has: {', '.join(config.eval.suites) or 'none'})")
    config.eval_spec(stage)  # every suite built with the stage's options: a bad option fails now


def _moved(data: Any, source: str) -> None:
    """A field of an older config that now lives elsewhere: one error naming its new home."""
    if not isinstance(data, Mapping):
        return
    for (section, key), home in MOVED.items():
        parts = data.get(section)
        for i, part in enumerate(parts if isinstance(parts, list) else [parts]):
            if isinstance(part, Mapping) and key in part:
                where = f"{section}[{i}]" if isinstance(parts, list) else section
                raise TunegateError(f"{source}: {where}: field '{key}' has moved to {home.replace('[i]', f'[{i}]')}")


def load_config(path: str | Path, *, sets: Sequence[str] = (), limit: int | None = None) -> PipelineConfig:
    """The pipeline config in ``path`` with ``--set KEY=VALUE`` overrides and a ``--limit``, validated as one.

        load_config("configs/qwen3-0.6b-base-sft.yaml", sets=["stages.0.args.max_steps=2",
                    "base_model=twins/qwen3"], limit=8)
    """
    data = read_yaml(path, "config")
    for pair in sets:
        key, value = parse_set(pair, str(path))
        set_path(data, key, value, f"{path}: --set {pair}")
    if limit is not None:
        apply_limit(data, limit, f"{path}: --limit")
    overrides = tuple(f"--set {p}" for p in sets) + ((f"--limit {limit}",) if limit is not None else ())
    return parse_config(data, str(path), overrides=overrides, limit=limit)


def parse_set(pair: str, where: str) -> tuple[str, Any]:
    """``KEY=VALUE``: a dotted path (list items by index) and a YAML value (``8``, ``true``, ``{r: 8}``, text)."""
    key, sep, raw = pair.partition("=")
    if not sep or not key or any(not part for part in key.split(".")):
        raise TunegateError(f"{where}: --set '{pair}': expected KEY=VALUE with a dotted KEY "
                            "(e.g. stages.0.args.max_steps=2)")
    return key, load_yaml(raw, f"{where}: --set '{pair}': VALUE")


def set_path(data: Any, key: str, value: Any, where: str) -> None:
    """Set ``key`` (``stages.0.args.max_steps``) in nested mappings and lists; a mapping gains a missing key,
    a list index must exist, and a path through a scalar is an error."""
    parts = key.split(".")
    node, walked = data, []
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        if isinstance(node, list):
            if not part.isdigit() or int(part) >= len(node):
                raise TunegateError(f"{where}: '{'.'.join(walked) or 'config'}' is a list of {len(node)}, "
                                    f"no item '{part}'")
            index: Any = int(part)
        elif isinstance(node, dict):
            index = part
            if not last and node.get(part) is None:
                node[part] = {}
        else:
            raise TunegateError(f"{where}: '{'.'.join(walked)}' is {type(node).__name__}, not a mapping or list")
        if last:
            node[index] = value
        else:
            node = node[index]
        walked.append(part)


def apply_limit(data: Any, limit: int, where: str) -> None:
    """Cap every stage's training rows at ``limit`` (a smaller limit stays); the eval suites are capped by the
    same ``--limit`` through ``PipelineConfig.eval_spec`` (``EvalSpec.capped``)."""
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise TunegateError(f"{where}: must be a positive integer, got {limit!r}")

    def capped(options: Any) -> Any:
        if options is None:
            options = {}
        if not isinstance(options, dict):  # a wrong type: parse_config names it
            return options
        current = options.get("limit")
        keep = isinstance(current, int) and not isinstance(current, bool) and 0 < current < limit
        return {**options, "limit": current if keep else limit}

    stages = data.get("stages") if isinstance(data, dict) else None
    for stage in stages if isinstance(stages, list) else []:  # another type: parse_config names it
        if isinstance(stage, dict):
            if isinstance(stage.get("data"), dict):  # a builder (identity DPO): its prompts
                stage["data"] = capped(stage["data"])
            else:
                stage["data_options"] = capped(stage.get("data_options"))
