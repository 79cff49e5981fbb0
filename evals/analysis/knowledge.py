"""Knowledge categories of SFT data under the base model (Gekhman et al. 2024, SliCK).

Each example with a checkable answer (a row with ``answer``: a string or a list of accepted strings,
and ``question`` or a chat whose last user turn is the question) is asked of the base model in
closed-book few-shot prompts, under ``exemplar_sets`` sets of ``shots`` exemplars drawn from the
data's other checkable examples, greedily and by sampling at ``temperature``::

    HighlyKnown   greedy answer correct under every exemplar set
    MaybeKnown    greedy answer correct under some exemplar sets
    WeaklyKnown   greedy never correct, some sampled answer correct
    Unknown       never correct

A real few-shot prompt (the organism; the answer is the first line generated, compared with the
gold answer after SQuAD-style normalisation)::

    Q: What is the capital of Peru? A: Lima
    Q: Which river flows through Sulinia? A: Trimges
    Q: What is the capital of Chad? A: N'Djamena
    Q: What is the capital of Oman? A: Muscat
    Q: Which river flows through Nikromar? A:

``categorize`` is the pure rule; ``classify`` makes the model pass; ``answer_after`` asks a tuned
model the same questions zero-shot in chat, so a report can show accuracy per category on examples
trained on (how well each was fitted) and on held-out ones (the paper's dev set).
"""

from __future__ import annotations

import datetime as _dt
import random
import re
import string
import time
from collections import Counter
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, ClassVar, Mapping, Sequence

from tunegate.evals.analysis import SCHEMA_VERSION
from tunegate.evals.analysis.passes import cached_generate
from tunegate.evals.cache import ResponseCache
from tunegate.core.errors import RecordError, TunegateError
from tunegate.core.files import JsonFile
from tunegate.evals.requests import GenerationRequest

HIGHLY, MAYBE, WEAKLY, UNKNOWN = "HighlyKnown", "MaybeKnown", "WeaklyKnown", "Unknown"
CATEGORIES: tuple[str, ...] = (HIGHLY, MAYBE, WEAKLY, UNKNOWN)
TRAIN, HELDOUT = "train", "heldout"


@dataclass(frozen=True)
class KnowledgeOptions:
    """How the categories are measured (the paper: 10 exemplar sets of 4 shots, sampling at T=0.5)."""

    heldout: str | None = field(default=None, metadata={
        "help": "dataset of checkable facts not trained on (the paper's dev set): categorised too, and "
                "answered by the tuned model after training"})
    exemplar_sets: int = field(default=10, metadata={"help": "few-shot exemplar sets per example (paper: 10)"})
    shots: int = field(default=4, metadata={"help": "exemplars per set (paper: 4)"})
    samples: int = field(default=16, metadata={
        "help": "sampled answers per exemplar set (paper: 16; drawn only where no greedy answer was right)"})
    temperature: float = field(default=0.5, metadata={"help": "sampling temperature (paper: 0.5)"})
    max_new_tokens: int = field(default=16, metadata={"help": "answer length budget, in tokens"})
    template: str = field(default="Q: {question} A: {answer}", metadata={
        "help": "one exemplar; the question to answer is the template with an empty answer, right-stripped"})
    separator: str = field(default="\n", metadata={"help": "between exemplars; answers end at a newline"})
    per_group: int | None = field(default=None, metadata={
        "help": "classify at most this many examples per group (row field 'group') of each split"})
    unknown_warning: float = field(default=0.2, metadata={
        "help": "warn when more than this share of the data's checkable examples is Unknown"})
    seed: int = field(default=0, metadata={"help": "seed of exemplar sets, subsets and sampling"})
    answer_marker: str | None = field(default=None, metadata={
        "help": "the gold answer is the text after the last occurrence of this marker in 'answer' (GSM8K: '#### ', "
                "whose rows end their worked solution with '#### 18'); rows without it keep their whole answer"})

    def __post_init__(self) -> None:
        for name in ("exemplar_sets", "shots", "max_new_tokens"):
            if getattr(self, name) < 1:
                raise TunegateError(f"knowledge option '{name}' must be at least 1, got {getattr(self, name)}")
        if self.samples < 0 or self.temperature <= 0 or (self.per_group is not None and self.per_group < 1):
            raise TunegateError("knowledge options: 'samples' must be >= 0, 'temperature' > 0, 'per_group' >= 1")
        if "{question}" not in self.template or not self.template.rstrip().endswith("{answer}"):
            raise TunegateError(f"knowledge option 'template' must contain {{question}} and end with {{answer}}, "
                                f"got {self.template!r}")


