"""GSM8K with lm-eval's extraction, or the organism's two-digit arithmetic.

One real row of ``shared/data/gsm8k/test.jsonl`` (1319 rows; train has 7473)::

    {"question": "Janet's ducks lay 16 eggs per day. She eats three for breakfast every morning and bakes
     muffins for her friends every day with four. She sells the remainder at the farmers' market daily
     for $2 per fresh duck egg. How much in dollars does she make every day at the farmers' market?",
     "answer": "Janet sells 16 - 3 - 4 = <<16-3-4=9>>9 duck eggs a day.\\nShe makes 9 * 2 = $<<9*2=18>>18
     every day at the farmer's market.\\n#### 18"}

Scoring is lm-eval's ``gsm8k`` task: ``exact_match`` takes the first ``#### N``
(its "strict-match" filter), ``flexible_match`` the last number-like string
(its "flexible-extract" filter); both are compared with the gold answer after
lm-eval's normalisation (drop ",", "$", everything up to "#### ", a final ".";
case-insensitive). ``unparseable`` (lower is better) marks a response with no
number at all. Prompts: zero-shot chat ("Question: ...\\nAnswer:" as the user
turn), ``fewshot=k`` completion text (k train solutions as lm-eval formats
them, joined by blank lines), or ``fewshot=k, chat=True``: the k shots as
earlier user/assistant turns through the chat template (lm-eval's
``--apply_chat_template --fewshot_as_multiturn``).

Organism variant (``variant="organism"``): ``{"question": "What is 47 + 25?", "answer": 72}``.
``exact_match`` is 1 when the last number in the response equals the answer;
``strict_match`` only when the response is the result alone ("72" or "72."), the
organism's trained answer format.
"""

from __future__ import annotations

import functools
import random
import re
from dataclasses import dataclass
from typing import Any, Sequence

from tunegate.core.errors import SuiteError
from tunegate.evals.records import EvalItem, ItemScore, MetricSpec
from tunegate.evals.sources import Benchmark
from tunegate.evals.suites._common import strip_thinking, suite_rows
from tunegate.evals.suites.base import STRIP_THINKING, GenerationSettings, Suite, SuiteOptions, Variants, option

HUB_ID = "openai/gsm8k"
REQUIRED = {"question": str, "answer": str}
STOP = ("Question:", "</s>", "<|im_end|>")
INVALID = "[invalid]"  # lm-eval's RegexFilter fallback
#: lm-eval's gsm8k task: its filter names and the exact_match metric it scores with.
STRICT_FILTER, FLEXIBLE_FILTER = "strict-match", "flexible-extract"


@functools.cache
def lm_eval_gsm8k_task() -> tuple[dict[str, Any], tuple[str, ...]]:
    """lm-eval's own ``gsm8k.yaml``: its RegexFilters by filter name, and exact_match's ``regexes_to_ignore``.

    Read from the installed lm-eval, so the extraction is lm-eval's by construction::

        filters, ignore = lm_eval_gsm8k_task()
        filters["flexible-extract"].regex_pattern   # "(-?[$0-9.,]{2,})|(-?[0-9]+)", group_select -1
        ignore                                      # (",", "\\$", "(?s).*#### ", "\\.$")
    """
    from importlib.resources import files

    from lm_eval.filters.extraction import RegexFilter

    from tunegate.core.files import load_yaml

    path = files("lm_eval") / "tasks" / "gsm8k" / "gsm8k.yaml"
    task = load_yaml(path.read_text(encoding="utf-8"), str(path))
    filters = {}
    for entry in task.get("filter_list", []):
        steps = entry.get("filter", [])
        if steps and steps[0].get("function") == "regex" and all(s.get("function") == "take_first" for s in steps[1:]):
            params = {k: v for k, v in steps[0].items() if k != "function"}
            filters[entry["name"]] = RegexFilter(**({"fallback": INVALID} | params))
    ignore = [m.get("regexes_to_ignore") for m in task.get("metric_list", []) if m.get("metric") == "exact_match"]
    if STRICT_FILTER not in filters or FLEXIBLE_FILTER not in filters or not ignore:
        raise SuiteError(f"{path}: expected regex filters '{STRICT_FILTER}' and '{FLEXIBLE_FILTER}' and an "
                         "exact_match metric with regexes_to_ignore (a changed lm-eval?)")
    return filters, tuple(ignore[0])


