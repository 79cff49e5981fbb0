"""IFEval (Zhou et al. 2023): verifiable instructions, checked as Google's reference checks them.

One real row of Google's ``input_data.jsonl`` (541 rows, 834 instructions)::

    {"key": 1001, "prompt": "I am planning a trip to Japan, and I would like thee to write an itinerary
     for my journey in a Shakespearean style. You are not allowed to use any commas in your response.",
     "instruction_id_list": ["punctuation:no_comma"], "kwargs": [{}]}

The checks are lm-eval's (``lm_eval.tasks.ifeval``: its copy of Google's
instruction registry, and ``utils.test_instruction_following_strict`` /
``_loose``, the port of Google's ``evaluation_lib.py``): instructions whose
``get_instruction_args()`` names ``prompt`` are rebuilt with the prompt, an
empty response fails, and "loose" accepts any of eight variants (first/last/both
lines removed, each with and without asterisks). lm-eval drops every falsy
kwarg where Google drops none; they agree on Google's data and on the hub copy
(``None`` for unset keys), and a falsy non-null kwarg (``0``, ``""``) is refused
as bad input rather than scored differently from the reference. Two things the
reference leaves to chance are pinned so the same response always gets the
same verdict: ``langdetect`` is seeded with 0, and Python's ``random`` is seeded
per (key, instruction) before each check (keys 1122 and 1129 ask for the frequency
of "#" and "!", for which the reference draws a random letter).

    suite = get_suite("ifeval", source="shared/data/ifeval/input_data.jsonl")       # or variant="organism"
    suite.score(suite.items()[0], "Day one in Tokyo ...").scores
    # {"prompt_strict": 1.0, "prompt_loose": 1.0, "inst_strict": (1.0,), "inst_loose": (1.0,)}
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

from tunegate.core.errors import SuiteError
from tunegate.evals.records import EvalItem, ItemScore, MetricSpec
from tunegate.evals.sources import Benchmark
from tunegate.evals.suites._common import mean_by, strip_thinking, suite_rows
from tunegate.evals.suites.base import STRIP_THINKING, GenerationSettings, Suite, SuiteOptions, Variants, option

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
    """Unknown instruction ids, mismatched kwargs or falsy non-null kwargs are a SuiteError naming the key."""
    registry = instruction_registry()
    prefix = f"{where}: " if where else ""
    for instruction_id in ids:
        if instruction_id not in registry:
            raise SuiteError(f"{prefix}key {key}: unknown IFEval instruction id '{instruction_id}'")
    if len(kwargs) != len(ids) or not all(isinstance(k, dict) for k in kwargs):
        raise SuiteError(f"{prefix}key {key}: 'kwargs' must be a list of {len(ids)} objects, one per instruction")
    for index, args in enumerate(kwargs):
        for name, value in args.items():
            if value is not None and not value:  # lm-eval would drop it (and draw a random value): not Google's verdict
                raise SuiteError(f"{prefix}key {key}: kwargs[{index}].{name} is {value!r}; give a value or null")


def follow_instructions(key: Any, prompt: str, ids: Sequence[str], kwargs: Sequence[Mapping[str, Any]],
                        response: str) -> Verdict:
    """Strict and loose verdicts of one response, per instruction: lm-eval's ``ifeval.utils`` checks.

    ``test_instruction_following_strict`` / ``_loose`` judge each instruction on its own, so they are
    called one instruction at a time with Python's ``random`` seeded per (key, instruction) before each:
    strict and loose draw the same values (keys 1122 and 1129) and a response always gets the same verdict.
    """
    instruction_registry()  # punkt_tab present, langdetect seeded
    from lm_eval.tasks.ifeval.utils import (InputExample, test_instruction_following_loose,
                                            test_instruction_following_strict)

    strict: list[bool] = []
    loose: list[bool] = []
    state = random.getstate()
    try:
        for index, (instruction_id, args) in enumerate(zip(ids, kwargs)):
            one = InputExample(key=key, instruction_id_list=[instruction_id], prompt=prompt, kwargs=[dict(args)])
            for check, verdicts in ((test_instruction_following_strict, strict),
                                    (test_instruction_following_loose, loose)):
                random.seed(f"ifeval:{key}:{index}:{instruction_id}")
                verdicts.append(bool(check(one, response).follow_instruction_list[0]))
    finally:
        random.setstate(state)
    return Verdict(strict=tuple(strict), loose=tuple(loose))


def google_row(row: Mapping[str, Any]) -> dict[str, Any]:
    """A hub row as a line of Google's ``input_data.jsonl``: each instruction's kwargs without the keys the hub's
    table fills with null (``{"num_highlights": 3, "relation": None, ...}`` -> ``{"num_highlights": 3}``)."""
    return {"key": row["key"], "prompt": row["prompt"], "instruction_id_list": list(row["instruction_id_list"]),
            "kwargs": [{k: v for k, v in kw.items() if v is not None} for kw in row["kwargs"]]}


#: lm-eval's ifeval task reads google/IFEval's train split; ``tunegate data fetch ifeval`` writes Google's file.
BENCHMARK = Benchmark("ifeval", HUB_ID, None, {"train": "input_data.jsonl"}, REQUIRED, google_row)


@dataclass(frozen=True)
class IFEvalOptions(SuiteOptions):
    """Google's IFEval prompts from the hub or a local copy of ``input_data.jsonl``."""

    source: str | None = option(None, "rows in Google's input_data.jsonl format: hub id, local .jsonl/.json file, "
                                      "or a folder holding SPLIT.jsonl (default: $TUNEGATE_DATA/ifeval/"
                                      f"input_data.jsonl once `tunegate data fetch ifeval` wrote it, else {HUB_ID})")
    split: str = option("train", "split to evaluate (the hub copy has only train)")
    max_new_tokens: int = option(1280, "response budget in tokens (Google's reference: 1280)")
    strip_thinking: bool = option(False, STRIP_THINKING)

    def __post_init__(self) -> None:
        super().__post_init__()
        self._default("source", BENCHMARK.default_source(self.split))


