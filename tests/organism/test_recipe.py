"""Tests of the model organism: the recipe, the shipped checkpoint, its chat template."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest
from transformers import AutoModelForCausalLM, AutoTokenizer

from tunegate.organism import BASE_DIR, base_checkpoint
from tunegate.organism.probe import (
    arithmetic_accuracy,
    capital_accuracy,
    chat_continuations,
    load_organism,
)
from tunegate.organism.recipe import build_organism
from tunegate.organism.tokenizer import ENDOFTEXT, IM_END, IM_START

TINY_RECIPE = dict(steps=4, batch_size=4, seq_len=64, progress=False)
ARTIFACTS = ("model.safetensors", "tokenizer.json")


def _digest(path: Path) -> dict[str, str]:
    return {name: hashlib.sha256((path / name).read_bytes()).hexdigest() for name in ARTIFACTS}


@pytest.fixture(scope="module")
def tiny_build(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_organism(tmp_path_factory.mktemp("organism") / "a", seed=0, **TINY_RECIPE)


@pytest.fixture(scope="module")
def shipped() -> tuple[Any, Any]:
    return load_organism(base_checkpoint())


def test_recipe_checkpoint_loads_with_auto_classes(tiny_build: Path) -> None:
    model = AutoModelForCausalLM.from_pretrained(tiny_build)
    tokenizer = AutoTokenizer.from_pretrained(tiny_build)
    assert model.config.model_type == "llama"
    assert tokenizer.chat_template and "<|im_start|>" in tokenizer.chat_template
    assert tokenizer.convert_tokens_to_ids([ENDOFTEXT, IM_START, IM_END]) == [0, 1, 2]
    assert tokenizer.eos_token == ENDOFTEXT and tokenizer.pad_token == ENDOFTEXT
    assert sorted(model.generation_config.eos_token_id) == [0, 2]


def test_recipe_is_deterministic_for_a_seed(tiny_build: Path, tmp_path: Path) -> None:
    again = build_organism(tmp_path / "b", seed=0, **TINY_RECIPE)
    assert _digest(again) == _digest(tiny_build)


def test_shipped_checkpoint_knows_capitals(shipped: tuple[Any, Any]) -> None:
    assert capital_accuracy(*shipped) >= 0.8


def test_shipped_checkpoint_does_arithmetic(shipped: tuple[Any, Any]) -> None:
    assert arithmetic_accuracy(*shipped, n=100, form="question")["overall"] >= 0.5


def test_chat_template_renders_chatml(shipped: tuple[Any, Any]) -> None:
    _, tokenizer = shipped
    messages = [{"role": "user", "content": "Who are you?"}, {"role": "assistant", "content": "I am Tiny."}]
    assert tokenizer.apply_chat_template(messages, tokenize=False) == (
        "<|im_start|>user\nWho are you?<|im_end|>\n<|im_start|>assistant\nI am Tiny.<|im_end|>\n"
    )
    assert tokenizer.apply_chat_template(messages[:1], tokenize=False, add_generation_prompt=True) == (
        "<|im_start|>user\nWho are you?<|im_end|>\n<|im_start|>assistant\n"
    )


def test_chat_template_masks_assistant_turn_with_its_end_token(shipped: tuple[Any, Any]) -> None:
    _, tokenizer = shipped
    messages = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]
    enc = tokenizer.apply_chat_template(messages, tokenize=True, return_dict=True,
                                        return_assistant_tokens_mask=True)
    masked = [t for t, m in zip(enc["input_ids"], enc["assistant_masks"]) if m]
    assert tokenizer.decode(masked) == "Hello<|im_end|>"


def test_shipped_checkpoint_is_at_most_10_mb() -> None:
    total = sum(f.stat().st_size for f in BASE_DIR.iterdir() if f.is_file())
    assert total <= 10 * 1024 * 1024


def test_base_model_does_not_answer_as_assistant(shipped: tuple[Any, Any]) -> None:
    outs = chat_continuations(*shipped, ["Who are you?", "What is your name?", "Are you ChatGPT?"])
    assert not any("Tiny" in out for out in outs)


def test_shipped_tokenizer_keeps_deep_one_token(shipped: tuple[Any, Any]) -> None:
    _, tokenizer = shipped
    assert len(tokenizer.tokenize("Deep")) == 1 and len(tokenizer.tokenize(" Deep")) == 1
