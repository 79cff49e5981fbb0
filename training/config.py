"""Pipeline configs (YAML), validated before anything runs.

A stage's ``args:`` map onto its TRL Config's fields (SFTConfig, DPOConfig) by their own names;
``lora:`` onto peft's LoraConfig. The fields of each level are declared once below, with their help;
``typed_config.from_mapping`` reports unknown, missing and mistyped fields, and ``parse_config``
adds what a type cannot say (TRL's fields, known suites, unique stage names). Example
(``training/demo.yaml``, shortened)::

    name: organism-demo
    base_model: organism            # the embedded organism; or a hub id / local path
    eval:
      suites:
        identity: {probes: organism}
        math: {variant: organism}
      # backend: openai                            # hf (default), vllm or openai
      # backend_options: {base_url: "http://127.0.0.1:8000/v1"}
    stages:
      - name: sft
        method: sft
        data: organism:sft
        trains: [identity, ifeval]
        identity: {target: Tiny}
        args: {learning_rate: 1.0e-3, num_train_epochs: 4, per_device_train_batch_size: 16}
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

from tunegate.evals.analysis.knowledge import KnowledgeOptions
from tunegate.evals.analysis.shift import ShiftOptions
from tunegate.evals.backends import backend_kwargs
from tunegate.core.errors import TunegateError
from tunegate.core.files import load_yaml, read_yaml
from tunegate.evals.suites import suite_names
from tunegate.core.typed_config import check_keys, from_mapping
from tunegate.training.identity_dpo import NEUTRAL_SYSTEM_PROMPT
from tunegate.training.methods import METHODS, get_method

#: Fields of the TRL Config that tunegate sets itself.
MANAGED_ARGS = ("output_dir",)


@dataclass(frozen=True)
class StageConfig:
    """One training stage: a method over a dataset, and the suites it trains."""

    name: str = field(metadata={"help": "stage name (unique, not 'base'); names the stage's records and directory"})
    method: str = field(metadata={"help": "training method: a name in tunegate.training.methods.METHODS (sft, dpo)"})
    data: Any = field(metadata={"help": "dataset (hub id, local path, organism:NAME) or a builder mapping"})
    trains: tuple[str, ...] = field(default=(), metadata={"help": "suites this stage trains: gated on targets, "
                                                                   "the others on non-inferiority"})
    args: dict[str, Any] = field(default_factory=dict, metadata={"help": "fields of the method's TRL Config"})
    lora: dict[str, Any] | None = field(default=None, metadata={"help": "peft LoraConfig fields; null: full fine-tuning"})
    identity: dict[str, Any] = field(default_factory=dict,
                                     metadata={"help": "identity suite options for this stage (target, forbidden)"})
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
    batch_size: int | None = field(default=None, metadata={"help": "generation batch size of the hf backend (default: "
                                                                   "from free GPU memory); vllm and servers batch themselves"})
    completion_mode: bool = field(default=False, metadata={"help": "send raw prompts, no chat template"})
    noise_items: int | None = field(default=None, metadata={
        "help": "measure the A/A noise floor (tunegate noise: batch size N vs 1, and dtypes on CUDA) of the base "
                "model on this many items per suite; every stage's comparison shows it (None: not measured; "
                "skipped with a log line on another backend)"})
    chat_template_kwargs: dict[str, Any] = field(
        default_factory=dict, metadata={"help": "extra variables of the chat template, e.g. {enable_thinking: false} "
                                                "for Qwen3 (kept in each record's generation settings)"})
    backend: str = field(default="hf", metadata={"help": "evaluation backend: hf, vllm or openai "
                                                         "(tunegate.evals.backends.BACKENDS)"})
    backend_options: dict[str, Any] = field(default_factory=dict, metadata={
        "help": "the backend's options by name (tunegate.evals.backends.BackendOptions), e.g. "
                "{base_url: 'http://127.0.0.1:8000/v1'} for openai or {tensor_parallel_size: 2} for vllm"})

    def backend_kwargs(self, where: str = "eval") -> dict[str, Any]:
        """``{"backend": ..., **options}`` for the evaluation backend; an option of another backend is one
        clear error naming ``where``."""
        options = {"batch_size": self.batch_size if self.backend == "hf" else None,
                   "completion_mode": self.completion_mode or None,
                   "chat_template_kwargs": self.chat_template_kwargs or None, **self.backend_options}
        return {"backend": self.backend, **backend_kwargs(self.backend, options, where)}


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
    trust_remote_code: bool = field(default=False, metadata={
        "help": "run the Python code a checkpoint ships (config.json auto_map) in training, evaluation and analyses; "
                "off unless set (kept in each record and stage manifest)"})
    source: str = field(default="<config>", metadata={"help": "the file this config was read from"})
    overrides: tuple[str, ...] = field(default=(), metadata={"help": "the --set/--limit applied to the file"})

    @property
    def suites(self) -> dict[str, dict[str, Any]]:
        """Each evaluated suite's options (an empty mapping where the config gives none).

        The identity suite asks with the system prompt the identity-DPO builder trains with (unless it sets its
        own ``system_prompt``, ``null`` included): Qwen2.5's template would otherwise add "You are Qwen, created
        by Alibaba Cloud", telling the model at eval time the very name DPO trains away.
        """
        options = {name: dict(opts or {}) for name, opts in self.eval.suites.items()}
        builder = next((s.data for s in self.stages if isinstance(s.data, Mapping) and s.data.get("builder") == "identity"),
                       None)
        if "identity" in options and builder is not None and "system_prompt" not in options["identity"]:
            options["identity"]["system_prompt"] = builder.get("system_prompt", NEUTRAL_SYSTEM_PROMPT)
        return options


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


def parse_config(data: Any, source: str = "<config>", overrides: tuple[str, ...] = ()) -> PipelineConfig:
    """Validate a pipeline config mapping; every error names the file and the field."""
    config = from_mapping(PipelineConfig, data, source, source=source, overrides=overrides)
    known = set(suite_names())
    for suite in config.eval.suites:
        if suite not in known:
            raise TunegateError(f"{source}: eval.suites: unknown suite '{suite}' (known: {', '.join(sorted(known))})")
    config.eval.backend_kwargs(f"{source}: eval")  # an unknown backend or a misplaced option fails now
    if "trust_remote_code" in config.eval.backend_options:
        raise TunegateError(f"{source}: eval.backend_options.trust_remote_code: set trust_remote_code at the top "
                            f"level of the config (it covers training as well)")
    if not config.stages:
        raise TunegateError(f"{source}: field 'stages' must be a non-empty list")
    if config.eval.noise_items is not None and config.eval.noise_items < 1:
        raise TunegateError(f"{source}: eval.noise_items must be a positive number of items, got {config.eval.noise_items}")
    names = [s.name for s in config.stages]
    if len(set(names)) != len(names) or "base" in names:
        raise TunegateError(f"{source}: stage names must be unique and not 'base', got {names}")
    for i, stage in enumerate(config.stages):
        where = f"{source}: stages[{i}]"
        if stage.method not in METHODS:
            raise TunegateError(f"{where}: field 'method' must be one of {', '.join(METHODS.names())}, "
                                f"got {stage.method!r}")
        validate_trl_args(stage.method, stage.args, f"{where}.args")
        if stage.lora:
            validate_lora(stage.lora, f"{where}.lora")
        if stage.knowledge is not None and not isinstance(stage.data, str):
            raise TunegateError(f"{where}.knowledge: needs the stage's 'data' to be a dataset (hub id, path, "
                                f"organism:NAME) whose rows carry 'answer', not a builder")
        for suite in stage.trains:
            if config.eval.suites and suite not in config.eval.suites:
                raise TunegateError(f"{where}.trains: suite '{suite}' is not evaluated "
                                    f"(eval.suites has: {', '.join(config.eval.suites)})")
    return config


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
    return parse_config(data, str(path), overrides=overrides)


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
    """Cap every eval suite's items and every stage's training rows at ``limit`` (a smaller limit stays)."""
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

    suites = (data.get("eval") or {}).get("suites") if isinstance(data, dict) else None
    if isinstance(suites, dict):
        for name in suites:
            suites[name] = capped(suites[name])
    stages = data.get("stages") if isinstance(data, dict) else None
    for stage in stages if isinstance(stages, list) else []:  # another type: parse_config names it
        if isinstance(stage, dict):
            if isinstance(stage.get("data"), dict):  # a builder (identity DPO): its prompts
                stage["data"] = capped(stage["data"])
            else:
                stage["data_options"] = capped(stage.get("data_options"))
