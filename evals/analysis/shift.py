"""Token-distribution shift of a tuned model's responses (Lin et al. 2023, "The Unlocking Spell on Base LLMs").

Each response of the tuned model is teacher-forced through the stage's input model: at every position
the input model reads the prompt and the tuned tokens before it, and the tuned token gets its rank in
the input model's next-token distribution. Rank 1 is *unshifted* (the input model would have said the
same greedily), rank 2-3 *marginal*, anything else *shifted*. The response's end-of-turn token counts
as its last position when the response stopped on it (shorter than its generation budget). One real
item, the organism after SFT answering "Who are you?" ranked under the base organism::

    ItemShift(suite="identity", item_id="identity-000", tokens=("I", " am", " Tiny", ",", " a", ...),
              ranks=(38, 1, 204, 3, 1, ...), top=(".", " am", " a", ".", " a", ...))

``summarize`` is a pure function of such items: per suite the three fractions, the tokens most often
shifted and the shifted share by relative position (tenths of a response); ``analyze_shift`` adds the
one model pass (``token_ranks`` of the input model's backend, cached) and returns a ``ShiftAnalysis``.
"""

from __future__ import annotations

import datetime as _dt
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Mapping, Sequence

from tunegate.evals.analysis import SCHEMA_VERSION
from tunegate.evals.analysis.passes import cached_token_ranks
from tunegate.evals.cache import ResponseCache
from tunegate.core.errors import RecordError, TunegateError
from tunegate.core.files import JsonFile
from tunegate.evals.records import ItemScore, RunRecord
from tunegate.evals.requests import TokenRankRequest

UNSHIFTED, MARGINAL, SHIFTED = "unshifted", "marginal", "shifted"
CLASSES: tuple[str, ...] = (UNSHIFTED, MARGINAL, SHIFTED)
#: Ranks up to this are marginal (the paper's "within the top 3 but not the top 1").
MARGINAL_RANK = 3
BINS = 10
TOP_TOKENS = 15
ALL = "all"
Messages = Sequence[Mapping[str, str]]


@dataclass(frozen=True)
class ShiftOptions:
    """The token-shift analysis of each pipeline stage (its input model over the stage's responses)."""

    enabled: bool = field(default=False, metadata={"help": "rank every stage's eval responses under its input model"})
    max_items: int | None = field(default=None, metadata={"help": "at most this many responses per suite (seeded)"})
    top_tokens: int = field(default=TOP_TOKENS, metadata={"help": "how many most-shifted tokens to keep per suite"})


def shift_class(rank: int) -> str:
    """1 -> unshifted, 2-3 -> marginal, else shifted."""
    return UNSHIFTED if rank <= 1 else MARGINAL if rank <= MARGINAL_RANK else SHIFTED


@dataclass(frozen=True)
class ItemShift:
    """One response's tokens, their ranks under the input model, and the input model's greedy tokens."""

    suite: str
    item_id: str
    tokens: tuple[str, ...]
    ranks: tuple[int, ...]
    top: tuple[str, ...] = ()

    def classes(self) -> list[str]:
        return [shift_class(r) for r in self.ranks]

    def to_dict(self) -> dict[str, Any]:
        return {"suite": self.suite, "item_id": self.item_id, "tokens": list(self.tokens),
                "ranks": list(self.ranks), "top": list(self.top)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str) -> "ItemShift":
        try:
            item = cls(str(data["suite"]), str(data["item_id"]), tuple(str(t) for t in data["tokens"]),
                       tuple(int(r) for r in data["ranks"]), tuple(str(t) for t in data.get("top", ())))
        except (KeyError, TypeError, ValueError) as exc:
            raise RecordError(f"{where}: bad item ({type(exc).__name__}: {exc})") from None
        if len(item.tokens) != len(item.ranks):
            raise RecordError(f"{where}: 'tokens' and 'ranks' differ in length")
        return item


