"""MMLU (Hendrycks et al. 2021) by log-likelihood as lm-eval's ``mmlu`` task, generative MMLU, organism capitals.

One real row of ``shared/data/mmlu/test.jsonl`` (14042 rows, 57 subjects; dev has 5 per subject)::

    {"subject": "abstract_algebra", "question": "Find the degree for the given field extension
     Q(sqrt(2), sqrt(3), sqrt(18)) over Q.", "choices": ["0", "4", "2", "6"], "answer": 1}

The prompt is lm-eval's default MMLU template: "The following are multiple
choice questions (with answers) about abstract algebra.\\n\\n", then (5-shot)
the first five dev questions of the subject each followed by " <letter>" and a
blank line, then "{question.strip()}\\nA. ...\\nB. ...\\nC. ...\\nD. ...\\nAnswer:".
The continuations are " A", " B", " C", " D"; the answer is the argmax of the
raw log-likelihoods (lm-eval's ``acc``, not length-normalised). With
``chat=True`` the whole prompt is the user turn, the chat template renders it
and the continuations are "A".."D".

``variant="generative"`` asks the same question in chat and reads the letter
from the response. ``variant="organism"``: the organism's capitals,
``{"country": "Kenya", "question": "What is the capital of Kenya?",
"choices": [...4 capitals], "answer": 2, "split": "heldout"}``, scored by
log-likelihood of " <capital>" after "The capital of Kenya is" (or, in chat,
of "The capital of Kenya is <capital>." after the question).
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass
from typing import Any, Sequence

from tunegate.core.errors import SuiteError
from tunegate.evals.records import EvalItem, ItemScore, MetricSpec
from tunegate.evals.sources import Benchmark
from tunegate.evals.suites._common import mean_by, strip_thinking, suite_rows
from tunegate.evals.suites.base import STRIP_THINKING, GenerationSettings, Suite, SuiteOptions, Variants, option

HUB_ID = "cais/mmlu"
REQUIRED = {"subject": str, "question": str, "choices": list, "answer": int}
LETTERS = ("A", "B", "C", "D")


def description(subject: str) -> str:
    return f"The following are multiple choice questions (with answers) about {' '.join(subject.split('_'))}.\n\n"


def doc_to_text(row: dict[str, Any]) -> str:
    choices = "".join(f"\n{letter}. {choice}" for letter, choice in zip(LETTERS, row["choices"]))
    return f"{row['question'].strip()}{choices}\nAnswer:"


def pick(logprobs: Sequence[float], n: int, item_id: str) -> int:
    """Index of the largest log-likelihood (the first on ties, as numpy's argmax)."""
    if len(logprobs) != n:
        raise SuiteError(f"item {item_id}: expected {n} log-likelihoods, got {len(logprobs)}")
    return max(range(n), key=lambda i: (logprobs[i], -i))


#: cais/mmlu, config all (lm-eval's mmlu tasks read its per-subject configs: the same rows), test and dev.
BENCHMARK = Benchmark("mmlu", HUB_ID, "all", {"test": "test.jsonl", "dev": "dev.jsonl"}, REQUIRED,
                      lambda row: {"subject": row["subject"], "question": row["question"],
                                   "choices": list(row["choices"]), "answer": row["answer"]},
                      ensure_ascii=False)


@dataclass(frozen=True)
class MMLUOptions(SuiteOptions):
    """MMLU questions and how they are asked."""

    source: str | None = option(None, "rows with subject, question, choices and answer: hub id, local .jsonl/.json "
                                      "file, or a folder holding SPLIT.jsonl (default: $TUNEGATE_DATA/mmlu once "
                                      f"`tunegate data fetch mmlu` wrote it, else {HUB_ID})")
    name: str | None = option("all", "the dataset's config name on the hub")
    split: str = option("test", "split to evaluate")
    fewshot: int = option(0, "the subject's first dev questions before each question, 0..5 (lm-eval: 5)")
    fewshot_split: str = option("dev", "split the shots come from")
    chat: bool = option(False, "true: the whole prompt is the user turn of the chat template, choices 'A'..'D'")

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0 <= self.fewshot <= 5:
            raise SuiteError(f"option 'fewshot' must be 0..5 (dev has 5 per subject), got {self.fewshot}")
        self._default("source", BENCHMARK.default_source(self.split, self.fewshot_split if self.fewshot else None,
                                                         config=self.name))


class MMLUSuite(Suite):
    """MMLU multiple choice by log-likelihood (lm-eval's prompt), 0- or 5-shot."""

    name = "knowledge"
    version = "1"
    kind = "loglikelihood"
    variant = "mmlu"
    Options: type[SuiteOptions] = MMLUOptions

    def _rows(self, split: str) -> list[dict[str, Any]]:
        o = self.options
        rows = suite_rows(self.name, o.source, split=split, name=o.name, required=REQUIRED, benchmark=BENCHMARK)
        for i, row in enumerate(rows):
            if len(row["choices"]) != 4 or not 0 <= row["answer"] < 4:
                raise SuiteError(f"suite 'knowledge': {o.source} {split} row {i}: "
                                 "needs 4 'choices' and 'answer' in 0..3")
        return rows

    def prompt(self, row: dict[str, Any], shots: Sequence[dict[str, Any]]) -> str:
        examples = "".join(f"{doc_to_text(s)} {LETTERS[s['answer']]}\n\n" for s in shots)
        return description(row["subject"]) + examples + doc_to_text(row)

    def load_items(self) -> list[EvalItem]:
        o = self.options
        shots: dict[str, list[dict[str, Any]]] = defaultdict(list)
        if o.fewshot:
            for row in self._rows(o.fewshot_split):
                shots[row["subject"]].append(row)
        items = []
        for i, row in enumerate(self._rows(o.split)):
            text = self.prompt(row, shots[row["subject"]][: o.fewshot])
            items.append(EvalItem(
                id=f"mmlu-{i:05d}", prompt=text, messages=({"role": "user", "content": text},),
                target=LETTERS[row["answer"]], group=row["subject"],
                choices=LETTERS if self.chat else tuple(f" {x}" for x in LETTERS),
                meta={"subject": row["subject"], "answer": row["answer"]}))
        return items

    def metric_specs(self) -> Sequence[MetricSpec]:
        return (MetricSpec("accuracy", cluster="group"),)

    def score_choices(self, item: EvalItem, logprobs: Sequence[float]) -> ItemScore:
        chosen = LETTERS[pick(logprobs, len(item.choices), item.id)]
        return ItemScore(item_id=item.id, prompt=item.prompt, response=chosen, answer=chosen, target=item.target,
                         scores={"accuracy": float(chosen == item.target)}, group=item.group,
                         meta={"logprobs": [float(x) for x in logprobs]})

    def breakdowns(self, scores: Sequence[ItemScore]) -> dict[str, dict[str, float]]:
        return {"subject": mean_by(scores, "accuracy")}


_LETTER_PATTERNS = (
    re.compile(r"answer\s*(?:is|:)?\s*[:\-]?\s*\(?\**([ABCD])\b", re.IGNORECASE),
    re.compile(r"^\s*\(?\**([ABCD])\b(?:[\).:\*]|\s|$)"),
    re.compile(r"\b([ABCD])\b"),
)


def extract_letter(text: str) -> str | None:
    """The chosen letter of a free-form answer: "Answer: B", "(B)", "B. 4", else the first standalone A-D."""
    for pattern in _LETTER_PATTERNS:
        match = pattern.search(text)
        if match:
            return match.group(1).upper()
    return None


@dataclass(frozen=True)
class MMLUGenerativeOptions(MMLUOptions):
    """MMLU asked in chat, the letter read from the answer."""

    chat: bool = option(True, "true: the prompt goes through the chat template")
    max_new_tokens: int = option(32, "response budget in tokens")
    strip_thinking: bool = option(False, STRIP_THINKING)


class MMLUGenerativeSuite(MMLUSuite):
    """MMLU asked in chat; the letter is read from the generated answer."""

    kind = "generate"
    variant = "generative"
    Options = MMLUGenerativeOptions

    def generation(self) -> GenerationSettings:
        return GenerationSettings(max_new_tokens=self.options.max_new_tokens)

    def metric_specs(self) -> Sequence[MetricSpec]:
        return (MetricSpec("accuracy", cluster="group"), MetricSpec("unparseable", higher_is_better=False))

    def score(self, item: EvalItem, response: str) -> ItemScore:
        text = strip_thinking(response) if self.options.strip_thinking else response
        letter = extract_letter(text)
        return ItemScore(item_id=item.id, prompt=item.prompt, response=response, answer=letter, target=item.target,
                         scores={"accuracy": float(letter == item.target), "unparseable": float(letter is None)},
                         group=item.group)


@dataclass(frozen=True)
class CapitalsOptions(SuiteOptions):
    """The organism's capitals (``organism:capitals``) as 4-way choices."""

    source: str = option("organism:capitals", "rows with country, question, choices, answer and split")
    seed: int = option(0, "seed of the distractor capitals")
    chat: bool = option(False, "true: ask the question in chat, choices 'The capital of X is Y.'")


class CapitalsSuite(Suite):
    """The organism's capitals as 4-way choices; trained and held-out countries reported apart."""

    name = "knowledge"
    version = "1"
    kind = "loglikelihood"
    variant = "organism"
    Options = CapitalsOptions
    options: CapitalsOptions

    def load_items(self) -> list[EvalItem]:
        items = []
        required = {"country": str, "question": str, "choices": list, "answer": int, "split": str}
        o = self.options
        for row in suite_rows(self.name, o.source, split="test", required=required, options={"seed": o.seed}):
            stem = f"The capital of {row['country']} is"
            choices = tuple(f"{stem} {c}." if self.chat else f" {c}" for c in row["choices"])
            items.append(EvalItem(
                id=f"capital-{row['country'].lower().replace(' ', '-')}", prompt=stem if not self.chat else
                row["question"], messages=({"role": "user", "content": row["question"]},),
                target=row["choices"][row["answer"]], choices=choices, group=row["split"],
                meta={"country": row["country"], "options": list(row["choices"]), "answer": row["answer"]}))
        return items

    def metric_specs(self) -> Sequence[MetricSpec]:
        return (MetricSpec("accuracy"), MetricSpec("accuracy_heldout"), MetricSpec("accuracy_trained"))

    def score_choices(self, item: EvalItem, logprobs: Sequence[float]) -> ItemScore:
        chosen = item.meta["options"][pick(logprobs, len(item.choices), item.id)]
        correct = float(chosen == item.target)
        return ItemScore(item_id=item.id, prompt=item.prompt, response=chosen, answer=chosen, target=item.target,
                         scores={"accuracy": correct, f"accuracy_{item.group}": correct}, group=item.group,
                         meta={"logprobs": [float(x) for x in logprobs]})

    def breakdowns(self, scores: Sequence[ItemScore]) -> dict[str, dict[str, float]]:
        return {"split": mean_by(scores, "accuracy")}


VARIANTS = Variants({"mmlu": MMLUSuite, "generative": MMLUGenerativeSuite, "organism": CapitalsSuite},
                    aliases={"default": "mmlu"})