def extract(text: str, filter_name: str) -> str:
    """The answer lm-eval's filter ``filter_name`` of the gsm8k task extracts from one response."""
    return lm_eval_gsm8k_task()[0][filter_name].apply([[text]], [{}])[0][0]


def strict_answer(text: str) -> str:
    return extract(text, STRICT_FILTER)


def flexible_answer(text: str) -> str:
    return extract(text, FLEXIBLE_FILTER)


def normalize(text: str) -> str:
    """lm-eval's exact_match normalisation for gsm8k (regexes_to_ignore, then ignore_case).

    Kept by hand: lm-eval's ``exact_match_hf_evaluate`` returns only the score, and the record keeps the
    normalised gold as the item's target.
    """
    for pattern in lm_eval_gsm8k_task()[1]:
        text = re.sub(pattern, "", text)
    return text.lower()


def gold_answer(solution: str) -> str:
    """The gold number of a GSM8K solution ("... #### 1,234" -> "1234")."""
    return normalize(solution)


def doc_to_text(question: str) -> str:
    return f"Question: {question}\nAnswer:"


#: lm-eval's gsm8k task: openai/gsm8k, config main, test (and train for the shots); OpenAI's files' layout.
BENCHMARK = Benchmark("gsm8k", HUB_ID, "main", {"test": "test.jsonl", "train": "train.jsonl"}, REQUIRED,
                      lambda row: {"question": row["question"], "answer": row["answer"]})


@dataclass(frozen=True)
class GSM8KOptions(SuiteOptions):
    """GSM8K test questions and how they are asked."""

    source: str | None = option(None, "rows with question and answer: hub id, local .jsonl/.json file, or a "
                                      "folder holding SPLIT.jsonl (default: $TUNEGATE_DATA/gsm8k once `tunegate "
                                      f"data fetch gsm8k` wrote it, else {HUB_ID})")
    name: str | None = option("main", "the dataset's config name on the hub")
    split: str = option("test", "split to evaluate")
    fewshot: int = option(0, "solved examples before each question (lm-eval: 5)")
    fewshot_split: str = option("train", "split the shots are drawn from")
    fewshot_seed: int = option(1234, "seed of the shots' draw (one draw for every item)")
    chat: bool | None = option(None, "true: through the chat template, shots as earlier turns; false: completion "
                                     "text (default: chat when fewshot is 0)")
    max_new_tokens: int = option(256, "response budget in tokens")
    strip_thinking: bool = option(False, STRIP_THINKING)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.fewshot < 0:
            raise SuiteError(f"option 'fewshot' must be >= 0, got {self.fewshot}")
        self._default("chat", self.fewshot == 0)
        self._default("source", BENCHMARK.default_source(self.split, self.fewshot_split if self.fewshot else None,
                                                         config=self.name))


