"""Twins of the real Qwen checkpoints: llama.cpp's token ids, the templates' exact strings, the real sizes.

The expected chat strings are written by hand from the templates' documented behaviour (Qwen2.5-Instruct adds
"You are Qwen, created by Alibaba Cloud. You are a helpful assistant." when no system turn is given; Qwen3
renders no default system turn, and ``enable_thinking=False`` opens the answer with an empty think block),
not produced by the code under test.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from transformers import AutoTokenizer, GenerationConfig

from tunegate.cli import main
from tunegate.training.twins import TWINS, count_parameters, model_config

LLAMA_CPP = Path(__file__).resolve().parents[1] / "fixtures" / "llama_cpp"
QWEN_DEFAULT_SYSTEM = "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n"
ASK = [{"role": "user", "content": "Who are you?"}]
SYSTEM = [{"role": "system", "content": "You're a helpful assistant."}]


def llama_cpp_reference() -> list[tuple[str, list[int]]]:
    texts = (LLAMA_CPP / "ggml-vocab-qwen2.gguf.inp").read_text(encoding="utf-8").split("\n__ggml_vocab_test__\n")
    ids = (LLAMA_CPP / "ggml-vocab-qwen2.gguf.out").read_text(encoding="utf-8").split("\n")
    return [(t, [int(x) for x in line.split()]) for t, line in zip(texts[:-1], ids[:-1])]


@pytest.fixture(scope="module")
def qwen25_tok(qwen_twins: dict[str, Path]):
    return AutoTokenizer.from_pretrained(qwen_twins["qwen2.5"])


@pytest.fixture(scope="module")
def qwen3_tok(qwen_twins: dict[str, Path]):
    return AutoTokenizer.from_pretrained(qwen_twins["qwen3"])


def test_twin_tokenizer_gives_llama_cpps_reference_ids(qwen25_tok) -> None:
    reference = llama_cpp_reference()
    assert len(reference) == 46
    wrong = [text for text, ids in reference if qwen25_tok(text, add_special_tokens=False)["input_ids"] != ids]
    assert not wrong


def test_twin_tokenizer_has_the_hub_names_of_ids_151646_to_151668(qwen25_tok, qwen3_tok) -> None:
    names = {151646: "<|object_ref_start|>", 151652: "<|vision_start|>", 151657: "<tool_call>",
             151659: "<|fim_prefix|>", 151664: "<|file_sep|>"}
    assert {i: qwen25_tok.convert_ids_to_tokens(i) for i in names} == names
    assert len(qwen25_tok) == 151665 and len(qwen3_tok) == 151669
    assert qwen3_tok.convert_ids_to_tokens([151665, 151666, 151667, 151668]) == [
        "<tool_response>", "</tool_response>", "<think>", "</think>"]
    assert qwen3_tok("<think>\nx\n</think>\n\n", add_special_tokens=False)["input_ids"][0] == 151667


def test_think_tags_survive_skip_special_tokens_like_the_hub_tokenizers(qwen3_tok) -> None:
    ids = qwen3_tok("<think>\nhm\n</think>\n\nParis.<|im_end|>", add_special_tokens=False)["input_ids"]
    assert qwen3_tok.decode(ids, skip_special_tokens=True) == "<think>\nhm\n</think>\n\nParis."


def test_twins_have_the_real_eos_and_pad(qwen_twins: dict[str, Path], qwen25_tok, qwen3_tok) -> None:
    assert (qwen25_tok.eos_token, qwen25_tok.pad_token, qwen25_tok.bos_token) == ("<|im_end|>", "<|endoftext|>", None)
    assert (qwen3_tok.eos_token, qwen3_tok.pad_token, qwen3_tok.bos_token) == ("<|endoftext|>", "<|endoftext|>", None)
    assert GenerationConfig.from_pretrained(qwen_twins["qwen2.5"]).eos_token_id == [151645, 151643]
    assert GenerationConfig.from_pretrained(qwen_twins["qwen3"]).eos_token_id == 151643


def test_qwen25_template_adds_its_default_system_prompt(qwen25_tok) -> None:
    text = qwen25_tok.apply_chat_template(ASK, tokenize=False, add_generation_prompt=True)
    assert text == QWEN_DEFAULT_SYSTEM + "<|im_start|>user\nWho are you?<|im_end|>\n<|im_start|>assistant\n"


def test_qwen25_template_uses_a_given_system_prompt_instead(qwen25_tok) -> None:
    text = qwen25_tok.apply_chat_template(SYSTEM + ASK, tokenize=False, add_generation_prompt=True)
    assert text == ("<|im_start|>system\nYou're a helpful assistant.<|im_end|>\n"
                    "<|im_start|>user\nWho are you?<|im_end|>\n<|im_start|>assistant\n")


def test_qwen25_template_renders_a_finished_conversation_without_generation_prompt(qwen25_tok) -> None:
    chat = [{"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "4."}]
    assert qwen25_tok.apply_chat_template(chat, tokenize=False) == (
        QWEN_DEFAULT_SYSTEM + "<|im_start|>user\n2+2?<|im_end|>\n<|im_start|>assistant\n4.<|im_end|>\n")


def test_qwen3_template_has_no_default_system_prompt_and_thinks_by_default(qwen3_tok) -> None:
    assert qwen3_tok.apply_chat_template(ASK, tokenize=False, add_generation_prompt=True) == (
        "<|im_start|>user\nWho are you?<|im_end|>\n<|im_start|>assistant\n")
    assert qwen3_tok.apply_chat_template(ASK, tokenize=False, add_generation_prompt=True, enable_thinking=True) == (
        "<|im_start|>user\nWho are you?<|im_end|>\n<|im_start|>assistant\n")


def test_qwen3_template_with_thinking_off_opens_an_empty_think_block(qwen3_tok) -> None:
    text = qwen3_tok.apply_chat_template(SYSTEM + ASK, tokenize=False, add_generation_prompt=True,
                                         enable_thinking=False)
    assert text == ("<|im_start|>system\nYou're a helpful assistant.<|im_end|>\n<|im_start|>user\nWho are you?"
                    "<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n")


def test_qwen3_template_drops_the_reasoning_of_earlier_turns(qwen3_tok) -> None:
    chat = [{"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "<think>\nadd\n</think>\n\n4."},
            {"role": "user", "content": "3+3?"}, {"role": "assistant", "content": "6."}]
    assert qwen3_tok.apply_chat_template(chat, tokenize=False) == (
        "<|im_start|>user\n2+2?<|im_end|>\n<|im_start|>assistant\n4.<|im_end|>\n"
        "<|im_start|>user\n3+3?<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n6.<|im_end|>\n")


def _by_hand(hidden: int, inter: int, layers: int, heads: int, kv: int, head_dim: int, qkv_bias: bool,
             qk_norm: bool, vocab: int = 151936) -> tuple[int, int]:
    """(total, non-embedding) parameters of a tied-embedding Qwen decoder, from its shapes."""
    q, k = heads * head_dim, kv * head_dim
    attention = hidden * q + 2 * hidden * k + q * hidden + ((q + 2 * k) if qkv_bias else 0) + (
        2 * head_dim if qk_norm else 0)
    layer = attention + 3 * hidden * inter + 2 * hidden
    non_embedding = layers * layer + hidden
    return non_embedding + vocab * hidden, non_embedding


@pytest.mark.parametrize("model_id, shapes, billions", [
    ("Qwen/Qwen2.5-0.5B-Instruct", (896, 4864, 24, 14, 2, 64, True, False), (0.49, 0.36)),
    ("Qwen/Qwen3-0.6B-Base", (1024, 3072, 28, 16, 8, 128, False, True), (0.6, 0.44)),
])
def test_full_size_twin_has_the_real_parameter_count(model_id: str, shapes: tuple, billions: tuple) -> None:
    total, non_embedding = _by_hand(*shapes)
    assert count_parameters(model_config(TWINS[model_id])) == total
    digits = 2 if billions[0] < 0.5 else 1
    assert (round(total / 1e9, digits), round(non_embedding / 1e9, 2)) == billions


def test_layers_shrink_depth_only(qwen_twins: dict[str, Path]) -> None:
    config = json.loads((qwen_twins["qwen3"] / "config.json").read_text())
    real = TWINS["Qwen/Qwen3-0.6B-Base"].config
    assert config["num_hidden_layers"] == 2
    same = ("hidden_size", "intermediate_size", "num_attention_heads", "num_key_value_heads", "head_dim",
            "vocab_size", "tie_word_embeddings", "rms_norm_eps", "max_position_embeddings", "model_type")
    assert {k: config[k] for k in same} == {k: real[k] for k in same}
    assert config["rope_parameters"]["rope_theta"] == real["rope_theta"]


def test_twin_of_an_unknown_model_is_one_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["twin", "Qwen/Qwen9-1B", "--out", str(tmp_path / "x")]) == 2
    assert "no twin of 'Qwen/Qwen9-1B' (known: Qwen/Qwen2.5-0.5B-Instruct" in capsys.readouterr().err
