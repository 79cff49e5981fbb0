"""One training stage under ``accelerate launch``: DDP or FSDP across processes, from the same pipeline config.

``launch_stage`` writes the stage as a JSON spec (plus its rows as JSONL) and runs::

    python -m accelerate.commands.launch --num_processes 8 --multi_gpu -m tunegate.training.launch DIR/launch/spec.json
    ACCELERATE_USE_CPU=true python -m accelerate.commands.launch --num_processes 2 --multi_gpu \
        -m tunegate.training.launch DIR/launch/spec.json      # CPU: 2 processes, gloo (accelerate's --cpu runs just one)
    python -m accelerate.commands.launch --config_file configs/accelerate/fsdp.yaml -m tunegate.training.launch ...

Each process runs ``tunegate.training.stages.train_stage`` on the spec; TRL's trainer
shards the batches (per-device batch = the config's ``per_device_train_batch_size``,
so the global batch is N times that) and rank 0 writes the checkpoint, manifest
and training log where a single-process run writes them. A spec (``spec.json``)::

    {"method": "sft", "method_path": "tunegate.training.methods.sft:SFT", "model_path": "organism",
     "dataset": "runs/demo/stages/sft/launch/rows.jsonl", "out_dir": "runs/demo/stages/sft", "name": "sft",
     "args": {"learning_rate": 0.002, "max_steps": 3}, "lora": null, "options": {}, "seed": 0,
     "data_source": "organism:sft", "trains": ["identity"], "extra_manifest": {}}

``options`` are the method's own (its ``Options``), parsed again in every process; ``method_path`` is
where each process imports the method from, so a method registered from outside tunegate trains under
a launch too. The pipeline uses this when run with ``--num-processes N`` (N > 1) or ``--accelerate-config``.
"""

from __future__ import annotations

import dataclasses
import os
import socket
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

from tunegate.core.errors import TunegateError, error_line, exit_code
from tunegate.core.files import read_json, read_jsonl, write_json_atomic, write_jsonl
from tunegate.core.registry import load_object
from tunegate.training.methods import METHODS
from tunegate.training.stages import StageResult, quiet_training_logs, train_stage


@dataclass(frozen=True)
class StageSpec:
    """Everything ``train_stage`` needs, as plain JSON: the arguments of one stage run."""

    method: str = field(metadata={"help": "training method: a name in tunegate.training.methods.METHODS"})
    model_path: str = field(metadata={"help": "input checkpoint directory (or hub id)"})
    dataset: str = field(metadata={"help": "JSONL file of the training rows (TRL conversational format)"})
    out_dir: str = field(metadata={"help": "stage directory: model/, manifest.json, training_log.json"})
    name: str | None = field(default=None, metadata={"help": "stage name (default: the method)"})
    args: Mapping[str, Any] = field(default_factory=dict, metadata={"help": "TRL SFTConfig/DPOConfig fields"})
    lora: Mapping[str, Any] | None = field(default=None, metadata={"help": "peft LoraConfig fields, or null"})
    seed: int = field(default=0, metadata={"help": "seed of the run and of the data order"})
    data_source: Any = field(default=None, metadata={"help": "where the rows came from (kept in the manifest)"})
    trains: tuple[str, ...] = field(default=(), metadata={"help": "suites the stage trains"})
    extra_manifest: Mapping[str, Any] = field(default_factory=dict, metadata={"help": "extra manifest fields"})
    options: Mapping[str, Any] = field(default_factory=dict, metadata={"help": "the method's own options (its Options)"})
    method_path: str | None = field(default=None, metadata={
        "help": "module:attribute of the method class; a process that does not know the method name imports "
                "and registers it from here (default: the registry's entry, filled in by __post_init__)"})
    trust_remote_code: bool = field(default=False, metadata={"help": "run the input checkpoint's own code (auto_map)"})

    def __post_init__(self) -> None:
        if self.method not in METHODS and self.method_path:  # registered from outside tunegate, in the parent
            METHODS.register(self.method)(load_object(self.method_path))
        if self.method not in METHODS:
            raise TunegateError(f"stage spec: method must be one of {', '.join(METHODS.names())}, got {self.method!r}")
        if self.method_path is None:
            object.__setattr__(self, "method_path", METHODS.path(self.method))

    def save(self, path: str | Path) -> Path:
        return write_json_atomic(path, dataclasses.asdict(self))

    @classmethod
    def load(cls, path: str | Path) -> "StageSpec":
        data = read_json(path)
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise TunegateError(f"{path}: unknown field(s) {unknown} (known: {sorted(names)})")
        try:
            return cls(**{**data, "trains": tuple(data.get("trains") or ())})
        except TypeError as exc:
            raise TunegateError(f"{path}: {exc}") from None


def run_spec(spec: StageSpec) -> Any:
    """Train the stage of ``spec`` in this process (one rank of a launch, or alone)."""
    from datasets import Dataset

    quiet_training_logs()
    world = int(os.environ.get("WORLD_SIZE", "1"))
    # every rank trains; train_stage writes the checkpoint, manifest and log from rank 0 only
    return train_stage(spec.method, spec.model_path, Dataset.from_list(read_jsonl(spec.dataset)), out_dir=spec.out_dir,
                         name=spec.name, args=spec.args, lora=spec.lora, seed=spec.seed,
                         data_source=spec.data_source, trains=spec.trains, options=spec.options,
                         trust_remote_code=spec.trust_remote_code,
                         extra_manifest={**dict(spec.extra_manifest), "num_processes": world})


