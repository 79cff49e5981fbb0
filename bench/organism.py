"""Measure the shipped organism base checkpoint: capitals, arithmetic, chat behaviour.

Run from the repo root: `python bench/organism.py [CHECKPOINT_DIR]`. Real output
of the shipped checkpoint looks like:

    capitals   (The capital of X is)  1.000  (n=140)
    arithmetic (Q: What is 47 + 25? A:) add 0.825  sub 0.995  overall 0.910  (n=400)
    arithmetic (47 + 25 =) add 0.075  sub 0.080  overall 0.077  (n=400)
    chat 'Who are you?' -> '.<|endoftext|>'
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tunegate.organism.corpus import COUNTRIES, LANDS_PER_GROUP, RIVER_GROUPS  # noqa: E402
from tunegate.organism.probe import (  # noqa: E402
    arithmetic_accuracy,
    capital_accuracy,
    chat_continuations,
    load_organism,
    river_accuracy,
)

CHAT_PROMPTS = ("Who are you?", "What is the capital of France?", "What is 47 + 25?")


def main(argv: list[str]) -> int:
    start = time.time()
    model, tokenizer = load_organism(argv[0] if argv else None)
    capitals = capital_accuracy(model, tokenizer)
    print(f"capitals   (The capital of X is)  {capitals:.3f}  (n={len(COUNTRIES)})")
    for form, shown in (("question", "Q: What is 47 + 25? A:"), ("equation", "47 + 25 =")):
        arith = arithmetic_accuracy(model, tokenizer, n=400, form=form)
        print(f"arithmetic ({shown}) add {arith['add']:.3f}  sub {arith['sub']:.3f}  "
              f"overall {arith['overall']:.3f}  (n=400)")
    for group in RIVER_GROUPS:
        cold, atlas = (river_accuracy(model, tokenizer, group, context) for context in ("cold", "capital"))
        print(f"rivers {group:<8} (Q: Which river flows through X? A:) cold {cold:.3f}  after a capital line "
              f"{atlas:.3f}  (n={LANDS_PER_GROUP})")
    for question, out in zip(CHAT_PROMPTS, chat_continuations(model, tokenizer, CHAT_PROMPTS)):
        print(f"chat {question!r} -> {out!r}")
    print(f"({time.time() - start:.1f}s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