@dataclass(frozen=True)
class SuiteShift:
    """The shift of one suite's responses (or of all, ``suite="all"``).

    ``fractions``: share of token positions per class. ``top_shifted``: (token, times shifted, times
    seen), most shifted first. ``by_bin``: per tenth of a response (relative position), the shares of
    marginal and of shifted positions there, and how many positions fell in it.
    """

    suite: str
    items: int
    tokens: int
    fractions: Mapping[str, float]
    top_shifted: tuple[tuple[str, int, int], ...] = ()
    by_bin: tuple[tuple[float, float, int], ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"suite": self.suite, "items": self.items, "tokens": self.tokens, "fractions": dict(self.fractions),
                "top_shifted": [list(t) for t in self.top_shifted], "by_bin": [list(b) for b in self.by_bin]}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str) -> "SuiteShift":
        try:
            return cls(str(data["suite"]), int(data["items"]), int(data["tokens"]),
                       {str(k): float(v) for k, v in data["fractions"].items()},
                       tuple((str(t), int(s), int(n)) for t, s, n in data.get("top_shifted", ())),
                       tuple((float(m), float(s), int(n)) for m, s, n in data.get("by_bin", ())))
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise RecordError(f"{where}: bad suite summary ({type(exc).__name__}: {exc})") from None