def _on_cpu(cpu: bool | None) -> bool:
    if cpu is not None:
        return cpu
    import torch

    return not torch.cuda.is_available()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def launch_command(module_args: Sequence[str], num_processes: int, accelerate_config: str | Path | None = None,
                   *, cpu: bool | None = None) -> list[str]:
    """``accelerate launch ... -m MODULE ARGS`` on ``num_processes`` local processes (this interpreter's venv).

    ``module_args`` is the module and its arguments, e.g. ``["tunegate.training.launch", "spec.json"]`` or
    ``["tunegate", "eval", MODEL, ...]``. Without an accelerate config file, N > 1 processes are
    spawned with ``--multi_gpu`` (NCCL on GPUs; on CPU the processes join a gloo group, see
    ``launch_env``). A config file (``configs/accelerate/*.yaml``) chooses the backend (DDP, FSDP) itself.
    """
    if num_processes < 1:
        raise TunegateError(f"--num-processes must be at least 1, got {num_processes}")
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--num_machines", "1",
           "--main_process_port", str(_free_port())]
    if accelerate_config is None or num_processes > 1:  # with a config file, N = 1 means "as the file says"
        cmd += ["--num_processes", str(num_processes)]
    if accelerate_config is not None:
        check_accelerate_config(accelerate_config)
        cmd += ["--config_file", str(accelerate_config)]
    else:
        cmd += ["--dynamo_backend", "no"]
        # accelerate's --cpu runs ONE process unless MPI is set up; --multi_gpu spawns N local processes
        # (torch.distributed.run) and each joins a gloo group on CPU (TRL's use_cpu / ACCELERATE_USE_CPU)
        cmd += ["--multi_gpu"] if num_processes > 1 else (["--cpu"] if _on_cpu(cpu) else [])
    return cmd + ["-m", *module_args]


def check_accelerate_config(path: str | Path) -> None:
    """An accelerate config file that exists and that accelerate reads; otherwise one line naming the flag."""
    if not Path(path).is_file():
        raise TunegateError(f"--accelerate-config: '{path}' not found")
    from accelerate.commands.config.config_args import load_config_from_file

    try:
        load_config_from_file(str(path))
    except Exception as exc:  # noqa: BLE001 - accelerate raises yaml, key and value errors alike
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise TunegateError(f"--accelerate-config: '{path}': accelerate cannot read it ({first})") from None


def launch_env(cpu: bool | None = None) -> dict[str, str]:
    """This process's environment for a launch; on CPU with ``ACCELERATE_USE_CPU``.

    ``ACCELERATE_USE_CPU`` makes accelerate pick the MULTI_CPU/gloo set-up in each spawned process;
    ``tunegate.evals.distributed.init_from_env`` reads it too.
    """
    env = dict(os.environ)
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    if _on_cpu(cpu):
        env["ACCELERATE_USE_CPU"] = "true"
    return env


def launch_stage(spec: StageSpec, num_processes: int, accelerate_config: str | Path | None = None,
                 *, cpu: bool | None = None) -> Any:
    """Train ``spec`` under ``accelerate launch`` in a subprocess; the StageResult rank 0 wrote.

    Raises a TunegateError naming the command when the launch fails (the processes' output
    goes to this process's stdout/stderr as it happens).
    """
    out = Path(spec.out_dir)
    spec_path = spec.save(out / "launch" / "spec.json")
    cmd = launch_command(["tunegate.training.launch", str(spec_path)], num_processes, accelerate_config, cpu=cpu)
    proc = subprocess.run(cmd, env=launch_env(cpu), check=False)
    if proc.returncode != 0:
        raise TunegateError(f"stage '{spec.name or spec.method}': `{' '.join(cmd)}` failed with exit code "
                            f"{proc.returncode} (its output is above)")
    manifest = read_json(out / "manifest.json")
    return StageResult(name=manifest["name"], method=spec.method, model_dir=out / "model",
                       log_history=read_json(out / "training_log.json"), seconds=float(manifest["seconds"]),
                       manifest=manifest)


def train_stage_launched(method: str, model_path: str | Path, rows: Sequence[Mapping[str, Any]], *,
                         out_dir: str | Path, num_processes: int, accelerate_config: str | Path | None = None,
                         **stage_kwargs: Any) -> Any:
    """``tunegate.training.stages.train_stage`` (rows instead of a Dataset) run on ``num_processes`` processes."""
    out = Path(out_dir)
    data = write_jsonl(out / "launch" / "rows.jsonl", rows)
    kwargs = {**stage_kwargs, "out_dir": str(out), "trains": tuple(stage_kwargs.get("trains") or ())}
    spec = StageSpec(method=method, model_path=str(model_path), dataset=str(data), **kwargs)
    return launch_stage(spec, num_processes, accelerate_config)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if len(argv) != 1:
        print("usage: python -m tunegate.training.launch STAGE_SPEC.json  (usually under `accelerate launch`)", file=sys.stderr)
        return 2
    try:
        run_spec(StageSpec.load(argv[0]))
    except Exception as exc:  # noqa: BLE001 - one line, and never 1 (a failed gate) for a failed launch
        print(f"tunegate: {error_line(exc)}", file=sys.stderr)
        return exit_code(exc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
