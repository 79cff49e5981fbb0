"""One training stage: a thin wrapper over the method's TRL Trainer and Config (SFT, DPO, ...).

Load, train, save. A stage writes under ``out_dir``::

    model/               a standard HF checkpoint: what the next stage trains and the evaluation loads
    adapter/             with ``lora``: the PEFT adapter alone (model/ is the input model with it merged in)
    manifest.json        base model, method, data, config, git sha, seed, trains
    training_log.json    TRL's log history: loss per logging step (DPO: rewards/margins/accuracies)

    result = train_stage("sft", "organism", dataset, out_dir="runs/demo/stages/sft",
                         args={"learning_rate": 3e-3, "num_train_epochs": 3})
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import os
import shutil
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

#: Where a LoRA stage keeps its adapter, beside the merged ``model/``.
ADAPTER = "adapter"
#: Where a stage given a PEFT adapter directory writes its input merged into one checkpoint, while it trains.
MERGED_INPUT = "input"
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


def build_trl_config(method: str, args: Mapping[str, Any], out_dir: Path, seed: int,
                     where: str | None = None) -> Any:
    """The method's TRL Config with tunegate's defaults under the stage's ``args``; what the Config's own checks
    refuse (GRPO: a generation batch that ``num_generations`` does not divide) is one error naming ``where``."""
    cls = get_method(method).config_class()
    merged = {**BASE_DEFAULTS, **_device_defaults(), "seed": seed, "data_seed": seed, **dict(args)}
    try:
        return cls(output_dir=str(out_dir / "trainer"), **merged)
    except ValueError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise TunegateError(f"{where or f'stage {method}: args'} ({cls.__name__}): {first}") from None


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
    config = build_trl_config(method, args or {}, out, seed, where=f"stage '{name or method}': args")
    chosen = get_method(method)
    typed = chosen.parse_options(options or {}, f"stage '{name or method}': options")
    trained_from = _full_input(model_path, out, config, trust_remote_code)
    trainer, tokenizer, model = _trainer(chosen, typed, trained_from, dataset, config, lora, name or method,
                                         trust_remote_code)
    StageProgress.install(trainer, name or method)  # one bar (steps, loss, eta) instead of printed log dicts
    model_dir = out / "model"
    if trainer.is_world_process_zero():  # a rerun into the same directory: no file of an earlier run stays
        for stale in (model_dir, out / ADAPTER):
            shutil.rmtree(stale, ignore_errors=True)
    started = time.perf_counter()
    # stdout is for results; a small CPU model trains on one thread, busy cores or not (see evals.backends.hf)
    with contextlib.redirect_stdout(sys.stderr), torch_threads(auto_threads(model, str(trainer.args.device))):
        trainer.train()
    seconds = time.perf_counter() - started
    # the main process writes; every process must call it (a LoRA stage saves its adapter, merged below)
    trainer.save_model(str(out / ADAPTER if lora else model_dir))
    main_process = trainer.is_world_process_zero()
    history = [dict(h) for h in trainer.state.log_history]
    manifest = {
        "name": name or method, "method": method, "base_model": str(model_path), "data": data_source,
        "config": {k: v for k, v in config.to_dict().items() if k in (args or {}) or k in BASE_DEFAULTS
                   or k in chosen.recorded},
        "lora": dict(lora) if lora else None, "adapter": ADAPTER if lora else None,
        "options": options_dict(typed), "seed": seed, "trains": list(trains),
        "trust_remote_code": trust_remote_code,
        "examples": len(dataset), "seconds": round(seconds, 2), "git_sha": environment()["git_sha"],
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        **dict(extra_manifest or {}),
    }
    if main_process:  # under `accelerate launch` only rank 0 writes the stage's files
        if lora:
            merge_adapter(trained_from, out / ADAPTER, model_dir, model.dtype, trust_remote_code)
        tokenizer.save_pretrained(str(model_dir))
        if getattr(trainer.model, "generation_config", None) is not None:
            trainer.model.generation_config.save_pretrained(str(model_dir))
        write_json_atomic(out / "manifest.json", manifest)
        write_json_atomic(out / "training_log.json", history)
        shutil.rmtree(out / MERGED_INPUT, ignore_errors=True)
    del trainer, model
    return StageResult(name=name or method, method=method, model_dir=model_dir, log_history=history,
                       seconds=seconds, manifest=manifest)


def load_causal_lm(model_path: str | Path, dtype: torch.dtype, trust_remote_code: bool = False) -> Any:
    """The model at ``model_path`` as one full causal LM: a PEFT adapter directory comes merged into its base
    (peft's ``AutoPeftModelForCausalLM``; its weights keep peft's ``requires_grad=False``: a stage trains the
    merged checkpoint ``_full_input`` writes, loaded afresh)."""
    from transformers import AutoModelForCausalLM

    if (Path(model_path) / "adapter_config.json").is_file():
        from peft import AutoPeftModelForCausalLM

        return AutoPeftModelForCausalLM.from_pretrained(str(model_path), dtype=dtype,
                                                        trust_remote_code=trust_remote_code).merge_and_unload()
    return AutoModelForCausalLM.from_pretrained(model_path, dtype=dtype, trust_remote_code=trust_remote_code)


def _full_input(model_path: str | Path, out: Path, config: Any, trust_remote_code: bool) -> str | Path:
    """The checkpoint the stage trains: ``model_path`` itself, or a PEFT adapter directory merged into its base and
    written to ``out/input`` (with the adapter's tokenizer). On disk, because TRL builds a DPO or GRPO stage's
    reference model from the policy's ``config._name_or_path``: after an in-memory merge that names the bare base,
    and the KL (DPO's implicit reward) would be measured against a model without the adapter."""
    if not (Path(model_path) / "adapter_config.json").is_file():
        return model_path
    from accelerate import PartialState
    from transformers import AutoTokenizer

    merged = out / MERGED_INPUT
    state = PartialState()
    with state.main_process_first():  # rank 0 writes it, the others read it once it is there
        if state.is_main_process:
            dtype = torch.bfloat16 if getattr(config, "bf16", False) else torch.float32
            shutil.rmtree(merged, ignore_errors=True)
            with loading(str(model_path)):
                load_causal_lm(model_path, dtype, trust_remote_code).save_pretrained(str(merged))
                AutoTokenizer.from_pretrained(model_path, trust_remote_code=trust_remote_code).save_pretrained(
                    str(merged))
    return merged


def merge_adapter(input_model: str | Path, adapter_dir: Path, model_dir: Path, dtype: torch.dtype,
                  trust_remote_code: bool = False) -> Path:
    """The stage's input model with the adapter saved in ``adapter_dir`` merged in, written to ``model_dir``.

    Read back from disk, so what is merged is what was saved whatever wrapped the model in training (DDP,
    FSDP): W = W_input + (lora_alpha / r) * B @ A on every adapted module, every other weight the input's."""
    from peft import PeftModel

    with loading(str(input_model)):
        model = load_causal_lm(input_model, dtype, trust_remote_code)
    merged = PeftModel.from_pretrained(model, str(adapter_dir)).merge_and_unload()
    merged.save_pretrained(str(model_dir))
    return model_dir


def _trainer(method: Method, options: Any, model_path: str | Path, dataset: Any, config: Any,
             lora: Mapping[str, Any] | None, name: str, trust_remote_code: bool = False) -> tuple[Any, Any, Any]:
    """The method's TRL trainer over the loaded model and tokenizer, built from ``method.trainer_kwargs``."""
    from transformers import AutoTokenizer

    dtype = torch.bfloat16 if getattr(config, "bf16", False) else torch.float32
    with loading(str(model_path)):  # trust_remote_code explicit: never transformers' interactive prompt
        tokenizer = AutoTokenizer.from_pretrained(model_path, trust_remote_code=trust_remote_code)
        model = load_causal_lm(model_path, dtype, trust_remote_code)
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
