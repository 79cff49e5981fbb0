"""LoRA across stages: each stage trains the previous stage's model, and the final model carries every stage's update.

A LoRA stage merges its adapter into its input model (``model/``) and keeps the adapter beside it
(``adapter/``). The checks read the weights from disk and compute each LoRA update by hand from the
adapter's files (W += lora_alpha / r * B @ A, peft's formula for a Linear), independently of peft's merge:

* a LoRA stage's model is its input's weights plus its own update, exactly, and nothing else changed;
* a full stage's model moved from its input by at most what its few Adam steps can move a weight
  (lr per step), far less than the first stage's update: so it trained from the first stage's
  model, not from the base;
* the final record evaluated the last stage's model.

Before the fix, LoRA -> full crashed in the second stage ("element 0 of tensors does not require grad",
exit 1) and LoRA -> LoRA saved the second adapter against the base, losing the first update.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

from tunegate.cli import main
from tunegate.evals.models import fingerprint_dir

LORA = {"r": 4, "lora_alpha": 8, "target_modules": ["q_proj", "v_proj", "down_proj"]}
FIRST_LR, LATER_LR = 5.0e-3, 1.0e-6
STEPS = 3


def _stage(name: str, lora: bool, lr: float) -> dict:
    return {"name": name, "method": "sft", "data": "organism:sft", "data_options": {"limit": 16}, "trains": ["math"],
            "lora": LORA if lora else None,
            "args": {"learning_rate": lr, "max_steps": STEPS, "per_device_train_batch_size": 8, "max_length": 64,
                     "lr_scheduler_type": "constant", "logging_steps": 1, "gradient_checkpointing": False}}


def _run(tmp_path: Path, chain: tuple[bool, bool]) -> Path:
    """``tunegate run`` of two SFT stages (LoRA or full each) on the organism, evaluated on 2 math items."""
    config = {"name": "lora-chain", "base_model": "organism", "seed": 0,
              "eval": {"suites": {"math": {"variant": "organism", "limit": 2}}},
              "gate": {"metrics": {"math.exact_match": {"margin": 0.99}}},
              "stages": [_stage("first", chain[0], FIRST_LR), _stage("second", chain[1], LATER_LR)]}
    path = tmp_path / "chain.yaml"
    path.write_text(yaml.safe_dump(config))
    out = tmp_path / "run"
    assert main(["run", str(path), "--out", str(out), "--quiet", "--no-report", "--cache-dir",
                 str(tmp_path / "cache"), "--store", str(tmp_path / "store.sqlite")]) == 0
    return out


def _weights(model_dir: Path) -> dict[str, torch.Tensor]:
    return load_file(str(model_dir / "model.safetensors"))


def _lora_update(adapter_dir: Path) -> dict[str, torch.Tensor]:
    """Each adapted weight's update, lora_alpha / r * B @ A, from the adapter's own files."""
    config = json.loads((adapter_dir / "adapter_config.json").read_text())
    scale = config["lora_alpha"] / config["r"]
    tensors = load_file(str(adapter_dir / "adapter_model.safetensors"))
    updates = {}
    for key, a in tensors.items():
        if ".lora_A." in key:
            b = tensors[key.replace(".lora_A.", ".lora_B.")]
            module = key.removeprefix("base_model.model.").split(".lora_A.")[0]
            updates[f"{module}.weight"] = scale * (b.float() @ a.float())
    return updates


def _check_lora_stage(before: dict, after: dict, adapter: Path) -> float:
    """after == before + the adapter's update, exactly where adapted and nowhere else; the update's largest entry."""
    update = _lora_update(adapter)
    assert update and set(update) <= set(after)
    for key, weight in after.items():
        expected = before[key] + update.get(key, 0.0)
        assert torch.allclose(weight, expected, atol=1e-6), key
    return max(float(u.abs().max()) for u in update.values())


def _check_full_stage(before: dict, after: dict) -> float:
    """after moved from before, by at most what STEPS Adam steps at LATER_LR can move one weight."""
    moved = max(float((after[k] - before[k]).abs().max()) for k in after)
    assert 0.0 < moved <= 2 * STEPS * LATER_LR
    return moved


@pytest.mark.slow
@pytest.mark.parametrize("chain", [(True, False), (False, True), (True, True)],
                         ids=["lora-full", "full-lora", "lora-lora"])
def test_each_stage_trains_the_previous_stages_model(tmp_path: Path, organism_dir: Path, chain) -> None:
    """Two stages of 3 steps and three evaluations of 2 items: about 10 s of CPU per chain."""
    out = _run(tmp_path, chain)
    base = _weights(organism_dir)
    first, second = (_weights(out / "stages" / name / "model") for name in ("first", "second"))
    manifests = [json.loads((out / "stages" / name / "manifest.json").read_text()) for name in ("first", "second")]
    assert manifests[1]["base_model"] == str(out / "stages" / "first" / "model")
    if chain[0]:
        first_update = _check_lora_stage(base, first, out / "stages" / "first" / "adapter")
    else:
        first_update = max(float((first[k] - base[k]).abs().max()) for k in base)
    if chain[1]:
        second_update = _check_lora_stage(first, second, out / "stages" / "second" / "adapter")
        assert not (out / "stages" / "second" / "model" / "adapter_config.json").exists()
    else:
        second_update = _check_full_stage(first, second)
    # the final model still carries the first stage's update: it is far from the base, close to the first model
    assert first_update > 100 * second_update
    assert max(float((second[k] - base[k]).abs().max()) for k in base) > 0.5 * first_update
    final = json.loads((out / "records" / "second.json").read_text())
    assert final["fingerprint"] == fingerprint_dir(out / "stages" / "second" / "model")
    assert [m["adapter"] for m in manifests] == ["adapter" if lora else None for lora in chain]


@pytest.mark.slow
def test_an_adapter_directory_as_input_is_merged_into_its_base_before_training(tmp_path: Path, organism_dir: Path) -> None:
    """A stage given a PEFT adapter directory (here a LoRA stage's adapter/) trains its base with the adapter merged
    in, every weight trainable: before the fix the merged weights kept peft's requires_grad=False and a full stage
    from an adapter directory trained nothing (its model equalled its input). Two stages of 3 steps, ~10 s of CPU."""
    from datasets import Dataset

    from tunegate.training.conversations import load_conversations
    from tunegate.training.stages import train_stage

    rows = Dataset.from_list(load_conversations("organism:sft")[:16])
    args = {"max_steps": STEPS, "per_device_train_batch_size": 8, "max_length": 64, "lr_scheduler_type": "constant"}
    lora = train_stage("sft", organism_dir, rows, out_dir=tmp_path / "lora", lora=LORA,
                       args={**args, "learning_rate": FIRST_LR})
    full = train_stage("sft", tmp_path / "lora" / "adapter", rows, out_dir=tmp_path / "full",
                       args={**args, "learning_rate": LATER_LR})
    base, merged = _weights(organism_dir), _weights(lora.model_dir)
    update = _check_lora_stage(base, merged, tmp_path / "lora" / "adapter")
    assert update > 100 * _check_full_stage(merged, _weights(full.model_dir))


@pytest.mark.slow
def test_a_stage_from_an_adapter_directory_measures_kl_against_the_merged_model(tmp_path: Path, organism_dir: Path):
    """A full GRPO stage (beta > 0) whose base_model is a PEFT adapter directory: TRL builds its reference model from
    the policy's ``config._name_or_path``, which after peft's merge names the bare base. At the first step the policy
    is its own input, so the KL to a right reference is 0; against the bare base it is not. ~10 s of CPU."""
    from datasets import Dataset

    from tunegate.training.conversations import load_conversations
    from tunegate.training.stages import train_stage

    rows = Dataset.from_list(load_conversations("organism:sft")[:16])
    train_stage("sft", organism_dir, rows, out_dir=tmp_path / "lora", lora=LORA,
                args={"max_steps": STEPS, "per_device_train_batch_size": 8, "max_length": 64,
                      "learning_rate": FIRST_LR, "lr_scheduler_type": "constant"})
    stage = {"name": "grpo", "method": "grpo", "trains": ["ifeval"], "options": {"rewards": ["ifeval"]},
             "data": {"suites": {"ifeval": {"variant": "organism", "seed": 7}}, "limit": 8},
             "args": {"max_steps": 1, "per_device_train_batch_size": 8, "num_generations": 4,
                      "max_completion_length": 8, "beta": 0.04, "logging_steps": 1, "gradient_checkpointing": False}}
    config = {"name": "from-adapter", "base_model": str(tmp_path / "lora" / "adapter"), "stages": [stage],
              "eval": {"suites": {"ifeval": {"variant": "organism", "limit": 4}}},
              "gate": {"metrics": {"ifeval.prompt_strict": {"margin": 0.5}}}}
    path = tmp_path / "grpo.yaml"
    path.write_text(yaml.safe_dump(config))
    out = tmp_path / "run"
    assert main(["run", str(path), "--out", str(out), "--quiet", "--no-report", "--cache-dir",
                 str(tmp_path / "cache"), "--store", str(tmp_path / "store.sqlite")]) in (0, 1)
    first = next(row for row in json.loads((out / "stages" / "grpo" / "training_log.json").read_text()) if "kl" in row)
    assert first["step"] == 1 and first["kl"] < 1e-6