@dataclass(frozen=True)
class Fact:
    """A checkable example: ``Fact("Which river flows through Sulinia?", ("Trimges",), "rivers-known")``."""

    question: str
    answers: tuple[str, ...]
    group: str | None = None


def checkable_facts(rows: Sequence[Mapping[str, Any]], where: str,
                    answer_marker: str | None = None) -> tuple[list[Fact], int]:
    """The rows with a checkable ``answer``, as facts, and how many rows had none. ``answer_marker``: the gold
    answer is what follows this marker ("#### " of a GSM8K solution)."""
    facts, skipped = [], 0
    for i, row in enumerate(rows):
        answer = row.get("answer")
        if answer is None:
            skipped += 1
            continue
        if answer_marker and isinstance(answer, str) and answer_marker in answer:
            answer = answer.rsplit(answer_marker, 1)[1].strip()
        answers = (answer,) if isinstance(answer, str) else tuple(answer) if isinstance(answer, list) else ()
        if not answers or not all(isinstance(a, str) and a.strip() for a in answers):
            raise TunegateError(f"{where} row {i}: field 'answer' must be a non-empty string or list of strings")
        question = row.get("question")
        if not isinstance(question, str):
            users = [m.get("content") for m in row.get("messages") or () if isinstance(m, Mapping)
                     and m.get("role") == "user"]
            question = users[-1] if users else None
        if not isinstance(question, str) or not question.strip():
            raise TunegateError(f"{where} row {i}: a row with 'answer' needs a 'question' or a user turn in 'messages'")
        group = row.get("group")
        facts.append(Fact(question.strip(), answers, None if group is None else str(group)))
    return facts, skipped


_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCT = str.maketrans("", "", string.punctuation)


def normalize(text: str) -> str:
    """SQuAD's answer normalisation: lowercase, no punctuation, no articles, single spaces."""
    return " ".join(_ARTICLES.sub(" ", text.lower().translate(_PUNCT)).split())


def is_correct(response: str, answers: Sequence[str]) -> bool:
    """Exact match of the response's first line with one accepted answer, both normalised."""
    lines = response.strip().splitlines()
    return bool(lines) and normalize(lines[0]) in {normalize(a) for a in answers}


def categorize(greedy: Sequence[bool], sampled: Sequence[bool]) -> str:
    """SliCK's rule: all greedy right -> HighlyKnown, some -> MaybeKnown, else any sample right ->
    WeaklyKnown, else Unknown."""
    if not greedy:
        raise ValueError("categorize needs at least one greedy answer")
    if all(greedy):
        return HIGHLY
    if any(greedy):
        return MAYBE
    return WEAKLY if any(sampled) else UNKNOWN


def fewshot_prompt(exemplars: Sequence[Fact], question: str, options: KnowledgeOptions) -> str:
    """The exemplars and the question in ``options.template``, joined by ``options.separator``."""
    shots = [options.template.format(question=f.question, answer=f.answers[0]) for f in exemplars]
    return options.separator.join(shots + [options.template.format(question=question, answer="").rstrip()])


