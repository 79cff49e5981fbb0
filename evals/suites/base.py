"""What a suite is: items + prompt builder + scorer + metrics + version, registered by name.

A generation suite turns each EvalItem into chat messages (or raw text in
completion mode), the runner generates a response, and ``score`` turns the
response into an ItemScore. A log-likelihood suite gives ``choices`` per item;
the runner scores each continuation and ``score_choices`` picks the answer.

Example (the organism's math suite)::

    suite = get_suite("math", variant="organism", limit=50)     # tunegate.evals.suites.get_suite
    items = suite.items()          # EvalItem(id="arith-0000", prompt="What is 47 + 25?", target="72", ...)
    suite.score(items[0], "47 + 25 = 72.").scores   # {"exact_match": 1.0, "flexible_match": 1.0, ...}
"""

from __future__ import annotations

import random
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, Sequence

from tunegate.core.errors import SuiteError
from tunegate.evals.records import EvalItem, ItemScore, MetricSpec, MetricValue
from tunegate.evals.stats import metric_value


@dataclass(frozen=True)
class GenerationSettings:
    """Decoding settings of a generation suite; greedy by default."""

    max_new_tokens: int = 128
    stop: tuple[str, ...] = ()
    do_sample: bool = False
    temperature: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"max_new_tokens": self.max_new_tokens, "stop": list(self.stop),
                "do_sample": self.do_sample, "temperature": self.temperature}


class Suite(ABC):
    """Base class of every suite. Subclasses set ``name``, ``version``, ``kind``."""

    name: ClassVar[str]
    version: ClassVar[str]
    kind: ClassVar[Literal["generate", "loglikelihood"]] = "generate"
    #: chat: items are sent through the tokenizer's chat template; False: raw completion text.
    chat: bool = True
    #: Options that change how a response is scored but not what the model is asked (identity's target):
    #: a record's responses can be scored again under a candidate's values (tunegate.evals.rescore).
    scoring_options: ClassVar[tuple[str, ...]] = ()

    def __init__(self, *, limit: int | None = None, subset_seed: int = 0) -> None:
        if limit is not None and limit <= 0:
            raise SuiteError(f"suite '{self.name}': limit must be a positive integer, got {limit}")
        self.limit = limit
        self.subset_seed = subset_seed

    @abstractmethod
    def load_items(self) -> list[EvalItem]:
        """All items of the suite, in a fixed order."""

    @abstractmethod
    def metric_specs(self) -> Sequence[MetricSpec]:
        """The headline metrics, each a mean over per-item scores."""

    def items(self) -> list[EvalItem]:
        """The items to run: all, or a fixed seeded subset of ``limit`` (same for baseline and candidate)."""
        return seeded_subset(self.load_items(), self.limit, self.subset_seed)

    def generation(self) -> GenerationSettings:
        return GenerationSettings()

    def score(self, item: EvalItem, response: str) -> ItemScore:  # generate suites
        raise NotImplementedError(f"suite '{self.name}' does not score generations")

    def score_choices(self, item: EvalItem, logprobs: Sequence[float]) -> ItemScore:  # loglikelihood suites
        raise NotImplementedError(f"suite '{self.name}' does not score choices")

    def choice_context(self, item: EvalItem) -> str | None:
        """Raw context text for log-likelihood items; None means render ``item.messages`` with the chat template."""
        return None if self.chat else item.prompt

    def breakdowns(self, scores: Sequence[ItemScore]) -> dict[str, dict[str, float]]:
        """Optional per-key accuracies (per instruction id, per subject)."""
        return {}

    def config(self) -> dict[str, Any]:
        """The suite's settings as run; stored in the record and compared."""
        return {"limit": self.limit, "subset_seed": self.subset_seed, "chat": self.chat}

    def metrics(self, scores: Sequence[ItemScore]) -> dict[str, MetricValue]:
        return {spec.name: metric_value(spec, scores) for spec in self.metric_specs()}


def seeded_subset(items: list[EvalItem], limit: int | None, seed: int) -> list[EvalItem]:
    """The first ``limit`` items of one seeded order of all items, kept in their original order.

    Subsets are nested: with the same seed, the items of ``limit=20`` are among those of ``limit=30``,
    so records made with different limits compare on their common items::

        items = get_suite("math", variant="organism").load_items()      # 100 items
        [i.id for i in seeded_subset(items, 3, seed=0)]   # ['arith-0008', 'arith-0011', 'arith-0023']
        [i.id for i in seeded_subset(items, 5, seed=0)]   # the same three, plus 'arith-0007' and 'arith-0048'
    """
    if limit is None or limit >= len(items):
        return list(items)
    order = list(range(len(items)))
    random.Random(seed).shuffle(order)
    return [items[i] for i in sorted(order[:limit])]
