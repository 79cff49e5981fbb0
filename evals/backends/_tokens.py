"""Token ids as lm-eval's HF backend makes them, for every backend that tokenizes on this side.

The ``hf`` and ``vllm`` backends feed token ids, not text, to their models, so both encode prompts the
same way (and so agree with lm-eval): the tokenizer's special tokens unless the text already starts with
BOS, the context/continuation split of ``_encode_pair``, the context length from the model config::

    class MyBackend(TokenizedPrompts):          # needs .tokenizer and .model_config
        ...
    backend._encode_pair("The capital of France is ", "Paris")   # ([464, 3139, 286, 4881, 318], [6342])
"""

from __future__ import annotations

from typing import Any, Sequence

from tunegate.core.errors import TunegateError


#: The greedy decoding rule of every backend that decodes on this side (hf, vllm), part of their cache identity:
#: plain argmax, whatever the checkpoint's generation_config.json suggests (Qwen2.5-Instruct's repetition_penalty
#: 1.1 included), stopping at eos and the chat template's end-of-turn token (``stop_token_ids``). Responses
#: cached under the earlier rule, which let generation_config's repetition_penalty in, are not reused.
GREEDY = "argmax"


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
        if len(whole) <= len(ctx):  # e.g. a word-level tokenizer merging "...t9" + "t5" into one unknown word
            raise TunegateError(f"log-likelihood request: continuation {continuation!r} adds no token to its context "
                                f"(...{context[-40:]!r}) with this tokenizer")
        return ctx, whole[len(ctx):]

    def _prompt_window(self, prompt: str, max_new_tokens: int) -> list[int]:
        """The prompt's ids, keeping its last (max_length - max_new_tokens) tokens as lm-eval does."""
        ids = self._encode(prompt)
        room = self.max_length - max_new_tokens
        return ids[-room:] if room > 0 else ids


def split_trailing_space(context: str, continuation: str) -> tuple[str, str]:
    """lm-eval's rule: ``("The capital is ", "Paris")`` -> ``("The capital is", " Paris")``.

    Unlike lm-eval's ``rstrip()``, newlines stay: a chat context ends with the template's
    ``"<|im_start|>assistant\n"``, and moving that newline would score the template's own "\n" as part of
    every choice (lm-eval's chat MMLU never meets this: it puts no chat context before a one-letter choice).
    """
    n_spaces = len(context) - len(context.rstrip(" \t"))
    if n_spaces:
        return context[:-n_spaces], context[-n_spaces:] + continuation
    return context, continuation


def stop_token_ids(tokenizer: Any, eos: int | Sequence[int] | None) -> list[int]:
    """The checkpoint's eos ids (``eos``: generation_config's ``eos_token_id``; the tokenizer's) plus the chat
    template's end-of-turn token.

    A base model's eos is often not what its chat template ends a turn with (Qwen3-0.6B-Base: eos
    ``<|endoftext|>``, turns end with ``<|im_end|>``); after SFT on that template the model ends its answers
    with ``<|im_end|>``, and generation must stop there rather than run on into a made-up next turn.
    """
    ids = set(eos if isinstance(eos, (list, tuple)) else [] if eos is None else [eos])
    if tokenizer.eos_token_id is not None:
        ids.add(tokenizer.eos_token_id)
    turn_end = end_of_turn_token(tokenizer)
    if turn_end is not None:
        ids.add(turn_end)
    return sorted(ids)


def end_of_turn_token(tokenizer: Any) -> int | None:
    """The added token the chat template writes right after an assistant turn (``<|im_end|>``, ``<|eot_id|>``)."""
    if not getattr(tokenizer, "chat_template", None):
        return None
    probe = "tunegate-end-of-turn-probe"
    try:
        text = tokenizer.apply_chat_template([{"role": "user", "content": "Hi."}, {"role": "assistant", "content": probe}],
                                             tokenize=False)
    except Exception:  # noqa: BLE001 - a template that cannot render this pair has no turn end to find
        return None
    if not isinstance(text, str) or probe not in text:
        return None
    ids = tokenizer(text.split(probe, 1)[1], add_special_tokens=False)["input_ids"]
    return ids[0] if ids and ids[0] in tokenizer.added_tokens_decoder else None


def shared_prefixes(seqs: Sequence[Sequence[int]], limits: Sequence[int], cost: int) -> list[tuple[int, list[int]]]:
    """Groups of ``seqs`` (their indices) whose common token prefix is worth computing once, with its length.

    ``limits[i]`` caps the prefix ``seqs[i]`` may share (the tokens after it are computed per sequence: at least the
    last one, whose logits are needed). A group of n sharing p tokens saves (n - 1) * p tokens and costs ``cost``
    (its own forward and copies, in tokens' worth); sequences in no group worth it come alone, with length 0. Among
    nested choices (every MMLU prompt shares the template's start, each subject's prompts its five shots) the
    grouping that saves the most wins::

        shared_prefixes([[1, 2, 3, 4], [1, 2, 3, 5], [9]], [3, 3, 0], cost=1)   # [(3, [0, 1]), (0, [2])]
    """
    order = sorted(range(len(seqs)), key=lambda i: tuple(seqs[i]))
    common = [min(_common_length(seqs[a], seqs[b]), limits[a], limits[b]) for a, b in zip(order, order[1:])]
    best: dict[tuple[int, int], tuple[int, list[tuple[int, int, int]]]] = {}
    stack = [(0, len(order), False)] if order else []
    while stack:  # post-order over nested ranges of the sorted sequences (no recursion: depth can be large)
        lo, hi, ready = stack.pop()
        if hi - lo == 1:
            best[(lo, hi)] = (0, [(0, lo, hi)])
            continue
        shared = min(common[lo:hi - 1])
        cuts = [lo] + [k + 1 for k in range(lo, hi - 1) if common[k] == shared] + [hi]
        parts = list(zip(cuts, cuts[1:]))
        if not ready:
            stack.append((lo, hi, True))
            stack.extend((a, b, False) for a, b in parts)
            continue
        saved = sum(best[p][0] for p in parts)
        whole = max((hi - lo - 1) * shared - cost, 0)
        best[(lo, hi)] = (whole, [(shared, lo, hi)]) if whole and whole >= saved else \
            (saved, [g for p in parts for g in best.pop(p)[1]])
    groups = best[(0, len(order))][1] if order else []
    return [(length, [order[k] for k in range(lo, hi)]) for length, lo, hi in groups]


def _common_length(a: Sequence[int], b: Sequence[int]) -> int:
    n = min(len(a), len(b))
    for k in range(n):
        if a[k] != b[k]:
            return k
    return n