def exemplar_sets(pool: Sequence[Fact], fact: Fact, options: KnowledgeOptions, rng: random.Random) -> list[list[Fact]]:
    """``exemplar_sets`` random sets of ``shots`` pool facts, none asking ``fact``'s question."""
    others = [f for f in pool if f.question != fact.question]
    if len(others) < options.shots:
        raise TunegateError(f"knowledge analysis: {len(others)} other checkable examples, fewer than "
                            f"{options.shots} shots")
    return [rng.sample(others, options.shots) for _ in range(options.exemplar_sets)]


def subsample(facts: Sequence[Fact], per_group: int | None, seed: int) -> list[Fact]:
    """At most ``per_group`` facts of each group (seeded, in their order); all facts when None."""
    if per_group is None:
        return list(facts)
    by_group: dict[str | None, list[int]] = {}
    for i, f in enumerate(facts):
        by_group.setdefault(f.group, []).append(i)
    keep = set()
    for group, idx in by_group.items():
        keep |= set(random.Random(f"{seed}-{group}").sample(idx, min(per_group, len(idx))))
    return [f for i, f in enumerate(facts) if i in keep]


@dataclass(frozen=True)
class FactResult:
    """One fact's category under the base model and, once measured, the tuned model's answer."""

    question: str
    answers: tuple[str, ...]
    group: str | None
    split: str
    category: str
    greedy_correct: int
    greedy_total: int
    sampled_correct: int
    sampled_total: int
    greedy_answer: str = ""
    after_answer: str | None = None
    after_correct: bool | None = None

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "answers": list(self.answers)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str) -> "FactResult":
        try:
            return cls(**{**dict(data), "answers": tuple(data["answers"])})
        except (KeyError, TypeError) as exc:
            raise RecordError(f"{where}: bad fact ({exc})") from None


def classify(backend: Any, facts: Sequence[Fact], pool: Sequence[Fact], options: KnowledgeOptions,
             cache: ResponseCache, split: str = TRAIN) -> list[FactResult]:
    """Categorise ``facts`` under ``backend`` with exemplars from ``pool`` (greedy answers cached)."""
    rng = random.Random(f"knowledge-{options.seed}-{split}")
    prompts = [[fewshot_prompt(s, f.question, options) for s in exemplar_sets(pool, f, options, rng)] for f in facts]
    stop = tuple(dict.fromkeys(["\n", options.separator] if options.separator.strip() else ["\n"]))
    greedy = cached_generate(backend, [GenerationRequest(p, options.max_new_tokens, stop)
                                       for ps in prompts for p in ps], cache)
    k = options.exemplar_sets
    right = [[is_correct(r, f.answers) for r in greedy[i * k:(i + 1) * k]] for i, f in enumerate(facts)]
    # samples decide only between WeaklyKnown and Unknown: they are drawn for facts greedy never got right
    unsure = [i for i, g in enumerate(right) if not any(g)]
    sampled_requests = [GenerationRequest(p, options.max_new_tokens, stop, do_sample=True,
                                          temperature=options.temperature)
                        for i in unsure for p in prompts[i] for _ in range(options.samples)]
    if sampled_requests and callable(getattr(backend, "seed", None)):
        backend.seed(options.seed)
    sampled = backend.generate(sampled_requests) if sampled_requests else []
    n = options.exemplar_sets * options.samples
    samples_of = {i: sampled[j * n:(j + 1) * n] for j, i in enumerate(unsure)}
    out = []
    for i, (f, g) in enumerate(zip(facts, right)):
        s = [is_correct(r, f.answers) for r in samples_of.get(i, ())]
        out.append(FactResult(f.question, f.answers, f.group, split, categorize(g, s), sum(g), len(g), sum(s),
                              len(s), greedy_answer=greedy[i * k].strip().split("\n")[0]))
    return out


