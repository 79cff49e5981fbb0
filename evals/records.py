"""Typed, serialisable values that flow between tunegate's parts.

Every value here is a frozen dataclass that round-trips through JSON
(``to_dict`` / ``from_dict``). A RunRecord is what an evaluation writes; compare,
gate and report work from saved records alone. One real item result, as the
organism's math suite stores it::

    ItemScore(item_id="arith-0007", prompt="What is 47 + 25?",
              response="47 + 25 = 72.", answer="72", target="72",
              scores={"exact_match": 1.0}, group=None)

Per-item ``scores`` hold one value per metric. A value may also be a tuple of
values: the item is then a cluster of units (e.g. the instructions of one IFEval
prompt) and the metric is the mean over all units, with standard errors
clustered by item. ``asked`` is the hash of what the item asked (``question_hash``: its
prompt, chat messages, target, choices and scoring data), so two records pair an item
only when it asked the same question in both.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Mapping, Sequence

from tunegate.core.errors import RecordError
from tunegate.core.files import JsonFile

SCHEMA_VERSION = 1

ScoreValue = float | tuple[float, ...]


def _require(data: Mapping[str, Any], key: str, where: str) -> Any:
    if not isinstance(data, Mapping):
        raise RecordError(f"{where}: expected an object, got {type(data).__name__}")
    if key not in data:
        raise RecordError(f"{where}: missing field '{key}'")
    return data[key]


@dataclass(frozen=True)
class EvalItem:
    """One evaluation item: what is asked and what counts as right.

    ``messages`` is a chat (list of ``{"role", "content"}``) for chat-mode
    suites; ``prompt`` is raw text for completion-mode suites (and the text
    shown in reports). ``choices`` are the continuations of a multiple-choice
    item, scored by log-likelihood. ``group`` is the cluster of the item
    (MMLU subject, organism split); ``meta`` carries suite-specific fields
    (IFEval kwargs, gold solutions).
    """

    id: str
    prompt: str
    messages: tuple[Mapping[str, str], ...] = ()
    target: str | None = None
    choices: tuple[str, ...] = ()
    group: str | None = None
    meta: Mapping[str, Any] = field(default_factory=dict)


def question_hash(item: EvalItem) -> str:
    """16 hex digits of sha256 over what ``item`` asks and what counts as right: its prompt, chat messages,
    target, choices and ``meta`` (IFEval's instruction kwargs, GSM8K's gold solution). The same question
    under the same id in two records gives the same hash; GSM8K's test and train rows under one
    ``gsm8k-0000`` id do not."""
    asked = {"prompt": item.prompt, "messages": [dict(m) for m in item.messages], "target": item.target,
             "choices": list(item.choices), "meta": dict(item.meta)}
    text = json.dumps(asked, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


@dataclass(frozen=True)
class ItemScore:
    """The scored result of one item: evidence (prompt, response, extracted answer) and scores.

    ``asked`` is ``question_hash`` of the EvalItem it answers (None in records written before it existed).
    """

    item_id: str
    prompt: str
    response: str
    answer: str | None
    target: str | None
    scores: Mapping[str, ScoreValue]
    group: str | None = None
    meta: Mapping[str, Any] = field(default_factory=dict)
    asked: str | None = None

    def asking(self, item: EvalItem) -> "ItemScore":
        """This score with ``asked`` set to the hash of ``item`` (the question it answers)."""
        return dataclasses.replace(self, asked=question_hash(item))

    def to_dict(self) -> dict[str, Any]:
        return {
            "item_id": self.item_id,
            "prompt": self.prompt,
            "response": self.response,
            "answer": self.answer,
            "target": self.target,
            "scores": {k: list(v) if isinstance(v, tuple) else v for k, v in self.scores.items()},
            "group": self.group,
            "meta": dict(self.meta),
        } | ({"asked": self.asked} if self.asked is not None else {})

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str = "item") -> "ItemScore":
        scores_raw = _require(data, "scores", where)
        if not isinstance(scores_raw, Mapping):
            raise RecordError(f"{where}: field 'scores' must be an object")
        scores: dict[str, ScoreValue] = {}
        for name, value in scores_raw.items():
            if isinstance(value, list):
                scores[name] = tuple(float(v) for v in value)
            elif isinstance(value, (int, float)) and not isinstance(value, bool):
                scores[name] = float(value)
            elif isinstance(value, bool):
                scores[name] = float(value)
            else:
                raise RecordError(f"{where}: score '{name}' must be a number or a list of numbers")
        return cls(
            item_id=str(_require(data, "item_id", where)),
            prompt=str(data.get("prompt", "")),
            response=str(data.get("response", "")),
            answer=data.get("answer"),
            target=data.get("target"),
            scores=scores,
            group=data.get("group"),
            meta=dict(data.get("meta") or {}),
            asked=None if data.get("asked") is None else str(data["asked"]),
        )


@dataclass(frozen=True)
class MetricSpec:
    """How one headline metric of a suite is computed from per-item scores.

    cluster: None (units independent), "item" (tuple scores: units clustered by item),
    "group" (clustered by ``ItemScore.group``, e.g. MMLU subject).
    """

    name: str
    higher_is_better: bool = True
    binary: bool = True
    cluster: Literal["item", "group"] | None = None


@dataclass(frozen=True)
class MetricValue:
    """A headline metric of a suite: mean over units, with its standard error.

    ``binary`` says every unit is 0/1 (McNemar applies); ``clustered`` says the
    standard error was clustered (by item for tuple scores, or by group).
    """

    name: str
    value: float
    stderr: float | None
    n: int
    higher_is_better: bool = True
    binary: bool = True
    cluster: str | None = None  # None | "item" | "group"

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str = "metric") -> "MetricValue":
        try:
            return cls(
                name=str(_require(data, "name", where)),
                value=float(_require(data, "value", where)),
                stderr=None if data.get("stderr") is None else float(data["stderr"]),
                n=int(_require(data, "n", where)),
                higher_is_better=bool(data.get("higher_is_better", True)),
                binary=bool(data.get("binary", True)),
                cluster=data.get("cluster"),
            )
        except (TypeError, ValueError) as exc:
            if isinstance(exc, RecordError):
                raise
            raise RecordError(f"{where}: {exc}") from None


@dataclass(frozen=True)
class SuiteResult:
    """One suite's result on one model: metrics, per-item scores and breakdowns.

    ``breakdowns`` maps a breakdown name (e.g. ``instruction_id``, ``subject``)
    to ``{key: accuracy}``; ``config`` is the suite's settings as run.
    """

    suite: str
    version: str
    metrics: Mapping[str, MetricValue]
    items: tuple[ItemScore, ...]
    config: Mapping[str, Any] = field(default_factory=dict)
    breakdowns: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "suite": self.suite,
            "version": self.version,
            "metrics": {k: m.to_dict() for k, m in self.metrics.items()},
            "items": [i.to_dict() for i in self.items],
            "config": dict(self.config),
            "breakdowns": {k: dict(v) for k, v in self.breakdowns.items()},
            "seconds": self.seconds,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str = "suite") -> "SuiteResult":
        name = str(_require(data, "suite", where))
        where = f"{where} '{name}'"
        metrics_raw = _require(data, "metrics", where)
        items_raw = _require(data, "items", where)
        if not isinstance(metrics_raw, Mapping) or not isinstance(items_raw, list):
            raise RecordError(f"{where}: 'metrics' must be an object and 'items' a list")
        return cls(
            suite=name,
            version=str(_require(data, "version", where)),
            metrics={k: MetricValue.from_dict(v, f"{where} metric '{k}'") for k, v in metrics_raw.items()},
            items=tuple(ItemScore.from_dict(v, f"{where} item {i}") for i, v in enumerate(items_raw)),
            config=dict(data.get("config") or {}),
            breakdowns={k: dict(v) for k, v in (data.get("breakdowns") or {}).items()},
            seconds=float(data.get("seconds", 0.0)),
        )


@dataclass(frozen=True)
class RunRecord(JsonFile):
    """Everything one evaluation of one model produced, named by content.

    ``fingerprint`` hashes the weights (or adapter), tokenizer files and chat
    template; ``generation`` holds the decoding settings; ``env`` holds library
    versions, git sha, hardware; ``stage`` names the pipeline stage (base, sft,
    dpo) when the record comes from a pipeline.
    """

    model: str
    fingerprint: str
    suites: Mapping[str, SuiteResult]
    generation: Mapping[str, Any] = field(default_factory=dict)
    env: Mapping[str, Any] = field(default_factory=dict)
    stage: str | None = None
    created: str = ""
    seconds: float = 0.0
    noise: "NoiseFloor | None" = None
    schema_version: int = SCHEMA_VERSION

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema_version": self.schema_version,
            "kind": "run_record",
            "model": self.model,
            "fingerprint": self.fingerprint,
            "stage": self.stage,
            "created": self.created,
            "seconds": self.seconds,
            "generation": dict(self.generation),
            "env": dict(self.env),
            "suites": {k: s.to_dict() for k, s in self.suites.items()},
        } | ({"noise": self.noise.to_dict()} if self.noise is not None else {})

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str = "record") -> "RunRecord":
        version = _require(data, "schema_version", where)
        if version != SCHEMA_VERSION:
            raise RecordError(f"{where}: schema_version {version!r} is not supported (expected {SCHEMA_VERSION})")
        if data.get("kind", "run_record") != "run_record":
            raise RecordError(f"{where}: field 'kind' is {data.get('kind')!r}, expected 'run_record'")
        suites_raw = _require(data, "suites", where)
        if not isinstance(suites_raw, Mapping):
            raise RecordError(f"{where}: field 'suites' must be an object")
        return cls(
            model=str(_require(data, "model", where)),
            fingerprint=str(_require(data, "fingerprint", where)),
            suites={k: SuiteResult.from_dict(v, f"{where}: suite") for k, v in suites_raw.items()},
            generation=dict(data.get("generation") or {}),
            env=dict(data.get("env") or {}),
            stage=data.get("stage"),
            created=str(data.get("created", "")),
            seconds=float(data.get("seconds", 0.0)),
            noise=NoiseFloor.from_dict(data["noise"], f"{where}: noise") if data.get("noise") else None,
        )


@dataclass(frozen=True)
class NoiseMetric:
    """How much one metric moved between two evaluations of the same checkpoint (an A/A pair).

    ``setting`` names what differed (``batch_size 32 -> 1``, ``dtype bfloat16 -> float16``);
    ``flipped`` counts items whose score changed out of ``n`` paired items; ``delta`` is
    the metric's value in the variant minus the reference.
    """

    suite: str
    metric: str
    setting: str
    n: int
    flipped: int
    delta: float

    @property
    def key(self) -> str:
        return f"{self.suite}.{self.metric}"

    @property
    def flip_share(self) -> float:
        return self.flipped / self.n if self.n else 0.0


@dataclass(frozen=True)
class NoiseFloor:
    """The A/A noise floor of one evaluation set-up: one checkpoint evaluated under settings that should
    not change a greedy answer (generation batch size, dtype), compared item by item with the reference.

    One real entry, the demo's SFT organism on CPU (``tunegate noise ... --dtypes float32,bfloat16``)::

        NoiseMetric(suite="knowledge", metric="accuracy", setting="dtype float32 -> bfloat16", n=140, flipped=1,
                    delta=0.007142857143)

    ``floor(key)`` is the largest absolute metric difference over the settings: the
    change a gate with ``noise_floor: true`` requires a regression to exceed.
    """

    model: str
    fingerprint: str
    reference: Mapping[str, Any]
    settings: tuple[str, ...]
    metrics: tuple[NoiseMetric, ...]
    device: str = ""
    created: str = ""
    seconds: float = 0.0

    def floor(self, key: str) -> float | None:
        deltas = [abs(m.delta) for m in self.metrics if m.key == key]
        return max(deltas) if deltas else None

    def floors(self) -> dict[str, float]:
        """``suite.metric`` -> its floor, for every measured metric."""
        return {m.key: self.floor(m.key) or 0.0 for m in self.metrics}

    def to_dict(self) -> dict[str, Any]:
        return {"kind": "noise_floor", "model": self.model, "fingerprint": self.fingerprint,
                "reference": dict(self.reference), "settings": list(self.settings), "device": self.device,
                "created": self.created, "seconds": self.seconds,
                "metrics": [dataclasses.asdict(m) for m in self.metrics]}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str = "noise floor") -> "NoiseFloor":
        metrics = _require(data, "metrics", where)
        if not isinstance(metrics, list):
            raise RecordError(f"{where}: field 'metrics' must be a list")
        try:
            return cls(
                model=str(_require(data, "model", where)), fingerprint=str(_require(data, "fingerprint", where)),
                reference=dict(data.get("reference") or {}), settings=tuple(data.get("settings") or ()),
                metrics=tuple(NoiseMetric(**m) for m in metrics), device=str(data.get("device", "")),
                created=str(data.get("created", "")), seconds=float(data.get("seconds", 0.0)))
        except TypeError as exc:
            raise RecordError(f"{where}: {exc}") from None


def item_units(value: ScoreValue) -> Sequence[float]:
    """The units behind one item's score: a float is one unit, a tuple several."""
    return value if isinstance(value, tuple) else (value,)