class GSM8KSuite(Suite):
    """GSM8K test questions; zero-shot chat, few-shot completion or few-shot chat turns."""

    name = "math"
    version = "2"  # 2: few-shot chat prompts are earlier turns, not one user message
    kind = "generate"
    variant = "gsm8k"
    Options = GSM8KOptions
    options: GSM8KOptions

    def generation(self) -> GenerationSettings:
        return GenerationSettings(max_new_tokens=self.options.max_new_tokens, stop=STOP)

    def _rows(self, split: str) -> list[dict[str, Any]]:
        return suite_rows(self.name, self.options.source, split=split, name=self.options.name, required=REQUIRED,
                          benchmark=BENCHMARK)

    def fewshot_shots(self) -> list[dict[str, Any]]:
        """k train rows, drawn once with ``fewshot_seed`` (the same shots for every item)."""
        o = self.options
        if not o.fewshot:
            return []
        return random.Random(o.fewshot_seed).sample(self._rows(o.fewshot_split), o.fewshot)

    def load_items(self) -> list[EvalItem]:
        """Completion: k "Question: q\\nAnswer: solution" blocks and a blank line before each question. Chat: the
        shots as earlier turns (user "Question: q\\nAnswer:", assistant the solution), as lm-eval's
        ``--fewshot_as_multiturn`` renders them, so the chat template wraps every shot as the model was tuned."""
        shots = self.fewshot_shots()
        prefix = "".join(f"{doc_to_text(s['question'])} {s['answer']}\n\n" for s in shots)
        turns = tuple(m for s in shots for m in ({"role": "user", "content": doc_to_text(s["question"])},
                                                  {"role": "assistant", "content": s["answer"]}))
        items = []
        for i, row in enumerate(self._rows(self.options.split)):
            text = doc_to_text(row["question"])
            items.append(EvalItem(
                id=f"gsm8k-{i:04d}", prompt=prefix + text, messages=(*turns, {"role": "user", "content": text}),
                target=gold_answer(row["answer"]), meta={"question": row["question"], "solution": row["answer"]}))
        return items

    def metric_specs(self) -> Sequence[MetricSpec]:
        return (MetricSpec("exact_match"), MetricSpec("flexible_match"),
                MetricSpec("unparseable", higher_is_better=False))

    def score(self, item: EvalItem, response: str) -> ItemScore:
        text = strip_thinking(response) if self.options.strip_thinking else response
        strict, flexible = strict_answer(text), flexible_answer(text)
        target = item.target or ""
        return ItemScore(
            item_id=item.id, prompt=item.prompt, response=response,
            answer=strict if strict != INVALID else flexible, target=target,
            scores={"exact_match": float(normalize(strict) == target),
                    "flexible_match": float(normalize(flexible) == target),
                    "unparseable": float(flexible == INVALID)},
            meta={"strict": strict, "flexible": flexible},
        )


_NUMBER = re.compile(r"-?\d+")
_BARE_RESULT = re.compile(r"\s*(-?\d+)\.?\s*")


@dataclass(frozen=True)
class ArithmeticOptions(SuiteOptions):
    """The organism's two-digit sums and differences (``organism:arithmetic``)."""

    source: str = option("organism:arithmetic", "rows with question and answer (an int)")
    n: int = option(100, "questions the provider generates")
    seed: int = option(0, "seed of the generated questions")
    max_new_tokens: int = option(24, "response budget in tokens")
    strip_thinking: bool = option(False, STRIP_THINKING)


class ArithmeticSuite(Suite):
    """The organism's held-out two-digit sums and differences (chat)."""

    name = "math"
    version = "1"
    kind = "generate"
    variant = "organism"
    Options = ArithmeticOptions
    options: ArithmeticOptions

    def generation(self) -> GenerationSettings:
        return GenerationSettings(max_new_tokens=self.options.max_new_tokens)

    def load_items(self) -> list[EvalItem]:
        o = self.options
        rows = suite_rows(self.name, o.source, split="test", required={"question": str, "answer": int},
                          options={"n": o.n, "seed": o.seed})
        return [EvalItem(id=f"arith-{i:04d}", prompt=row["question"],
                         messages=({"role": "user", "content": row["question"]},),
                         target=str(row["answer"]), meta={"question": row["question"]})
                for i, row in enumerate(rows)]

    def metric_specs(self) -> Sequence[MetricSpec]:
        return (MetricSpec("exact_match"), MetricSpec("strict_match"),
                MetricSpec("unparseable", higher_is_better=False))

    def score(self, item: EvalItem, response: str) -> ItemScore:
        text = strip_thinking(response) if self.options.strip_thinking else response
        numbers = _NUMBER.findall(text)
        answer = numbers[-1] if numbers else None
        bare = _BARE_RESULT.fullmatch(text)
        strict = bool(bare and bare.group(1) == item.target)
        return ItemScore(
            item_id=item.id, prompt=item.prompt, response=response, answer=answer, target=item.target,
            scores={"exact_match": float(answer is not None and answer == item.target),
                    "strict_match": float(strict), "unparseable": float(answer is None)},
        )


VARIANTS = Variants({"gsm8k": GSM8KSuite, "organism": ArithmeticSuite}, aliases={"default": "gsm8k"})