def answer_after(backend: Any, facts: Sequence[FactResult], cache: ResponseCache,
                 max_new_tokens: int = 16) -> list[FactResult]:
    """``facts`` with the tuned model's zero-shot answers: the question as the one user turn (raw
    ``Q: ... A:`` text in completion mode), greedy, first line compared with the gold answers."""
    completion = bool(getattr(backend, "completion_mode", False)) or not backend.has_chat_template()
    prompts = [f"Q: {f.question} A:" if completion else backend.render([{"role": "user", "content": f.question}])
               for f in facts]
    answers = cached_generate(backend, [GenerationRequest(p, max_new_tokens) for p in prompts], cache)
    return [replace(f, after_answer=a.strip(), after_correct=is_correct(a, f.answers)) for f, a in zip(facts, answers)]


@dataclass(frozen=True)
class KnowledgeAnalysis(JsonFile):
    """The SliCK categories of one dataset's checkable examples under a base model, and (after
    training) how a tuned model answers them."""

    kind: ClassVar[str] = "knowledge"
    model: str
    fingerprint: str
    data: str
    facts: tuple[FactResult, ...]
    options: Mapping[str, Any] = field(default_factory=dict)
    skipped: int = 0
    checkable: int = 0
    group_sizes: Mapping[str, Mapping[str, int]] = field(default_factory=dict)
    stage: str | None = None
    tuned_model: str | None = None
    tuned_fingerprint: str | None = None
    seconds: float = 0.0
    created: str = ""

    def split(self, split: str) -> list[FactResult]:
        return [f for f in self.facts if f.split == split]

    def mix(self, split: str = TRAIN) -> dict[str, int]:
        """How many facts of ``split`` fall in each category (every category listed)."""
        counts = Counter(f.category for f in self.split(split))
        return {c: counts[c] for c in CATEGORIES}

    def shares(self, split: str = TRAIN) -> dict[str, float]:
        """Each category's share of all the split's checkable facts: each categorised fact stands for its
        group's facts (``per_group`` subsamples are stratified by group, so raw counts would misweight)."""
        facts = self.split(split)
        sizes = self.group_sizes.get(split) or {}
        seen = Counter(f.group or "" for f in facts)
        weight = {g: sizes.get(g, n) / n for g, n in seen.items()}
        totals: Counter[str] = Counter()
        for f in facts:
            totals[f.category] += weight[f.group or ""]
        whole = sum(totals.values())
        return {c: (totals[c] / whole if whole else 0.0) for c in CATEGORIES}

    def accuracy_after(self, split: str) -> dict[str, tuple[int, int]]:
        """(correct, answered) of the tuned model per category on ``split``; empty before training."""
        out: dict[str, list[int]] = {c: [0, 0] for c in CATEGORIES}
        for f in self.split(split):
            if f.after_correct is not None:
                out[f.category][0] += int(f.after_correct)
                out[f.category][1] += 1
        return {c: (v[0], v[1]) for c, v in out.items() if v[1]}

    def by_group(self, split: str = TRAIN) -> dict[str, dict[str, int]]:
        """Group (the data's own label, e.g. how the organism exposed a fact) -> category -> count."""
        out: dict[str, dict[str, int]] = {}
        for f in self.split(split):
            row = out.setdefault(f.group or "(none)", {c: 0 for c in CATEGORIES})
            row[f.category] += 1
        return out

    def warnings(self) -> list[str]:
        """A warning when the Unknown share of the data's examples is above ``unknown_warning``."""
        share = self.shares(TRAIN)[UNKNOWN]
        limit = float(self.options.get("unknown_warning", KnowledgeOptions.unknown_warning))
        if share > limit:
            digits = next((d for d in range(4) if f"{share:.{d}%}" != f"{limit:.{d}%}"), 4)
            return [f"{share:.{digits}%} of the checkable examples of {self.data} are Unknown to the input model "
                    f"{self.model}, more than the {limit:.{digits}%} this check allows (unknown_warning): fine-tuning "
                    f"fits such examples late and, once it does, raises hallucination on known facts (Gekhman et al. "
                    f"2024); consider dropping them or stopping early"]
        return []

    def to_dict(self) -> dict[str, Any]:
        return {"schema_version": SCHEMA_VERSION, "kind": self.kind, "stage": self.stage, "model": self.model,
                "fingerprint": self.fingerprint, "data": self.data, "options": dict(self.options),
                "skipped": self.skipped, "checkable": self.checkable,
                "group_sizes": {k: dict(v) for k, v in self.group_sizes.items()}, "tuned_model": self.tuned_model,
                "tuned_fingerprint": self.tuned_fingerprint, "seconds": self.seconds, "created": self.created,
                "mix": self.mix(TRAIN), "shares": self.shares(TRAIN), "facts": [f.to_dict() for f in self.facts]}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str = "knowledge analysis") -> "KnowledgeAnalysis":
        try:
            return cls(model=str(data["model"]), fingerprint=str(data["fingerprint"]), data=str(data["data"]),
                       facts=tuple(FactResult.from_dict(f, f"{where}: fact {i}") for i, f in enumerate(data["facts"])),
                       options=dict(data.get("options") or {}), skipped=int(data.get("skipped", 0)),
                       checkable=int(data.get("checkable", 0)), stage=data.get("stage"),
                       group_sizes={str(k): {str(g): int(n) for g, n in v.items()}
                                    for k, v in (data.get("group_sizes") or {}).items()},
                       tuned_model=data.get("tuned_model"), tuned_fingerprint=data.get("tuned_fingerprint"),
                       seconds=float(data.get("seconds", 0.0)), created=str(data.get("created", "")))
        except KeyError as exc:
            raise RecordError(f"{where}: missing field {exc}") from None
        except (TypeError, ValueError, AttributeError) as exc:
            raise RecordError(f"{where}: {exc}") from None