VERDICTS = ("improved", "regressed", "non-inferior", "underpowered", "inconclusive", "missing")
GATE_STATES = ("pass", "fail", "warn", "info")


@dataclass(frozen=True)
class MetricComparison:
    """Paired comparison of one metric of one suite between baseline and candidate.

    ``delta`` = candidate - baseline (in the metric's own direction: for a
    lower-is-better metric a positive delta is worse). ``ci_low``/``ci_high``
    bound the delta at the comparison's confidence level (two-sided).
    ``p_value`` is one-sided (H1: the candidate is worse); ``p_adjusted`` is it
    adjusted across the comparison's multiplicity family (None outside it).
    ``flips_up`` counts units that went wrong->right, ``flips_down`` right->wrong.
    ``n`` counts units, ``n_items`` the items behind them (an IFEval prompt holds
    several instruction units). ``mde`` is the drop the one-sided test at
    ``alpha`` (the family's level) catches with the gate's power; ``n_needed`` the
    items at which the MDE would reach ``margin``. ``gate`` is what the gate made
    of the verdict: pass, fail, warn or info (not gated); ``reason`` says why in one line.
    ``noise_floor`` is the largest change of this metric between two evaluations of one
    checkpoint under settings that should not matter (``NoiseFloor``), None when unmeasured.
    Files written before ``n_items``/``alpha``/``noise_floor`` existed load with None (schema 1 still).
    """

    suite: str
    metric: str
    baseline: float
    candidate: float
    delta: float
    ci_low: float
    ci_high: float
    p_value: float | None
    p_adjusted: float | None
    n: int
    flips_up: int
    flips_down: int
    mde: float | None
    n_needed: int | None
    verdict: str
    test: str
    margin: float = 0.0
    higher_is_better: bool = True
    trained: bool = False
    target: float | None = None
    gate: str = "info"
    reason: str = ""
    n_items: int | None = None
    alpha: float | None = None
    noise_floor: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str = "metric comparison") -> "MetricComparison":
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - names
        if unknown:
            raise RecordError(f"{where}: unknown field(s) {sorted(unknown)}")
        for f in dataclasses.fields(cls):
            if f.default is dataclasses.MISSING and f.name not in data:
                raise RecordError(f"{where}: missing field '{f.name}'")
        return cls(**dict(data))