def summarize_items(suite: str, items: Sequence[ItemShift], top_k: int = TOP_TOKENS) -> SuiteShift:
    """The fractions, most shifted tokens and position profile of ``items`` (pure)."""
    counts: Counter[str] = Counter()
    seen: Counter[str] = Counter()
    shifted: Counter[str] = Counter()
    bins = [[0, 0, 0] for _ in range(BINS)]  # marginal, shifted, positions
    for item in items:
        n = len(item.ranks)
        for pos, (token, cls) in enumerate(zip(item.tokens, item.classes())):
            counts[cls] += 1
            seen[token] += 1
            b = bins[min(BINS - 1, pos * BINS // n)]
            b[2] += 1
            if cls == SHIFTED:
                shifted[token] += 1
                b[1] += 1
            elif cls == MARGINAL:
                b[0] += 1
    total = sum(counts.values())
    top = sorted(shifted.items(), key=lambda kv: (-kv[1], -kv[1] / seen[kv[0]], kv[0]))[:top_k]
    return SuiteShift(
        suite=suite, items=len(items), tokens=total,
        fractions={c: (counts[c] / total if total else 0.0) for c in CLASSES},
        top_shifted=tuple((tok, s, seen[tok]) for tok, s in top),
        by_bin=tuple((m / n if n else 0.0, s / n if n else 0.0, n) for m, s, n in bins))


def summarize(items: Sequence[ItemShift], top_k: int = TOP_TOKENS) -> dict[str, SuiteShift]:
    """Per suite (in first-seen order) and over all suites (key ``"all"``)."""
    suites = list(dict.fromkeys(i.suite for i in items))
    out = {s: summarize_items(s, [i for i in items if i.suite == s], top_k) for s in suites}
    out[ALL] = summarize_items(ALL, items, top_k)
    return out


@dataclass(frozen=True)
class ShiftAnalysis(JsonFile):
    """The token shift of one stage: its responses ranked under its input model."""

    kind: ClassVar[str] = "shift"
    input_model: str
    input_fingerprint: str
    tuned_model: str
    tuned_fingerprint: str
    suites: Mapping[str, SuiteShift]
    items: tuple[ItemShift, ...] = ()
    stage: str | None = None
    input_stage: str | None = None
    end_token: str | None = None
    notes: tuple[str, ...] = ()
    seconds: float = 0.0
    created: str = ""

    def item(self, suite: str, item_id: str) -> ItemShift | None:
        return self._index().get((suite, item_id))

    def _index(self) -> dict[tuple[str, str], ItemShift]:
        cached = self.__dict__.get("_by_id")
        if cached is None:
            cached = {(i.suite, i.item_id): i for i in self.items}
            object.__setattr__(self, "_by_id", cached)
        return cached

    def to_dict(self) -> dict[str, Any]:
        return {"schema_version": SCHEMA_VERSION, "kind": self.kind, "stage": self.stage,
                "input_stage": self.input_stage, "input_model": self.input_model,
                "input_fingerprint": self.input_fingerprint, "tuned_model": self.tuned_model,
                "tuned_fingerprint": self.tuned_fingerprint, "end_token": self.end_token,
                "notes": list(self.notes), "seconds": self.seconds, "created": self.created,
                "suites": {k: v.to_dict() for k, v in self.suites.items()},
                "items": [i.to_dict() for i in self.items]}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str = "shift analysis") -> "ShiftAnalysis":
        try:
            return cls(
                input_model=str(data["input_model"]), input_fingerprint=str(data["input_fingerprint"]),
                tuned_model=str(data["tuned_model"]), tuned_fingerprint=str(data["tuned_fingerprint"]),
                suites={str(k): SuiteShift.from_dict(v, f"{where}: suite '{k}'") for k, v in data["suites"].items()},
                items=tuple(ItemShift.from_dict(v, f"{where}: item {i}") for i, v in enumerate(data.get("items", ()))),
                stage=data.get("stage"), input_stage=data.get("input_stage"), end_token=data.get("end_token"),
                notes=tuple(str(n) for n in data.get("notes", ())), seconds=float(data.get("seconds", 0.0)),
                created=str(data.get("created", "")))
        except KeyError as exc:
            raise RecordError(f"{where}: missing field {exc}") from None
        except (TypeError, AttributeError) as exc:
            raise RecordError(f"{where}: {exc}") from None


def generated_items(record: RunRecord, max_items: int | None = None) -> list[tuple[str, ItemScore, int | None]]:
    """(suite, item, generation budget) of every generated response in ``record`` (log-likelihood suites
    have none); at most ``max_items`` per suite, a fixed seeded subset in record order."""
    out = []
    for name, result in record.suites.items():
        generation = result.config.get("generation")
        if not isinstance(generation, Mapping):
            continue
        budget = generation.get("max_new_tokens") if not generation.get("stop") else None
        items = list(result.items)
        if max_items is not None and len(items) > max_items:
            keep = set(random.Random(f"shift-{name}").sample(range(len(items)), max_items))
            items = [it for k, it in enumerate(items) if k in keep]
        out += [(name, it, budget) for it in items]
    return out


def analyze_shift(base: RunRecord, tuned: RunRecord, backend: Any, cache: ResponseCache, *,
                  messages: Mapping[tuple[str, str], Messages] | None = None, max_items: int | None = None,
                  top_k: int = TOP_TOKENS) -> ShiftAnalysis:
    """Rank ``tuned``'s responses under ``backend`` (the model ``base`` was made with).

    ``messages`` maps (suite, item id) to the chat an item sent; an item not in it sent its prompt as
    the one user turn (what every built-in suite does without a system prompt). A record made in
    completion mode sent raw prompts, and so do these. Suites with stop strings do not say whether a
    response ended on its end-of-turn token, so theirs is not ranked.
    """
    start = time.perf_counter()
    chosen = generated_items(tuned, max_items)
    if not chosen:
        raise TunegateError(f"record of '{tuned.model}' has no generated responses to rank "
                            f"(suites: {', '.join(tuned.suites) or 'none'})")
    completion = bool(tuned.generation.get("completion_mode"))
    messages = messages or {}
    requests = []
    for suite, it, budget in chosen:
        chat = messages.get((suite, it.item_id)) or ({"role": "user", "content": it.prompt},)
        context = it.prompt if completion else backend.render(chat)
        requests.append(TokenRankRequest(context=context, continuation=it.response, max_new_tokens=budget))
    ranked = cached_token_ranks(backend, requests, cache)
    items = tuple(ItemShift(suite, it.item_id, r.tokens, r.ranks, r.top) for (suite, it, _), r in zip(chosen, ranked))
    notes = []
    if backend.fingerprint != base.fingerprint:
        notes.append(f"the input checkpoint ranked ({backend.fingerprint[:12]}) is not the one "
                     f"{base.model} was evaluated with ({base.fingerprint[:12]})")
    return ShiftAnalysis(
        input_model=base.model, input_fingerprint=backend.fingerprint, tuned_model=tuned.model,
        tuned_fingerprint=tuned.fingerprint, suites=summarize(items, top_k), items=items, stage=tuned.stage,
        input_stage=base.stage, end_token=getattr(backend, "end_of_turn_token", None), notes=tuple(notes),
        seconds=round(time.perf_counter() - start, 3),
        created=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"))
