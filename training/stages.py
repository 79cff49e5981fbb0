"""One training stage: a thin wrapper over the method's TRL Trainer and Config (SFT, DPO, ...).

Load, train, save. A stage writes under ``out_dir``::

    model/               a standard HF checkpoint (or a PEFT adapter when ``lora`` is set)
    manifest.json        base model, method, data, config, git sha, seed, trains
    training_log.json    TRL's log history: loss per logging step (DPO: rewards/margins/accuracies)

    result = train_stage("sft", "organism", dataset, out_dir="runs/demo/stages/sft",
                         args={"learning_rate": 3e-3, "num_train_epochs": 3})
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import torch

from tunegate.evals.backends.hf import auto_threads, torch_threads
from tunegate.core.env import environment
from tunegate.core.errors import TunegateError
from tunegate.core.files import write_json_atomic
from tunegate.evals.models import loading
from tunegate.training.methods import Method, get_method
from tunegate.training.methods.base import options_dict

#: Defaults tunegate sets on every TRL Config (a stage's ``args`` override them).
BASE_DEFAULTS: dict[str, Any] = {
    "report_to": "none",
    "save_strategy": "no",
    "logging_steps": 5,
    "disable_tqdm": False,
    "dataloader_num_workers": 0,
}


@dataclass(frozen=True)
class StageResult:
    name: str
    method: str
    model_dir: Path
    log_history: list[dict[str, Any]]
    seconds: float
    manifest: dict[str, Any]


def _device_defaults() -> dict[str, Any]:
    if torch.cuda.is_available():
        return {"bf16": torch.cuda.is_bf16_supported()}
    return {"use_cpu": True, "bf16": False}  # TRL defaults bf16 on; bf16 autocast on CPU is several times slower


def build_trl_config(method: str, args: Mapping[str, Any], out_dir: Path, seed: int) -> Any:
    cls = get_method(method).config_class()
    merged = {**BASE_DEFAULTS, **_device_defaults(), "seed": seed, "data_seed": seed, **dict(args)}
    return cls(output_dir=str(out_dir / "trainer"), **merged)


def _lora_config(lora: Mapping[str, Any] | None) -> Any:
    if not lora:
        return None
    from peft import LoraConfig

    return LoraConfig(**{"task_type": "CAUSAL_LM", **dict(lora)})


def train_stage(method: str, model_path: str | Path, dataset: Any, *, out_dir: str | Path, name: str | None = None,
                args: Mapping[str, Any] | None = None, lora: Mapping[str, Any] | None = None, seed: int = 0,
                data_source: Any = None, trains: tuple[str, ...] = (), extra_manifest: Mapping[str, Any] | None = None,
                options: Mapping[str, Any] | None = None, trust_remote_code: bool = False) -> StageResult:
    """Train one stage with TRL and save the checkpoint, manifest and training log.

    ``options`` are the method's own (its ``Options`` fields, as the stage's ``options:`` gives them);
    ``trust_remote_code`` runs the Python code the input checkpoint ships (config.json auto_map): off
    unless the pipeline config says ``trust_remote_code: true``, and kept in the manifest."""
    from transformers import set_seed

    from tunegate.training.callbacks import StageProgress

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    set_seed(seed)
    config = build_trl_config(method, args or {}, out, seed)
    chosen = get_method(method)
    typed = chosen.parse_options(options or {}, f"stage '{name or method}': options")
    trainer, tokenizer, model = _trainer(chosen, typed, model_path, dataset, config, lora, name or method,
                                         trust_remote_code)
    StageProgress.install(trainer, name or method)  # one bar (steps, loss, eta) instead of printed log dicts
    started = time.perf_counter()
    # stdout is for results; a small CPU model trains on one thread, busy cores or not (see evals.backends.hf)
    with contextlib.redirect_stdout(sys.stderr), torch_threads(auto_threads(model, str(trainer.args.device))):
        trainer.train()
    seconds = time.perf_counter() - started
    model_dir = out / "model"
    trainer.save_model(str(model_dir))  # the main process writes; every process must call it
    main_process = trainer.is_world_process_zero()
    history = [dict(h) for h in trainer.state.log_history]
    manifest = {
        "name": name or method, "method": method, "base_model": str(model_path), "data": data_source,
        "config": {k: v for k, v in config.to_dict().items() if k in (args or {}) or k in BASE_DEFAULTS
                   or k in ("learning_rate", "num_train_epochs", "per_device_train_batch_size",
                            "gradient_accumulation_steps", "beta", "max_length", "seed")},
        "lora": dict(lora) if lora else None, "options": options_dict(typed), "seed": seed, "trains": list(trains),
        "trust_remote_code": trust_remote_code,
        "examples": len(dataset), "seconds": round(seconds, 2), "git_sha": environment()["git_sha"],
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        **dict(extra_manifest or {}),
    }
    if main_process:  # under `accelerate launch` only rank 0 writes the stage's files
        tokenizer.save_pretrained(str(model_dir))
        if getattr(trainer.model, "generation_config", None) is not None:
            trainer.model.generation_config.save_pretrained(str(model_dir))
        write_json_atomic(out / "manifest.json", manifest)
        write_json_atomic(out / "training_log.json", history)
    del trainer, model
    return StageResult(name=name or method, method=method, model_dir=model_dir, log_history=history,
                       seconds=seconds, manifest=manifest)


def _trainer(method: Method, options: Any, model_path: str | Path, dataset: Any, config: Any,
             lora: Mapping[str, Any] | None, name: str, trust_remote_code: bool = False) -> tuple[Any, Any, Any]:
    """The method's TRL trainer over the loaded model and tokenizer, built from ``method.trainer_kwargs``."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    dtype = torch.bfloat16 if getattr(config, "bf16", False) else torch.float32
    with loading(str(model_path)):  # trust_remote_code explicit: never transformers' interactive prompt
        tokenizer = AutoTokenizer.from_pretrained(model_path, trust_remote_code=trust_remote_code)
        model = AutoModelForCausalLM.from_pretrained(model_path, dtype=dtype, trust_remote_code=trust_remote_code)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    trainer_cls = method.trainer_class()
    kwargs = method.trainer_kwargs(options, model=model, args=config, train_dataset=dataset,
                                   processing_class=tokenizer, peft_config=_lora_config(lora))
    try:
        return trainer_cls(**kwargs), tokenizer, model
    except (ValueError, RuntimeError) as exc:  # TRL's checks of the data, template and config: one clear line
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise TunegateError(f"stage '{name}': {trainer_cls.__name__} cannot train {model_path}: {first}") from None


def quiet_training_logs() -> None:
    """Keep transformers/TRL from printing a warning per step on the organism."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
