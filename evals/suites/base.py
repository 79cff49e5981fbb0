"""What a suite is: items + prompt builder + scorer + metrics + version, and its options, registered by name.

A suite declares its options once, as a frozen dataclass beside it (``Options``: every field with a
default and ``metadata={"help": ...}``); the command line, the pytest plugin and the pipeline YAML
read them through ``tunegate.core.typed_config``, ``tunegate eval --help`` lists them, and the record
keeps the dataclass whole as the suite's config. A generation suite turns each EvalItem into chat
messages (or raw text in completion mode), the runner generates a response, and ``score`` turns the
response into an ItemScore. A log-likelihood suite gives ``choices`` per item; the runner scores each
continuation and ``score_choices`` picks the answer. A ``custom`` suite makes its own requests in ``run``,
through the runner's ``Calls`` (the backend's chat template, and cached, batched generations and
log-likelihoods, on the evaluated model or another: an lm-eval task's mixed requests, a judge's verdicts).

Example (the organism's math suite)::

    suite = get_suite("math", variant="organism", limit=50)     # tunegate.evals.suites.get_suite
    suite.options                  # ArithmeticOptions(limit=50, subset_seed=0, source="organism:arithmetic", ...)
    items = suite.items()          # EvalItem(id="arith-0000", prompt="What is 47 + 25?", target="72", ...)
    suite.score(items[0], "47 + 25 = 72.").scores   # {"exact_match": 1.0, "flexible_match": 1.0, ...}
"""

from __future__ import annotations

import dataclasses
import random
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Mapping, Sequence

from tunegate.core.errors import SuiteError
from tunegate.evals.records import EvalItem, ItemScore, MetricSpec, MetricValue, RunRecord

if TYPE_CHECKING:
    from tunegate.evals.requests import Calls


def option(default: Any, help: str) -> Any:
    """One suite option: its default and the help ``tunegate eval --help`` prints."""
    return field(default=default, metadata={"help": help})


STRIP_THINKING = "drop <think>...</think> blocks before scoring (the record keeps the raw response)"


