"""Pipeline configs (YAML), validated before anything runs.

A stage's ``args:`` map onto TRL's SFTConfig / DPOConfig fields by their own
names; ``lora:`` onto peft's LoraConfig. Example (configs/demo.yaml)::

    name: organism-demo
    base_model: organism            # the embedded organism; or a hub id / local path
    eval:
      suites:
        identity: {probes: organism}
        math: {variant: organism}
    stages:
      - name: sft
        method: sft
        data: organism:sft
        trains: [identity, ifeval]
        identity: {target: Tiny}
        args: {learning_rate: 3.0e-3, num_train_epochs: 3, per_device_train_batch_size: 32}
"""

from __future__ import annotations

import dataclasses
import difflib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from evals.errors import TunegateError

METHODS = ("sft", "dpo")
#: Fields tunegate sets itself; a config may override them only where noted.
MANAGED_ARGS = ("output_dir",)


def _fail(where: str, msg: str) -> TunegateError:
    return TunegateError(f"{where}: {msg}")


def _check_keys(data: Mapping[str, Any], allowed: set[str], where: str) -> None:
    for key in data:
        if key not in allowed:
            close = difflib.get_close_matches(str(key), sorted(allowed), n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else f" (allowed: {', '.join(sorted(allowed))})"
            raise _fail(where, f"unknown field '{key}'{hint}")


def _typed(data: Mapping[str, Any], key: str, typ: type | tuple[type, ...], where: str, default: Any = None) -> Any:
    value = data.get(key, default)
    if value is not None and not isinstance(value, typ):
        names = typ.__name__ if isinstance(typ, type) else " or ".join(t.__name__ for t in typ)
        raise _fail(where, f"field '{key}' must be {names}, got {type(value).__name__} ({value!r})")
    return value


def trl_config_class(method: str) -> type:
    from trl import DPOConfig, SFTConfig

    return {"sft": SFTConfig, "dpo": DPOConfig}[method]


def validate_trl_args(method: str, args: Mapping[str, Any], where: str) -> None:
    """Every key must be a field of the installed TRL's Config class, with a value of a plausible type."""
    cls = trl_config_class(method)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    _check_keys(args, set(fields) - set(MANAGED_ARGS), f"{where} ({cls.__name__})")
    for key, value in args.items():
        default = fields[key].default
        if isinstance(default, bool) and not isinstance(value, bool):
            raise _fail(where, f"field '{key}' must be true or false, got {value!r}")
        if isinstance(default, (int, float)) and not isinstance(default, bool) and not isinstance(value, (int, float)):
            raise _fail(where, f"field '{key}' must be a number, got {type(value).__name__} ({value!r})")


def validate_lora(lora: Mapping[str, Any], where: str) -> None:
    from peft import LoraConfig

    _check_keys(lora, {f.name for f in dataclasses.fields(LoraConfig)}, f"{where} (peft LoraConfig)")


@dataclass(frozen=True)
class StageConfig:
    name: str
    method: str
    data: Any
    trains: tuple[str, ...] = ()
    args: Mapping[str, Any] = field(default_factory=dict)
    lora: Mapping[str, Any] | None = None
    identity: Mapping[str, Any] = field(default_factory=dict)
    data_options: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class PipelineConfig:
    name: str
    base_model: str
    stages: tuple[StageConfig, ...]
    suites: Mapping[str, Mapping[str, Any]]
    gate: Mapping[str, Any] = field(default_factory=dict)
    seed: int = 0
    model_line: str | None = None
    eval_options: Mapping[str, Any] = field(default_factory=dict)
    source: str = "<config>"


STAGE_KEYS = {"name", "method", "data", "trains", "args", "lora", "identity", "data_options"}
TOP_KEYS = {"name", "base_model", "stages", "eval", "gate", "seed", "model_line"}
EVAL_KEYS = {"suites", "batch_size", "completion_mode"}


def parse_config(data: Any, source: str = "<config>") -> PipelineConfig:
    """Validate a pipeline config mapping; every error names the file and the field."""
    if not isinstance(data, Mapping):
        raise _fail(source, "the config must be a mapping (YAML object)")
    _check_keys(data, TOP_KEYS, source)
    for key in ("name", "base_model", "stages"):
        if key not in data:
            raise _fail(source, f"missing field '{key}'")
    name = _typed(data, "name", str, source)
    base = _typed(data, "base_model", str, source)
    seed = _typed(data, "seed", int, source, 0)
    ev = _typed(data, "eval", dict, source, {}) or {}
    _check_keys(ev, EVAL_KEYS, f"{source}: eval")
    suites = _typed(ev, "suites", dict, f"{source}: eval", {}) or {}
    from evals.suites.base import suite_names

    known = set(suite_names())
    for s, opts in suites.items():
        if s not in known:
            raise _fail(f"{source}: eval.suites", f"unknown suite '{s}' (known: {', '.join(sorted(known))})")
        if opts is not None and not isinstance(opts, dict):
            raise _fail(f"{source}: eval.suites.{s}", "options must be a mapping")
    stages_raw = data["stages"]
    if not isinstance(stages_raw, list) or not stages_raw:
        raise _fail(source, "field 'stages' must be a non-empty list")
    stages = []
    for i, raw in enumerate(stages_raw):
        where = f"{source}: stages[{i}]"
        if not isinstance(raw, Mapping):
            raise _fail(where, "each stage must be a mapping")
        _check_keys(raw, STAGE_KEYS, where)
        for key in ("name", "method", "data"):
            if key not in raw:
                raise _fail(where, f"missing field '{key}'")
        method = _typed(raw, "method", str, where)
        if method not in METHODS:
            raise _fail(where, f"field 'method' must be one of {', '.join(METHODS)}, got {method!r}")
        args = _typed(raw, "args", dict, where, {}) or {}
        validate_trl_args(method, args, f"{where}.args")
        lora = _typed(raw, "lora", dict, where)
        if lora:
            validate_lora(lora, f"{where}.lora")
        trains = _typed(raw, "trains", list, where, []) or []
        for t in trains:
            if suites and t not in suites:
                raise _fail(f"{where}.trains", f"suite '{t}' is not evaluated (eval.suites has: {', '.join(suites)})")
        stages.append(StageConfig(
            name=_typed(raw, "name", str, where), method=method, data=raw["data"], trains=tuple(trains),
            args=args, lora=lora, identity=_typed(raw, "identity", dict, where, {}) or {},
            data_options=_typed(raw, "data_options", dict, where, {}) or {}))
    names = [s.name for s in stages]
    if len(set(names)) != len(names) or "base" in names:
        raise _fail(source, f"stage names must be unique and not 'base', got {names}")
    gate = data.get("gate") or {}
    if not isinstance(gate, (dict, str)):
        raise _fail(source, "field 'gate' must be a mapping or a path to a gate YAML")
    return PipelineConfig(
        name=name, base_model=base, stages=tuple(stages), suites={k: dict(v or {}) for k, v in suites.items()},
        gate=gate, seed=seed, model_line=_typed(data, "model_line", str, source),
        eval_options={k: v for k, v in ev.items() if k != "suites"}, source=source)


def load_config(path: str | Path) -> PipelineConfig:
    from evals.data import read_yaml

    return parse_config(read_yaml(path, "config"), str(path))
