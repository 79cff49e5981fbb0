"""The model organism: a tiny base LM that tunegate builds and ships.

`base_checkpoint()` is the shipped, pretrained checkpoint directory (a few MB)
that loads with `AutoModelForCausalLM.from_pretrained(base_checkpoint())`.
`tunegate.organism.recipe.build_organism` rebuilds it deterministically.
"""

from __future__ import annotations

from pathlib import Path

BASE_DIR: Path = Path(__file__).resolve().parent / "base"


def base_checkpoint() -> Path:
    """Path of the shipped base checkpoint; a clear error if it is missing."""
    if not (BASE_DIR / "config.json").is_file():
        raise FileNotFoundError(
            f"organism checkpoint missing at {BASE_DIR}; rebuild it with "
            "`tunegate organism build --out organism/base`"
        )
    return BASE_DIR
