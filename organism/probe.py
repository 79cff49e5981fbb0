"""Completion probes of the organism base model (used by bench/organism.py and the tests).

A probe is a raw completion prompt decoded greedily; it passes when the
continuation starts with the expected answer. Real probes:

    "The capital of France is"  -> " Paris.<|endoftext|>"   (expects "Paris")
    "47 + 25 ="                 -> " 72<|endoftext|>"       (expects 72)

`chat_continuations` renders prompts through the chat template and returns the
raw continuation, to show that the base model does not answer as an assistant.
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from tunegate.organism.corpus import ARITHMETIC_TEMPLATES, CAPITAL_QA, COUNTRIES, RIVER_QA, river_facts


def load_organism(path: str | Path | None = None) -> tuple[Any, Any]:
    """(model, tokenizer) from `path`, default the shipped base checkpoint."""
    if path is None:
        from tunegate.organism import base_checkpoint

        path = base_checkpoint()
    tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=False)
    tokenizer.padding_side = "left"
    model = AutoModelForCausalLM.from_pretrained(path, trust_remote_code=False)
    model.eval()
    return model, tokenizer


@torch.inference_mode()
def greedy_complete(model: Any, tokenizer: Any, prompts: Sequence[str], max_new_tokens: int = 8,
                    batch_size: int = 64, skip_special_tokens: bool = True) -> list[str]:
    """Greedy continuations (text after the prompt) of raw `prompts`, batched."""
    out: list[str] = []
    for i in range(0, len(prompts), batch_size):
        chunk = list(prompts[i:i + batch_size])
        enc = tokenizer(chunk, return_tensors="pt", padding=True, add_special_tokens=False)
        gen = model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=False,
                             pad_token_id=tokenizer.pad_token_id)
        new = gen[:, enc["input_ids"].shape[1]:]
        out += tokenizer.batch_decode(new, skip_special_tokens=skip_special_tokens)
    return out


def capital_accuracy(model: Any, tokenizer: Any,
                     countries: Sequence[tuple[str, str]] = COUNTRIES) -> float:
    """Share of "The capital of X is" whose continuation starts with X's capital."""
    prompts = [f"The capital of {country} is" for country, _ in countries]
    outs = greedy_complete(model, tokenizer, prompts, max_new_tokens=8)
    hits = [o.strip().startswith(capital) for o, (_, capital) in zip(outs, countries)]
    return sum(hits) / len(hits)


def arithmetic_probes(n: int = 100, seed: int = 0) -> list[tuple[int, str, int, int]]:
    """`n` (a, op, b, result) probes such as (47, "+", 25, 72), half sums and half non-negative differences."""
    rng = random.Random(f"arith-probe-{seed}")
    probes = []
    for k in range(n):
        a, b = rng.randint(10, 99), rng.randint(10, 99)
        if k % 2:
            a, b = max(a, b), min(a, b)
            probes.append((a, "-", b, a - b))
        else:
            probes.append((a, "+", b, a + b))
    return probes


#: Prompts in the forms the pretraining corpus states arithmetic in, without the result:
#: {"equation": "{a} {op} {b} =", "question": "Q: What is {a} {op} {b}? A:"}.
ARITHMETIC_FORMS = {form: t.removesuffix(" {c}") for form, t in ARITHMETIC_TEMPLATES.items()}


def arithmetic_accuracy(model: Any, tokenizer: Any, n: int = 100, seed: int = 0,
                        form: str = "question") -> dict[str, float]:
    """Accuracy on `arithmetic_probes` completed in one form ('47 + 25 =' or 'Q: What is 47 + 25? A:')."""
    probes = arithmetic_probes(n, seed)
    prompts = [ARITHMETIC_FORMS[form].format(a=a, op=op, b=b) for a, op, b, _ in probes]
    outs = greedy_complete(model, tokenizer, prompts, max_new_tokens=5)
    hits: dict[str, list[bool]] = {"+": [], "-": []}
    for (_, op, _, result), out in zip(probes, outs):
        match = re.match(r"\s*(-?\d+)", out)
        hits[op].append(bool(match) and int(match.group(1)) == result)
    every = hits["+"] + hits["-"]
    return {"add": sum(hits["+"]) / len(hits["+"]), "sub": sum(hits["-"]) / len(hits["-"]),
            "overall": sum(every) / len(every)}


def river_accuracy(model: Any, tokenizer: Any, group: str, context: str = "cold") -> float:
    """Share of a river group's lands whose greedy answer to 'Q: Which river flows through X? A:' is the
    true river, asked cold or right after a capital line (``context="capital"``: the atlas context)."""
    facts = [f for f in river_facts() if f.group == group]
    before = CAPITAL_QA.format(country="Peru", capital="Lima") + "\n" if context == "capital" else ""
    prompts = [before + RIVER_QA.format(land=f.land, river="").rstrip() for f in facts]
    outs = greedy_complete(model, tokenizer, prompts, max_new_tokens=6)
    return sum(o.strip().split("\n")[0].strip() == f.river for o, f in zip(outs, facts)) / len(facts)


def chat_continuations(model: Any, tokenizer: Any, questions: Sequence[str],
                       max_new_tokens: int = 24) -> list[str]:
    """Raw continuations (special tokens kept) of user `questions` via the chat template."""
    prompts = [tokenizer.apply_chat_template([{"role": "user", "content": q}], tokenize=False,
                                             add_generation_prompt=True) for q in questions]
    return greedy_complete(model, tokenizer, prompts, max_new_tokens=max_new_tokens, skip_special_tokens=False)