@dataclass(frozen=True)
class SuiteOptions:
    """The options every suite takes: which of its items run. A suite's own options subclass this."""

    limit: int | None = option(None, "run the first N items of one seeded order of all items (null: all); "
                                     "subsets are nested, so records of different limits compare on common items")
    subset_seed: int = option(0, "seed of that order (the same for baseline and candidate)")

    def __post_init__(self) -> None:
        if self.limit is not None and self.limit <= 0:
            raise SuiteError(f"option 'limit' must be a positive integer, got {self.limit}")

    def capped(self, limit: int | None) -> "SuiteOptions":
        """These options with at most ``limit`` items (a smaller ``limit`` of their own stays)."""
        if limit is None or (self.limit is not None and self.limit <= limit):
            return self
        return dataclasses.replace(self, limit=limit)

    def _default(self, name: str, value: Any) -> None:
        """Resolve an option whose default depends on others (``None`` given): the record keeps what ran."""
        if getattr(self, name) is None:
            object.__setattr__(self, name, value)


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
    """Base class of every suite. Subclasses set ``name``, ``version``, ``kind`` and ``Options``.

    ``variant`` names a suite class among others registered under one name (``math``: ``gsm8k`` or
    ``organism``; see ``Variants``); the record keeps it beside the options.
    """

    name: ClassVar[str]
    version: ClassVar[str]
    kind: ClassVar[Literal["generate", "loglikelihood", "custom"]] = "generate"
    variant: ClassVar[str | None] = None
    Options: ClassVar[type[SuiteOptions]] = SuiteOptions
    #: Options that change how a response is scored but not what the model is asked (identity's target):
    #: a record's responses can be scored again under a candidate's values (tunegate.evals.rescore).
    scoring_options: ClassVar[tuple[str, ...]] = ()
    #: The baseline record a suite scored against a baseline (the pairwise judge) takes when its options name
    #: none: the entry point sets it (``EvalSpec.reference``: the plugin's baseline, a stage's input record).
    reference: RunRecord | None = None

    @classmethod
    def for_name(cls, name: str) -> type["Suite"]:
        """The suite class of one name of a family of suites registered as ``cls`` (``FAMILIES``: the class of
        ``lm-eval:gsm8k``, of ``checks/refusals.yaml``)."""
        raise NotImplementedError(f"suite '{cls.name}' is not a family of suites")

    def __init__(self, options: SuiteOptions | None = None, /, **fields: Any) -> None:
        """``Suite(options)``, or ``Suite(field=value, ...)`` for the options' fields (Python callers)."""
        self.options = options if options is not None else self.Options(**fields)
        if not isinstance(self.options, self.Options):
            raise SuiteError(f"suite '{self.name}': expected {self.Options.__name__}, got {type(self.options).__name__}")
        self._items: list[EvalItem] | None = None

    @property
    def chat(self) -> bool:
        """True: items are sent through the tokenizer's chat template; False: raw completion text."""
        return bool(getattr(self.options, "chat", True))

    @abstractmethod
    def load_items(self) -> list[EvalItem]:
        """All items of the suite, in a fixed order."""

    @abstractmethod
    def metric_specs(self) -> Sequence[MetricSpec]:
        """The headline metrics, each a mean over per-item scores."""

    def items(self) -> list[EvalItem]:
        """The items to run: all, or a fixed seeded subset of ``limit`` (same for baseline and candidate).

        Read once: the first call loads and validates the data (``EvalSpec.check`` makes it before any
        model loads), later calls reuse them."""
        if self._items is None:
            self._items = seeded_subset(self.load_items(), self.options.limit, self.options.subset_seed)
        return self._items

    def generation(self) -> GenerationSettings:
        return GenerationSettings()

    def score(self, item: EvalItem, response: str) -> ItemScore:  # generate suites
        raise NotImplementedError(f"suite '{self.name}' does not score generations")

    def score_choices(self, item: EvalItem, logprobs: Sequence[float]) -> ItemScore:  # loglikelihood suites
        raise NotImplementedError(f"suite '{self.name}' does not score choices")

    def run(self, calls: "Calls") -> list[ItemScore]:  # custom suites
        """Make this suite's requests through ``calls`` and score every item of ``items()``, in order."""
        raise NotImplementedError(f"suite '{self.name}' is not a custom suite")

    def choice_context(self, item: EvalItem) -> str | None:
        """Raw context text for log-likelihood items; None means render ``item.messages`` with the chat template."""
        return None if self.chat else item.prompt

    def breakdowns(self, scores: Sequence[ItemScore]) -> dict[str, dict[str, float]]:
        """Optional per-key accuracies (per instruction id, per subject)."""
        return {}

    def config(self) -> dict[str, Any]:
        """The suite's settings as run, stored in the record and compared: its variant and options, whole."""
        return options_config(self.variant, self.options)

    def metrics(self, scores: Sequence[ItemScore]) -> dict[str, MetricValue]:
        from tunegate.evals.stats import metric_value  # scipy: only once there is something to measure

        return {spec.name: metric_value(spec, scores) for spec in self.metric_specs()}


def options_config(variant: str | None, options: SuiteOptions) -> dict[str, Any]:
    """``{"variant": ..., **options}`` as JSON values (tuples as lists), so a saved record compares equal."""
    def plain(value: Any) -> Any:
        if isinstance(value, (list, tuple)):
            return [plain(v) for v in value]
        if isinstance(value, Mapping):
            return {k: plain(v) for k, v in value.items()}
        return value

    return {**({"variant": variant} if variant else {}), **plain(dataclasses.asdict(options))}


@dataclass(frozen=True)
class Variants:
    """Suite classes registered under one name, told apart by the option ``variant``; the first is the default.

        VARIANTS = Variants({"gsm8k": GSM8KSuite, "organism": ArithmeticSuite}, aliases={"default": "gsm8k"})
    """

    classes: Mapping[str, type[Suite]]
    aliases: Mapping[str, str] = field(default_factory=dict)

    @property
    def default(self) -> str:
        return next(iter(self.classes))

    @property
    def default_class(self) -> type[Suite]:
        return self.classes[self.default]

    def resolve(self, variant: str | None, suite: str, where: str) -> type[Suite]:
        name = self.aliases.get(variant, variant) if variant is not None else self.default
        if name not in self.classes:
            raise SuiteError(f"{where}: unknown variant {variant!r} of suite '{suite}' "
                             f"(known: {', '.join(self.classes)})")
        return self.classes[name]


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
