"""Twins of real checkpoints: the real architecture, tokenizer, chat template and eos/pad, with random weights.

The nightly job trains Qwen2.5-0.5B-Instruct and Qwen3-0.6B-Base; with no hub at hand (CI, an offline
machine, a GPU benchmark) a twin stands in for them. It is an ordinary HF checkpoint directory that every
tunegate command takes as a local path; only the weights are random (``initializer_range`` 0.02, seeded)::

    build_twin("Qwen/Qwen2.5-0.5B-Instruct", "twins/qwen2.5", layers=2)
    # twins/qwen2.5/: config.json  model.safetensors  generation_config.json
    #                 tokenizer.json  tokenizer_config.json  chat_template.jinja  twin.json

The tokenizer comes from llama.cpp's GGUF copy of the Qwen vocabulary (``training/real_tokenizers/``): its
151,643 BPE tokens and 151,387 merges go into transformers' own ``Qwen2Tokenizer`` pipeline (NFC, Qwen's
split regex, byte-level), then the added tokens from id 151643 on, with the names and ``special`` flags of
the hub's tokenizer_config.json (the GGUF calls ids 151646-151668 ``[PAD151646]``...). A real item, the
ids the Qwen2.5 twin gives (llama.cpp's reference)::

    tokenizer("Hello world", add_special_tokens=False).input_ids    # [9707, 1879]
    tokenizer.convert_tokens_to_ids(["<|im_end|>", "<think>"])     # [151645, 151667]
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from tunegate.core.errors import TunegateError
from tunegate.core.files import sha256_file

DATA = Path(__file__).resolve().parent / "real_tokenizers"
GGUF_VOCAB = DATA / "ggml-vocab-qwen2.gguf"
#: The first added token; the GGUF's BPE vocabulary is ids 0..151642.
FIRST_ADDED_ID = 151643
#: The hub's added tokens from id 151643 on, with their ``special`` flag (Qwen2.5's tokenizer_config.json ends
#: at 151664; Qwen3's adds 151665-151668). Non-special tokens survive ``skip_special_tokens``: a Qwen3 answer
#: decodes with its ``<think>...</think>`` text, which the suites' ``strip_thinking`` removes.
ADDED_TOKENS: tuple[tuple[str, bool], ...] = (
    ("<|endoftext|>", True), ("<|im_start|>", True), ("<|im_end|>", True),
    ("<|object_ref_start|>", True), ("<|object_ref_end|>", True), ("<|box_start|>", True), ("<|box_end|>", True),
    ("<|quad_start|>", True), ("<|quad_end|>", True), ("<|vision_start|>", True), ("<|vision_end|>", True),
    ("<|vision_pad|>", True), ("<|image_pad|>", True), ("<|video_pad|>", True),
    ("<tool_call>", False), ("</tool_call>", False), ("<|fim_prefix|>", False), ("<|fim_middle|>", False),
    ("<|fim_suffix|>", False), ("<|fim_pad|>", False), ("<|repo_name|>", False), ("<|file_sep|>", False),
    ("<tool_response>", False), ("</tool_response>", False), ("<think>", False), ("</think>", False),
)

_QWEN2_5_0_5B = {
    "architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2", "hidden_size": 896, "intermediate_size": 4864,
    "num_hidden_layers": 24, "num_attention_heads": 14, "num_key_value_heads": 2, "hidden_act": "silu",
    "vocab_size": 151936, "tie_word_embeddings": True, "rope_theta": 1_000_000.0, "rms_norm_eps": 1e-6,
    "max_position_embeddings": 32768, "max_window_layers": 21, "use_sliding_window": False, "sliding_window": 32768,
    "attention_dropout": 0.0, "initializer_range": 0.02, "use_cache": True, "bos_token_id": 151643,
    "eos_token_id": 151645, "dtype": "bfloat16",
}
_QWEN3_0_6B = {
    "architectures": ["Qwen3ForCausalLM"], "model_type": "qwen3", "hidden_size": 1024, "intermediate_size": 3072,
    "num_hidden_layers": 28, "num_attention_heads": 16, "num_key_value_heads": 8, "head_dim": 128,
    "hidden_act": "silu", "vocab_size": 151936, "tie_word_embeddings": True, "rope_theta": 1_000_000.0,
    "rms_norm_eps": 1e-6, "max_position_embeddings": 32768, "max_window_layers": 28, "use_sliding_window": False,
    "sliding_window": None, "attention_bias": False, "attention_dropout": 0.0, "initializer_range": 0.02,
    "use_cache": True, "bos_token_id": 151643, "eos_token_id": 151643, "dtype": "bfloat16",
}


@dataclass(frozen=True)
class TwinSpec:
    """What a twin copies from its real model's hub files (config.json, generation_config.json, tokenizer)."""

    model_id: str = field(metadata={"help": "the hub id of the real model"})
    config: Mapping[str, Any] = field(metadata={"help": "config.json fields of the real model"})
    generation: Mapping[str, Any] = field(metadata={"help": "generation_config.json fields of the real model"})
    template: str = field(metadata={"help": "chat template file in training/real_tokenizers/"})
    eos_token: str = field(metadata={"help": "the tokenizer's eos token"})
    last_token_id: int = field(metadata={"help": "the tokenizer's last added token id (151664 or 151668)"})
    pad_token: str = field(default="<|endoftext|>", metadata={"help": "the tokenizer's pad token"})

    def added_tokens(self) -> tuple[tuple[str, bool], ...]:
        return ADDED_TOKENS[: self.last_token_id - FIRST_ADDED_ID + 1]


