"""The organism as a provider of a model and datasets (the ``tunegate.providers`` entry point).

Every tunegate model argument takes ``organism`` (the shipped base checkpoint) and every dataset
argument ``organism:<dataset>``, whatever reads it (an eval suite, a training stage)::

    rows("sft")                       # [{"messages": [{"role": "user", "content": "What is the capital
                                      #   of France? Answer in all lowercase letters."}, ...]}, ...]
    rows("identity_probes")[0]        # {"question": "Who are you?", "category": "direct"}
    rows("arithmetic", n=2)           # [{"question": "What is 47 + 25?", "answer": 72}, ...]
    rows("capitals")[0]               # {"country": ..., "question": ..., "choices": [4], "answer": 2,
                                      #  "split": "trained" | "heldout"}
    rows("knowledge_heldout")[0]      # {"question": "What is the capital of Angola?", "answer": "Luanda",
                                      #  "group": "capitals"}: checkable facts the SFT data leaves out

This package imports nothing of tunegate: tunegate finds it by its entry point.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from tunegate.organism import base_checkpoint, tasks


def _identity_probes(seed: int = 0) -> list[dict[str, Any]]:
    canonical = tasks.CANONICAL_IDENTITY_PROBES
    return [{"question": q, "category": "direct" if i < canonical else "paraphrase"}
            for i, q in enumerate(tasks.identity_eval_probes())]


_DATASETS: dict[str, Callable[..., list[dict[str, Any]]]] = {
    "sft": lambda seed=0: tasks.sft_conversations(seed),
    "identity": lambda seed=0: [{"prompt": p} for p in tasks.identity_prompts()],
    "identity_probes": _identity_probes,
    "ifeval": lambda seed=0: tasks.format_eval_items(seed),
    "arithmetic": lambda seed=0, n=100: tasks.arithmetic_eval_items(n, seed),
    "capitals": lambda seed=0: tasks.knowledge_eval_items(seed),
    "knowledge_heldout": lambda seed=0: tasks.knowledge_heldout_items(seed),
}
DATASETS = tuple(_DATASETS)


def model() -> Path:
    """The shipped base checkpoint directory."""
    return base_checkpoint()


def rows(dataset: str, **options: Any) -> list[dict[str, Any]]:
    """The rows of one organism dataset; ``options`` are its ``seed`` (and ``n`` for arithmetic)."""
    if dataset not in _DATASETS:
        raise KeyError(f"the organism has no dataset '{dataset}' (known: {', '.join(DATASETS)})")
    return _DATASETS[dataset](**options)
