"""Token ids as lm-eval's HF backend makes them, for every backend that tokenizes on this side.

The ``hf`` and ``vllm`` backends feed token ids, not text, to their models, so both encode prompts the
same way (and so agree with lm-eval): the tokenizer's special tokens unless the text already starts with
BOS, the context/continuation split of ``_encode_pair``, the context length from the model config::

    class MyBackend(TokenizedPrompts):          # needs .tokenizer and .model_config
        ...
    backend._encode_pair("The capital of France is ", "Paris")   # ([464, 3139, 286, 4881, 318], [6342])
"""

from __future__ import annotations

from typing import Any


class TokenizedPrompts:
    """Encoding helpers over ``self.tokenizer`` (a transformers tokenizer) and ``self.model_config``."""

    tokenizer: Any
    model_config: Any

    @property
    def max_length(self) -> int:
        """The model's context length, resolved as lm-eval's HF backend does (config, then tokenizer, then 2048)."""
        cfg = getattr(self.model_config, "text_config", None) or self.model_config
        for attr in ("n_positions", "max_position_embeddings", "n_ctx"):
            if getattr(cfg, attr, None) is not None:
                return int(getattr(cfg, attr))
        tok_max = getattr(self.tokenizer, "model_max_length", None)
        return int(tok_max) if tok_max is not None and tok_max < 10 ** 12 else 2048

    def _encode(self, text: str) -> list[int]:
        """Token ids as lm-eval's ``tok_encode``: the tokenizer's special tokens (BOS) unless the text has them."""
        bos = self.tokenizer.bos_token if self.tokenizer.bos_token_id is not None else self.tokenizer.eos_token
        return self.tokenizer(text, add_special_tokens=not (bos and text.startswith(bos)))["input_ids"]

    def _encode_pair(self, context: str, continuation: str) -> tuple[list[int], list[int]]:
        """(context ids, continuation ids) as lm-eval: trailing spaces of the context move to the continuation;
        the pair is encoded whole, then split."""
        context, continuation = split_trailing_space(context, continuation)
        if not context:
            prefix = self.tokenizer.eos_token_id if self.tokenizer.bos_token_id is None else self.tokenizer.bos_token_id
            return [prefix], self.tokenizer(continuation, add_special_tokens=False)["input_ids"]
        whole, ctx = self._encode(context + continuation), self._encode(context)
        return ctx, whole[len(ctx):]

    def _prompt_window(self, prompt: str, max_new_tokens: int) -> list[int]:
        """The prompt's ids, keeping its last (max_length - max_new_tokens) tokens as lm-eval does."""
        ids = self._encode(prompt)
        room = self.max_length - max_new_tokens
        return ids[-room:] if room > 0 else ids


def split_trailing_space(context: str, continuation: str) -> tuple[str, str]:
    """lm-eval's rule: ``("The capital is ", "Paris")`` -> ``("The capital is", " Paris")``."""
    n_spaces = len(context) - len(context.rstrip())
    if n_spaces:
        return context[:-n_spaces], context[-n_spaces:] + continuation
    return context, continuation
