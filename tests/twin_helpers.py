"""Independent references for tests on the real-architecture twins: greedy decoding and log-likelihoods computed
with plain forward passes (no tunegate code), to compare what tunegate recorded against."""

from __future__ import annotations

from typing import Any, Sequence

import torch


def load_fp32(path: Any) -> tuple[Any, Any]:
    """(model, tokenizer) of a checkpoint in float32, as tunegate's backend loads it on CPU (transformers would
    otherwise keep the twin's bfloat16)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    return AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32), AutoTokenizer.from_pretrained(path)


def argmax_greedy(model: Any, tokenizer: Any, prompt: str, n: int, stop_ids: Sequence[int] = ()) -> str:
    """Greedy decoding by hand: the argmax of the last position's logits, at most ``n`` times, until a stop id."""
    ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    new: list[int] = []
    with torch.inference_mode():
        for _ in range(n):
            token = int(model(torch.tensor([ids + new]), logits_to_keep=1).logits[0, -1].argmax())
            if token in stop_ids:
                break
            new.append(token)
    return tokenizer.decode(new, skip_special_tokens=True)


def next_token_logprobs(model: Any, tokenizer: Any, context: str, tokens: Sequence[str]) -> list[float]:
    """log P(token | context) for single tokens given by their vocabulary strings (e.g. "ĠA")."""
    ids = tokenizer(context, add_special_tokens=False)["input_ids"]
    with torch.inference_mode():
        logprobs = model(torch.tensor([ids]), logits_to_keep=1).logits[0, -1].float().log_softmax(-1)
    return [float(logprobs[tokenizer.convert_tokens_to_ids(t)]) for t in tokens]