#: The twins tunegate can build, by the hub id of their real model.
TWINS: dict[str, TwinSpec] = {spec.model_id: spec for spec in (
    TwinSpec("Qwen/Qwen2.5-0.5B-Instruct", _QWEN2_5_0_5B,
             {"bos_token_id": 151643, "pad_token_id": 151643, "eos_token_id": [151645, 151643], "do_sample": True,
              "temperature": 0.7, "top_p": 0.8, "top_k": 20, "repetition_penalty": 1.1},
             template="qwen2.5-instruct.jinja", eos_token="<|im_end|>", last_token_id=151664),
    TwinSpec("Qwen/Qwen3-0.6B-Base", _QWEN3_0_6B,
             {"bos_token_id": 151643, "eos_token_id": 151643, "do_sample": False, "max_new_tokens": 2048},
             template="qwen3.jinja", eos_token="<|endoftext|>", last_token_id=151668),
    TwinSpec("Qwen/Qwen3-0.6B", {**_QWEN3_0_6B, "eos_token_id": 151645, "max_position_embeddings": 40960},
             {"bos_token_id": 151643, "pad_token_id": 151643, "eos_token_id": [151645, 151643], "do_sample": True,
              "temperature": 0.6, "top_p": 0.95, "top_k": 20},
             template="qwen3.jinja", eos_token="<|im_end|>", last_token_id=151668),
)}


def twin_spec(model_id: str) -> TwinSpec:
    if model_id not in TWINS:
        raise TunegateError(f"no twin of '{model_id}' (known: {', '.join(TWINS)})")
    return TWINS[model_id]


def model_config(spec: TwinSpec, layers: int | None = None) -> Any:
    """The transformers config of the real model, ``layers`` deep (default: the real depth)."""
    from transformers import AutoConfig

    fields = dict(spec.config)
    if layers is not None:
        if layers < 1:
            raise TunegateError(f"--layers must be at least 1, got {layers}")
        fields["num_hidden_layers"] = layers
        fields["max_window_layers"] = min(fields["max_window_layers"], layers)
    model_type = fields.pop("model_type")
    return AutoConfig.for_model(model_type, **fields)


@functools.lru_cache(maxsize=2)
def gguf_vocabulary(path: Path = GGUF_VOCAB) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """The BPE vocabulary (normal tokens, ids 0..151642) and merges of a GGUF file (slow: ~10 s of CPU)."""
    from gguf import GGUFReader

    reader = GGUFReader(str(path))
    tokens = reader.fields["tokenizer.ggml.tokens"].contents()
    types = reader.fields["tokenizer.ggml.token_type"].contents()
    merges = [tuple(m.split(" ", 1)) for m in reader.fields["tokenizer.ggml.merges"].contents()]
    normal = [i for i, t in enumerate(types) if t == 1]  # llama.cpp's LLAMA_TOKEN_TYPE_NORMAL
    if normal != list(range(FIRST_ADDED_ID)):
        raise TunegateError(f"{path}: expected normal tokens 0..{FIRST_ADDED_ID - 1}, got {len(normal)} others")
    return {tokens[i]: i for i in normal}, merges  # type: ignore[return-value]


def build_tokenizer(spec: TwinSpec) -> Any:
    """The real tokenizer of ``spec``: Qwen2Tokenizer over the GGUF vocabulary, added tokens, template, eos/pad."""
    from tokenizers import AddedToken
    from transformers.models.qwen2.tokenization_qwen2 import Qwen2Tokenizer

    vocab, merges = gguf_vocabulary()
    tokenizer = Qwen2Tokenizer(vocab=dict(vocab), merges=list(merges), unk_token=None, bos_token=None,
                               eos_token="<|endoftext|>", pad_token="<|endoftext|>", errors="replace",
                               model_max_length=131072, clean_up_tokenization_spaces=False,
                               split_special_tokens=False)
    added = spec.added_tokens()
    tokenizer.add_tokens([AddedToken(name, special=special, normalized=False) for name, special in added[1:]])
    tokenizer.eos_token, tokenizer.pad_token = spec.eos_token, spec.pad_token
    tokenizer.chat_template = (DATA / spec.template).read_text(encoding="utf-8")
    ids = tokenizer.convert_tokens_to_ids([name for name, _ in added])
    if ids != list(range(FIRST_ADDED_ID, spec.last_token_id + 1)):  # the hub's ids, or the twin is no twin
        raise TunegateError(f"twin tokenizer of {spec.model_id}: added tokens got ids {ids[:3]}...")
    return tokenizer


def count_parameters(config: Any) -> int:
    """Parameters of the model ``config`` describes, counted on the meta device (no memory, no init)."""
    import torch
    from transformers import AutoModelForCausalLM

    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    return sum(p.numel() for p in model.parameters())


def build_twin(model_id: str, out: str | Path, *, layers: int | None = None, seed: int = 0) -> Path:
    """Write a random-initialised twin of ``model_id`` to ``out`` and return it."""
    import torch
    from transformers import AutoModelForCausalLM, GenerationConfig

    spec = twin_spec(model_id)
    config = model_config(spec, layers)
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise TunegateError(f"{out}: directory exists and is not empty")
    tokenizer = build_tokenizer(spec)
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.to(getattr(torch, spec.config["dtype"]))  # the hub's weights are bf16
    model.generation_config = GenerationConfig(**spec.generation)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    (out / "twin.json").write_text(json.dumps({
        "twin_of": spec.model_id, "num_hidden_layers": config.num_hidden_layers,
        "real_num_hidden_layers": spec.config["num_hidden_layers"], "seed": seed, "weights": "random",
        "parameters": sum(p.numel() for p in model.parameters()),
        "vocabulary": {"file": GGUF_VOCAB.name, "sha256": sha256_file(GGUF_VOCAB)}, "chat_template": spec.template,
    }, indent=1) + "\n", encoding="utf-8")
    return out

