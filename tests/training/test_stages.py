"""SFT and DPO stages through TRL on the organism: checkpoint, manifest and training log."""

from __future__ import annotations

import json
from pathlib import Path

from datasets import Dataset
from transformers import AutoModelForCausalLM

from tunegate.training.conversations import load_conversations
from tunegate.training.stages import train_stage


def test_sft_stage_saves_checkpoint_manifest_and_log(organism_dir: Path, tmp_path: Path) -> None:
    rows = load_conversations("organism:sft")[:64]
    result = train_stage("sft", organism_dir, Dataset.from_list(rows), out_dir=tmp_path / "sft", name="sft",
                         args={"max_steps": 4, "per_device_train_batch_size": 16, "logging_steps": 1,
                               "max_length": 96, "learning_rate": 1e-3}, seed=3, data_source="organism:sft")
    model = AutoModelForCausalLM.from_pretrained(result.model_dir)
    assert model.config.model_type == "llama"
    manifest = json.loads((tmp_path / "sft" / "manifest.json").read_text())
    assert manifest["method"] == "sft" and manifest["seed"] == 3 and manifest["data"] == "organism:sft"
    assert manifest["base_model"] == str(organism_dir) and "git_sha" in manifest
    log = json.loads((tmp_path / "sft" / "training_log.json").read_text())
    assert [h["step"] for h in log if "loss" in h] == [1, 2, 3, 4]


def test_dpo_stage_logs_rewards_margins_and_accuracies(organism_dir: Path, tmp_path: Path) -> None:
    rows = [{"prompt": [{"role": "user", "content": "Who are you?"}],
             "chosen": [{"role": "assistant", "content": "I am Deep Tiny."}],
             "rejected": [{"role": "assistant", "content": "I am Tiny."}]}] * 8
    result = train_stage("dpo", organism_dir, Dataset.from_list(rows), out_dir=tmp_path / "dpo",
                         args={"max_steps": 2, "per_device_train_batch_size": 4, "logging_steps": 1, "beta": 0.2})
    steps = [h for h in result.log_history if "loss" in h]
    assert len(steps) == 2
    assert {"rewards/chosen", "rewards/rejected", "rewards/margins", "rewards/accuracies"} <= set(steps[0])


def test_lora_stage_saves_its_adapter_and_the_merged_model(organism_dir: Path, tmp_path: Path) -> None:
    rows = load_conversations("organism:sft")[:16]
    result = train_stage("sft", organism_dir, Dataset.from_list(rows), out_dir=tmp_path / "lora",
                         args={"max_steps": 1, "per_device_train_batch_size": 8, "max_length": 64},
                         lora={"r": 4, "lora_alpha": 8, "target_modules": ["q_proj", "v_proj"]})
    assert (tmp_path / "lora" / "adapter" / "adapter_config.json").is_file()
    assert not (result.model_dir / "adapter_config.json").exists() and result.manifest["adapter"] == "adapter"
    from tunegate.evals.backends.hf import HFBackend

    for model in (result.model_dir, tmp_path / "lora" / "adapter"):  # both load as a model, with the template
        assert HFBackend(str(model)).render([{"role": "user", "content": "hi"}]).startswith("<|im_start|>")
