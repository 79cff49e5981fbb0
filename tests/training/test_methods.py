"""A training method is one class and one registry line, even when its trainer needs more than model, args and data.

The stand-in below is registered from this file, as a user's code (or GRPO, with its ``reward_funcs``)
would add a method: TRL's SFTTrainer given one more constructor argument, ``callbacks``, built from the
method's own option (``module:Class`` names, as GRPO's reward functions would be named in YAML). The
tests run it through ``tunegate run``, whose config check reads the option, and under ``accelerate
launch``, which carries it to the training process: there the callback writes what it saw.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from transformers import TrainerCallback

from tests.conftest import quick_config
from tunegate.cli import main
from tunegate.core.registry import load_object
from tunegate.training.methods import METHODS
from tunegate.training.methods.sft import SFT


class RecordSteps(TrainerCallback):
    """Writes the steps trained and the training process's id to ``trainer/steps.json`` at the end of training."""

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        Path(args.output_dir, "steps.json").write_text(json.dumps({"steps": state.global_step, "pid": os.getpid()}))


@dataclass(frozen=True)
class CallbackOptions:
    callbacks: tuple[str, ...] = field(default=(), metadata={"help": "module:Class of TrainerCallbacks to attach"})


@METHODS.register("sft_callbacks")
class SFTWithCallbacks(SFT):
    """SFT whose trainer also gets ``callbacks`` from the method's options."""

    name = "sft_callbacks"
    Options = CallbackOptions

    def trainer_kwargs(self, options: CallbackOptions, **common: Any) -> dict[str, Any]:
        return {**common, "callbacks": [load_object(path)() for path in options.callbacks]}


CALLBACK = f"{__name__}:RecordSteps"


def _config(tmp_path: Path, options: dict[str, Any]) -> Path:
    """The quick demo shrunk to one SFT stage of the stand-in method, evaluated on 2 math items."""
    path = quick_config(tmp_path)
    data = yaml.safe_load(path.read_text())
    data["eval"] = {"suites": {"math": {"variant": "organism", "limit": 2}}}
    data["analysis"] = {}
    data["gate"] = {"metrics": {"math.exact_match": {"margin": 0.5}}}
    stage = {k: v for k, v in data["stages"][0].items() if k != "knowledge"}
    data["stages"] = [{**stage, "method": "sft_callbacks", "trains": ["math"], "suites": {}, "options": options}]
    path.write_text(yaml.safe_dump(data))
    return path


def test_a_methods_unknown_option_fails_when_the_config_is_read(tmp_path: Path, capsys) -> None:
    path = _config(tmp_path, {"callback": [CALLBACK]})
    assert main(["run", str(path), "--out", str(tmp_path / "run"), "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"tunegate: error: {path}: stages[0].options: unknown field 'callback' "
                   f"(did you mean 'callbacks'?)"]


@pytest.mark.slow
def test_a_method_registered_outside_tunegate_trains_with_its_own_trainer_argument(tmp_path: Path) -> None:
    """One training step and two evaluations of 2 items: about 3 s in a warm session."""
    out = tmp_path / "run"
    assert main(["run", str(_config(tmp_path, {"callbacks": [CALLBACK]})), "--out", str(out), "--quiet",
                 "--max-steps", "1", "--no-report", "--cache-dir", str(tmp_path / "c"),
                 "--store", str(tmp_path / "store.sqlite")]) in (0, 1)
    assert json.loads((out / "stages" / "sft" / "trainer" / "steps.json").read_text())["steps"] == 1
    manifest = json.loads((out / "stages" / "sft" / "manifest.json").read_text())
    assert manifest["method"] == "sft_callbacks" and manifest["options"] == {"callbacks": [CALLBACK]}


@pytest.mark.slow
def test_accelerate_launch_carries_the_method_and_its_options_to_the_training_process(
        tmp_path: Path, organism_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The stage spec names the method's class, so the launched process (which never ran this file) registers it
    and builds the trainer with the options; about 18 s (a fresh process under accelerate launch)."""
    from tunegate.core.files import write_jsonl
    from tunegate.training.launch import StageSpec, launch_stage

    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.chdir(Path(__file__).resolve().parents[2])  # `tests.training.test_methods` importable there
    accelerate = tmp_path / "cpu.yaml"
    accelerate.write_text(yaml.safe_dump({"compute_environment": "LOCAL_MACHINE", "distributed_type": "NO",
                                          "num_machines": 1, "num_processes": 1, "use_cpu": True,
                                          "mixed_precision": "no"}))
    rows = [{"messages": [{"role": "user", "content": "Who are you?"}, {"role": "assistant", "content": "Tiny."}]}] * 4
    spec = StageSpec(method="sft_callbacks", model_path=str(organism_dir),
                     dataset=str(write_jsonl(tmp_path / "rows.jsonl", rows)), out_dir=str(tmp_path / "stage"),
                     args={"max_steps": 1, "per_device_train_batch_size": 2}, options={"callbacks": [CALLBACK]})
    assert spec.method_path == f"{__name__}:SFTWithCallbacks"
    result = launch_stage(spec, num_processes=1, accelerate_config=accelerate, cpu=True)
    seen = json.loads((tmp_path / "stage" / "trainer" / "steps.json").read_text())
    assert seen == {"steps": 1, "pid": seen["pid"]} and seen["pid"] != os.getpid()  # trained in the launched process
    assert result.manifest["options"] == {"callbacks": [CALLBACK]} and result.manifest["method"] == "sft_callbacks"
