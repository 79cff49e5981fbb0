"""IFEval (Zhou et al. 2023): verifiable instructions, checked as Google's reference checks them.

One real row of Google's ``input_data.jsonl`` (541 rows, 834 instructions)::

    {"key": 1001, "prompt": "I am planning a trip to Japan, and I would like thee to write an itinerary
     for my journey in a Shakespearean style. You are not allowed to use any commas in your response.",
     "instruction_id_list": ["punctuation:no_comma"], "kwargs": [{}]}

The checkers are lm-eval's copy of Google's instruction registry
(``lm_eval.tasks.ifeval.instructions_registry``); what is ours is the harness
around them, which follows Google's ``evaluation_lib.py``: kwargs are passed as
given (only ``None`` values, which the hub copy uses for unset keys, are
dropped), instructions whose ``get_instruction_args()`` names ``prompt`` are
rebuilt with the prompt, an empty response fails, and "loose" accepts any of
eight variants (first/last/both lines removed, each with and without
asterisks). Two things the reference leaves to chance are pinned so the same
response always gets the same verdict: ``langdetect`` is seeded with 0, and
Python's ``random`` is seeded per (key, instruction) while instructions are
built (keys 1122 and 1129 ask for the frequency of "#" and "!", for which the
reference draws a random letter).

    suite = get_suite("ifeval", source="shared/data/ifeval/input_data.jsonl")
    suite.score(suite.items()[0], "Day one in Tokyo ...").scores
    # {"prompt_strict": 1.0, "prompt_loose": 1.0, "inst_strict": (1.0,), "inst_loose": (1.0,)}
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

from tunegate.evals.errors import SuiteError
from tunegate.evals.records import EvalItem, ItemScore, MetricSpec
from tunegate.evals.suites._common import mean_by, strip_thinking, suite_rows
from tunegate.evals.suites.base import GenerationSettings, Suite

HUB_ID = "google/IFEval"
ORGANISM_SOURCE = "organism:ifeval"  # the organism's format items, in Google's input format
REQUIRED = {"key": int, "prompt": str, "instruction_id_list": list, "kwargs": list}
#: NLTK's English punkt_tab, shipped with tunegate (provenance and licence: nltk_data/NOTICE.md).
BUNDLED_NLTK_DATA = Path(__file__).resolve().parent / "nltk_data"
PUNKT_HINT = ("NLTK's punkt_tab tokenizer is missing (IFEval counts sentences and words with it) and so is "
              f"tunegate's bundled copy ({BUNDLED_NLTK_DATA}): reinstall tunegate, export "
              "NLTK_DATA=/path/to/nltk_data, or run `python -m nltk.downloader punkt_tab` where there is network")


def instruction_registry() -> Mapping[str, type]:
    """lm-eval's INSTRUCTION_DICT, imported only once punkt_tab is known to be present.

    (Importing lm-eval's ifeval module downloads punkt_tab when it is missing;
    tunegate never touches the network on its own, so it checks first.) The bundled
    punkt_tab is searched last, after ``NLTK_DATA`` and NLTK's default folders.
    """
    import langdetect
    import nltk

    if str(BUNDLED_NLTK_DATA) not in nltk.data.path:
        nltk.data.path.append(str(BUNDLED_NLTK_DATA))
    try:
        nltk.data.find("tokenizers/punkt_tab/english/")
    except LookupError:
        raise SuiteError(PUNKT_HINT) from None
    from lm_eval.tasks.ifeval.instructions_registry import INSTRUCTION_DICT

    langdetect.DetectorFactory.seed = 0
    # the checkers log an error (and count the instruction as followed) when langdetect finds no features
    logging.getLogger("lm_eval.tasks.ifeval.instructions").setLevel(logging.CRITICAL)
    return INSTRUCTION_DICT


@dataclass(frozen=True)
class Verdict:
    """One prompt's verdicts: per instruction, strict and loose."""

    strict: tuple[bool, ...]
    loose: tuple[bool, ...]


def check_ids(key: Any, ids: Sequence[str], kwargs: Sequence[Any], where: str = "") -> None:
    """Unknown instruction ids or mismatched kwargs are a SuiteError naming the key."""
    registry = instruction_registry()
    prefix = f"{where}: " if where else ""
    for instruction_id in ids:
        if instruction_id not in registry:
            raise SuiteError(f"{prefix}key {key}: unknown IFEval instruction id '{instruction_id}'")
    if len(kwargs) != len(ids) or not all(isinstance(k, dict) for k in kwargs):
        raise SuiteError(f"{prefix}key {key}: 'kwargs' must be a list of {len(ids)} objects, one per instruction")


def build_instructions(key: Any, prompt: str, ids: Sequence[str], kwargs: Sequence[Mapping[str, Any]]) -> list[Any]:
    """The checker objects of one prompt, built as evaluation_lib.py builds them, with pinned randomness."""
    registry = instruction_registry()
    instructions = []
    state = random.getstate()
    try:
        for index, instruction_id in enumerate(ids):
            random.seed(f"ifeval:{key}:{index}:{instruction_id}")
            instruction = registry[instruction_id](instruction_id)
            instruction.build_description(**{k: v for k, v in kwargs[index].items() if v is not None})
            args = instruction.get_instruction_args()
            if args and "prompt" in args:
                instruction.build_description(prompt=prompt)
            instructions.append(instruction)
    finally:
        random.setstate(state)
    return instructions