@dataclass(frozen=True)
class ItemFlip:
    """One item whose score changed between baseline and candidate, with both responses as evidence."""

    suite: str
    item_id: str
    metric: str
    direction: str  # "down" (right -> wrong) or "up" (wrong -> right)
    baseline_score: float
    candidate_score: float
    prompt: str
    baseline_response: str
    candidate_response: str
    group: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str = "flip") -> "ItemFlip":
        try:
            return cls(**dict(data))
        except TypeError as exc:
            raise RecordError(f"{where}: {exc}") from None


@dataclass(frozen=True)
class Comparison(JsonFile):
    """A candidate record compared with its baseline, metric by metric, and the gate's outcome."""

    baseline_model: str
    baseline_fingerprint: str
    candidate_model: str
    candidate_fingerprint: str
    metrics: tuple[MetricComparison, ...]
    flips: tuple[ItemFlip, ...] = ()
    warnings: tuple[str, ...] = ()
    passed: bool = True
    confidence: float = 0.95
    correction: str = "holm"
    baseline_stage: str | None = None
    candidate_stage: str | None = None
    trains: tuple[str, ...] = ()
    family: tuple[str, ...] = ()  # suite.metric keys whose p-values were adjusted together
    schema_version: int = SCHEMA_VERSION

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema_version": self.schema_version,
            "kind": "comparison",
            "baseline_model": self.baseline_model,
            "baseline_fingerprint": self.baseline_fingerprint,
            "baseline_stage": self.baseline_stage,
            "candidate_model": self.candidate_model,
            "candidate_fingerprint": self.candidate_fingerprint,
            "candidate_stage": self.candidate_stage,
            "trains": list(self.trains),
            "family": list(self.family),
            "passed": self.passed,
            "confidence": self.confidence,
            "correction": self.correction,
            "warnings": list(self.warnings),
            "metrics": [m.to_dict() for m in self.metrics],
            "flips": [f.to_dict() for f in self.flips],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str = "comparison") -> "Comparison":
        version = _require(data, "schema_version", where)
        if version != SCHEMA_VERSION:
            raise RecordError(f"{where}: schema_version {version!r} is not supported (expected {SCHEMA_VERSION})")
        if data.get("kind") != "comparison":
            raise RecordError(f"{where}: field 'kind' is {data.get('kind')!r}, expected 'comparison'")
        return cls(
            baseline_model=str(_require(data, "baseline_model", where)),
            baseline_fingerprint=str(_require(data, "baseline_fingerprint", where)),
            candidate_model=str(_require(data, "candidate_model", where)),
            candidate_fingerprint=str(_require(data, "candidate_fingerprint", where)),
            metrics=tuple(MetricComparison.from_dict(m, f"{where} metric {i}")
                          for i, m in enumerate(_require(data, "metrics", where))),
            flips=tuple(ItemFlip.from_dict(f, f"{where} flip {i}") for i, f in enumerate(data.get("flips") or [])),
            warnings=tuple(data.get("warnings") or ()),
            passed=bool(data.get("passed", True)),
            confidence=float(data.get("confidence", 0.95)),
            correction=str(data.get("correction", "holm")),
            baseline_stage=data.get("baseline_stage"),
            candidate_stage=data.get("candidate_stage"),
            trains=tuple(data.get("trains") or ()),
            family=tuple(data.get("family") or ()),
        )