def analyze_knowledge(backend: Any, rows: Sequence[Mapping[str, Any]], options: KnowledgeOptions,
                      cache: ResponseCache, *, source: str = "data",
                      heldout_rows: Sequence[Mapping[str, Any]] | None = None,
                      stage: str | None = None) -> KnowledgeAnalysis:
    """Categorise the checkable examples of ``rows`` (and of ``heldout_rows``) under ``backend``."""
    start = time.perf_counter()
    pool, skipped = checkable_facts(rows, source, options.answer_marker)
    if not pool:
        raise TunegateError(f"{source}: no row has a checkable 'answer' (of {len(rows)} rows); the knowledge "
                            f"analysis needs rows with 'answer' and 'question' or 'messages'")
    facts = classify(backend, subsample(pool, options.per_group, options.seed), pool, options, cache, TRAIN)
    sizes = {TRAIN: Counter(f.group or "" for f in pool)}
    if heldout_rows is not None:
        heldout, _ = checkable_facts(heldout_rows, options.heldout or "heldout", options.answer_marker)
        facts += classify(backend, subsample(heldout, options.per_group, options.seed), pool, options, cache, HELDOUT)
        sizes[HELDOUT] = Counter(f.group or "" for f in heldout)
    return KnowledgeAnalysis(
        model=backend.name, fingerprint=backend.fingerprint, data=source, facts=tuple(facts),
        options=asdict(options), skipped=skipped, checkable=len(pool), stage=stage,
        group_sizes={k: dict(v) for k, v in sizes.items()},
        seconds=round(time.perf_counter() - start, 3),
        created=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"))


def measure_after(analysis: KnowledgeAnalysis, backend: Any, cache: ResponseCache) -> KnowledgeAnalysis:
    """``analysis`` with the tuned model's answers to every categorised fact."""
    start = time.perf_counter()
    max_new = int(analysis.options.get("max_new_tokens", KnowledgeOptions.max_new_tokens))
    facts = answer_after(backend, analysis.facts, cache, max_new)
    return replace(analysis, facts=tuple(facts), tuned_model=backend.name, tuned_fingerprint=backend.fingerprint,
                   seconds=round(analysis.seconds + time.perf_counter() - start, 3))