def loose_variants(response: str) -> list[str]:
    """The eight responses the reference's loose check tries, in its order."""
    lines = response.split("\n")
    remove_first = "\n".join(lines[1:]).strip()
    remove_last = "\n".join(lines[:-1]).strip()
    remove_both = "\n".join(lines[1:-1]).strip()
    return [response, response.replace("*", ""), remove_first, remove_last, remove_both,
            remove_first.replace("*", ""), remove_last.replace("*", ""), remove_both.replace("*", "")]


def follow_instructions(key: Any, prompt: str, ids: Sequence[str], kwargs: Sequence[Mapping[str, Any]],
                        response: str) -> Verdict:
    """Strict and loose verdicts of one response, per instruction."""
    instructions = build_instructions(key, prompt, ids, kwargs)
    variants = loose_variants(response)
    strict = tuple(bool(response.strip() and ins.check_following(response)) for ins in instructions)
    loose = tuple(any(v.strip() and ins.check_following(v) for v in variants) for ins in instructions)
    return Verdict(strict=strict, loose=loose)


class IFEvalSuite(Suite):
    """IFEval prompts (or the organism's format items), scored strict and loose."""

    name = "ifeval"
    version = "1"
    kind = "generate"

    def __init__(self, *, source: str = HUB_ID, split: str = "train", variant: str = "default",
                 strip_thinking: bool = False, max_new_tokens: int | None = None, seed: int = 0,
                 limit: int | None = None, subset_seed: int = 0) -> None:
        super().__init__(limit=limit, subset_seed=subset_seed)
        if variant not in ("default", "organism"):
            raise SuiteError(f"suite 'ifeval': unknown variant '{variant}' (known: default, organism)")
        if variant == "organism":
            source = ORGANISM_SOURCE
        self.source, self.split, self.variant, self.seed = source, split, variant, seed
        self.strip_thinking = strip_thinking
        self.max_new_tokens = max_new_tokens or (48 if variant == "organism" else 1280)

    def config(self) -> dict[str, Any]:
        where = {"seed": self.seed} if self.variant == "organism" else {"source": self.source, "split": self.split}
        return {**super().config(), "variant": self.variant, "strip_thinking": self.strip_thinking,
                "max_new_tokens": self.max_new_tokens, **where}

    def generation(self) -> GenerationSettings:
        return GenerationSettings(max_new_tokens=self.max_new_tokens)

    def rows(self) -> list[dict[str, Any]]:
        """The raw rows in Google's input format, validated."""
        options = {"seed": self.seed} if self.variant == "organism" else None
        rows = suite_rows(self.name, self.source, split=self.split, required=REQUIRED, options=options)
        for row in rows:
            check_ids(row["key"], row["instruction_id_list"], row["kwargs"], str(self.source))
        return rows

    def load_items(self) -> list[EvalItem]:
        return [
            EvalItem(id=f"ifeval-{row['key']}", prompt=row["prompt"],
                     messages=({"role": "user", "content": row["prompt"]},),
                     target=", ".join(row["instruction_id_list"]),
                     meta={"key": row["key"], "instruction_id_list": list(row["instruction_id_list"]),
                           "kwargs": [{k: v for k, v in kw.items() if v is not None} for kw in row["kwargs"]]})
            for row in self.rows()
        ]

    def metric_specs(self) -> Sequence[MetricSpec]:
        return (MetricSpec("prompt_strict"), MetricSpec("prompt_loose"),
                MetricSpec("inst_strict", cluster="item"), MetricSpec("inst_loose", cluster="item"))

    def score(self, item: EvalItem, response: str) -> ItemScore:
        text = strip_thinking(response) if self.strip_thinking else response
        ids = item.meta["instruction_id_list"]
        verdict = follow_instructions(item.meta["key"], item.prompt, ids, item.meta["kwargs"], text)
        return ItemScore(
            item_id=item.id, prompt=item.prompt, response=response,
            answer=text if text != response else None, target=item.target,
            scores={"prompt_strict": float(all(verdict.strict)), "prompt_loose": float(all(verdict.loose)),
                    "inst_strict": tuple(float(v) for v in verdict.strict),
                    "inst_loose": tuple(float(v) for v in verdict.loose)},
            meta={"instruction_id_list": list(ids), "follow_strict": list(verdict.strict),
                  "follow_loose": list(verdict.loose)},
        )

    def breakdowns(self, scores: Sequence[ItemScore]) -> dict[str, dict[str, float]]:
        def per_instruction(s: ItemScore) -> list[tuple[str, float]]:
            return list(zip(s.meta.get("instruction_id_list", []), s.scores["inst_strict"]))  # type: ignore[arg-type]

        return {"instruction_id": mean_by(scores, "inst_strict", per_instruction)}