@dataclass(frozen=True)
class OrganismIFEvalOptions(SuiteOptions):
    """The organism's format items (``organism:ifeval``), in Google's input format."""

    seed: int = option(0, "seed of the organism's generated format items")
    max_new_tokens: int = option(48, "response budget in tokens")
    strip_thinking: bool = option(False, STRIP_THINKING)


class IFEvalSuite(Suite):
    """IFEval prompts, scored strict and loose."""

    name = "ifeval"
    version = "1"
    kind = "generate"
    variant = "default"
    Options: type[SuiteOptions] = IFEvalOptions

    def generation(self) -> GenerationSettings:
        return GenerationSettings(max_new_tokens=self.options.max_new_tokens)

    def source_rows(self) -> list[dict[str, Any]]:
        return suite_rows(self.name, self.options.source, split=self.options.split, required=REQUIRED,
                          benchmark=BENCHMARK)

    def rows(self) -> list[dict[str, Any]]:
        """The raw rows in Google's input format, validated."""
        rows = self.source_rows()
        where = str(getattr(self.options, "source", ORGANISM_SOURCE))
        first: dict[Any, int] = {}
        for number, row in enumerate(rows, start=1):
            check_ids(row["key"], row["instruction_id_list"], row["kwargs"], where)
            if first.setdefault(row["key"], number) != number:  # the key names the item: ifeval-{key}
                raise SuiteError(f"suite 'ifeval': {where}: key {row['key']} is given twice (rows "
                                 f"{first[row['key']]} and {number}); every prompt needs its own key")
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
        text = strip_thinking(response) if self.options.strip_thinking else response
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



class OrganismIFEvalSuite(IFEvalSuite):
    """The organism's format items, scored as IFEval."""

    variant = "organism"
    Options = OrganismIFEvalOptions

    def source_rows(self) -> list[dict[str, Any]]:
        return suite_rows(self.name, ORGANISM_SOURCE, split="train", required=REQUIRED,
                          options={"seed": self.options.seed}, option="seed")


VARIANTS = Variants({"default": IFEvalSuite, "organism": OrganismIFEvalSuite})
