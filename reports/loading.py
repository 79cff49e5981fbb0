"""Load what a report needs from disk: a pipeline run directory, or record/comparison files.

The run directory layout (the pipeline's contract)::

    DIR/summary.json                       {"stages": ["base", "sft", "dpo"], "passed": false, ...}
    DIR/records/<stage>.json               RunRecord per stage
    DIR/comparisons/<cand>_vs_<base>.json  Comparison
    DIR/stages/<stage>/training_log.json   TRL trainer.state.log_history (list of dicts)
    DIR/stages/<stage>/manifest.json       {base_model, method, data, config, git_sha, seed, trains, ...}
    DIR/plans/<cand>_vs_<base>.json        Plan (items each gated metric needs, eval time)
    DIR/analysis/<stage>_<kind>.json       an analysis (tunegate.evals.analysis: shift, knowledge)

Files given one by one are told apart by their ``kind`` field (``run_record``,
``comparison`` or an analysis kind). Every failure is a RecordError naming the file.
``compare_in_order`` adds the comparisons a gate makes of records given without one
(``tunegate report base.json dpo.json --gate dpo``).

Several run directories are variants of one pipeline (LoRA beside a full fine-tune, two seeds): each is
named by its directory (``runs/full``, ``runs/lora`` -> ``full``, ``lora``) and its stages are labelled
``VARIANT/STAGE`` (``lora/sft``), so no two runs share a column, a comparison or a training log. A stage
whose record is the same in every variant (the base: same fingerprint, same scores) is shown once, unlabelled::

    tunegate report runs/full runs/lora --out lora-vs-full.html
    # columns base, full/sft, lora/sft, full/dpo, lora/dpo; comparisons full/sft vs base, lora/sft vs base, ...
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

from tunegate.evals.gate import GateConfig
from tunegate.evals.plan import Plan
from tunegate.evals.analysis import ANALYSES, load_analysis
from tunegate.evals.records import Comparison, RunRecord
from tunegate.core.errors import RecordError
from tunegate.core.files import read_json


@dataclass
class ReportInputs:
    """Everything a report renders, loaded from disk."""

    records: list[RunRecord] = field(default_factory=list)
    comparisons: list[Comparison] = field(default_factory=list)
    training_logs: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    manifests: dict[str, dict[str, Any]] = field(default_factory=dict)
    summary: dict[str, Any] = field(default_factory=dict)
    plans: dict[str, Plan] = field(default_factory=dict)  # "<cand> vs <base>" -> its eval budget
    analyses: list[Any] = field(default_factory=list)
    variants: dict[str, Variant] = field(default_factory=dict)  # several run directories: name -> its run

    def extend(self, other: "ReportInputs") -> None:
        self.records.extend(other.records)
        self.comparisons.extend(other.comparisons)
        self.plans.update(other.plans)
        self.analyses.extend(other.analyses)
        self.training_logs.update(other.training_logs)
        self.manifests.update(other.manifests)
        self.variants.update(other.variants)
        self.summary = self.summary or other.summary


#: Between a variant's name and its stage in a label (``lora/sft``).
VARIANT_SEP = "/"


@dataclass(frozen=True)
class Variant:
    """One run directory of several given together: its name, where it is, what its summary says."""

    name: str
    path: str
    stages: tuple[str, ...]
    summary: dict[str, Any]


def split_label(label: str, variants: Iterable[str]) -> tuple[str | None, str]:
    """``("lora", "sft")`` for ``lora/sft`` when ``lora`` is a variant; ``(None, label)`` otherwise."""
    name, sep, stage = label.partition(VARIANT_SEP)
    return (name, stage) if sep and name in set(variants) else (None, label)


def _training_log(path: Path) -> list[dict[str, Any]]:
    data = read_json(path)
    if isinstance(data, dict) and isinstance(data.get("log_history"), list):
        data = data["log_history"]  # a whole trainer_state.json
    if not isinstance(data, list) or not all(isinstance(row, dict) for row in data):
        raise RecordError(f"{path}: expected a list of log dicts (trainer.state.log_history)")
    return data


def load_run_dir(run_dir: str | Path) -> ReportInputs:
    """Load a pipeline run directory; stages are ordered as summary.json lists them."""
    root = Path(run_dir)
    if not root.is_dir():
        raise RecordError(f"{root}: not a directory")
    summary_path = root / "summary.json"
    summary = read_json(summary_path) if summary_path.is_file() else {}
    if not isinstance(summary, dict):
        raise RecordError(f"{summary_path}: expected an object")
    record_files = {p.stem: p for p in sorted((root / "records").glob("*.json"))}
    if not record_files:
        raise RecordError(f"{root}: no records/<stage>.json found (is this a tunegate run directory?)")
    order = [s for s in summary.get("stages", []) if s in record_files]
    order += [s for s in record_files if s not in order]
    inputs = ReportInputs(summary=summary)
    for stage in order:
        record = RunRecord.load(record_files[stage])
        if record.stage is None:
            record = replace(record, stage=stage)
        inputs.records.append(record)
    inputs.comparisons = [Comparison.load(p) for p in sorted((root / "comparisons").glob("*.json"))]
    inputs.plans = {p.stem.replace("_vs_", " vs "): Plan.load(p)
                    for p in sorted((root / "plans").glob("*.json"))}
    inputs.analyses = [load_analysis(p) for p in sorted((root / "analysis").glob("*.json"))]
    for stage_dir in sorted(p for p in (root / "stages").glob("*") if p.is_dir()):
        if (stage_dir / "training_log.json").is_file():
            inputs.training_logs[stage_dir.name] = _training_log(stage_dir / "training_log.json")
        if (stage_dir / "manifest.json").is_file():
            manifest = read_json(stage_dir / "manifest.json")
            if not isinstance(manifest, dict):
                raise RecordError(f"{stage_dir / 'manifest.json'}: expected an object")
            inputs.manifests[stage_dir.name] = manifest
    return inputs


def variant_names(dirs: Sequence[Path]) -> dict[Path, str]:
    """Each run directory's variant name: its own name, with as many parent folders as tell them apart."""
    for depth in range(1, max((len(d.resolve().parts) for d in dirs), default=1) + 1):
        names = {d: "-".join(d.resolve().parts[-depth:]) for d in dirs}
        if len(set(names.values())) == len(dirs):
            return names
    raise RecordError(f"the same run directory is given twice: {', '.join(map(str, dirs))}")


def relabel(inputs: ReportInputs, label: Callable[[str], str]) -> ReportInputs:
    """``inputs`` with every stage label mapped by ``label`` (records, comparisons' ends, training logs,
    manifests, plans, analyses); where two then share a label, the first is kept (what has no stage stays)."""
    def one(stage: str | None) -> str | None:
        return None if stage is None else label(stage)

    def first(pairs: Iterable[tuple[Any, Any]]) -> dict[Any, Any]:
        out: dict[Any, Any] = {}
        for key, value in pairs:
            out.setdefault(key, value)
        return out

    def plan_key(key: str) -> str:
        return " vs ".join(label(part) for part in key.split(" vs ", 1))

    records = first((r.stage or id(r), r) for r in (replace(r, stage=one(r.stage)) for r in inputs.records))
    comparisons = first(((c.baseline_stage, c.candidate_stage) if c.candidate_stage else id(c), c) for c in (
        replace(c, baseline_stage=one(c.baseline_stage), candidate_stage=one(c.candidate_stage))
        for c in inputs.comparisons))
    analyses = first(((a.kind, a.stage) if a.stage else id(a), a) for a in (
        replace(a, stage=one(a.stage), **({"input_stage": one(a.input_stage)} if hasattr(a, "input_stage") else {}))
        for a in inputs.analyses))
    return ReportInputs(
        records=list(records.values()), comparisons=list(comparisons.values()), analyses=list(analyses.values()),
        training_logs=first((label(k), v) for k, v in inputs.training_logs.items()),
        manifests=first((label(k), v) for k, v in inputs.manifests.items()),
        plans=first((plan_key(k), v) for k, v in inputs.plans.items()),
        summary=inputs.summary, variants=dict(inputs.variants))


def as_variant(inputs: ReportInputs, name: str, path: Path) -> ReportInputs:
    """A run directory's inputs with every stage labelled ``name/stage``."""
    labelled = relabel(inputs, lambda stage: f"{name}{VARIANT_SEP}{stage}")
    labelled.variants = {name: Variant(name, str(path), tuple(r.stage or "" for r in inputs.records), inputs.summary)}
    return labelled


def _same(a: RunRecord, b: RunRecord) -> bool:
    """The same model evaluated the same way with the same scores (the base of two variants of a pipeline)."""
    def scores(r: RunRecord) -> dict[str, Any]:
        return {name: (s.config, {m: v.value for m, v in s.metrics.items()}) for name, s in r.suites.items()}

    return a.fingerprint == b.fingerprint and scores(a) == scores(b)


def share_common_stages(inputs: ReportInputs) -> ReportInputs:
    """The variants' inputs with a stage whose record is the same in every variant shown once, under its own name
    (what names it, as its comparisons and analyses do, follows); records ordered stage by stage, variant by
    variant; the summary passed when every variant's did."""
    names = list(inputs.variants)
    by_stage: dict[str, list[RunRecord]] = {}
    for r in inputs.records:
        by_stage.setdefault(split_label(r.stage or "", names)[1], []).append(r)
    shared = {r.stage: stage for stage, group in by_stage.items()
              if len(group) == len(names) and all(_same(group[0], r) for r in group[1:]) for r in group}
    out = relabel(inputs, lambda stage: shared.get(stage, stage))
    order = {stage: i for v in inputs.variants.values() for i, stage in enumerate(v.stages)}

    def position(r: RunRecord) -> tuple[int, int]:
        variant, stage = split_label(r.stage or "", names)
        return order.get(stage, len(order)), names.index(variant) if variant else -1

    out.records.sort(key=position)
    passed = [v.summary.get("passed") for v in inputs.variants.values()]
    errors = [f"{v.name}: {v.summary['error']}" for v in inputs.variants.values() if v.summary.get("error")]
    out.summary = {"passed": None if None in passed else all(passed), "error": "; ".join(errors) or None}
    return out


def load_paths(paths: Iterable[str | Path]) -> ReportInputs:
    """Load run directories and record/comparison JSON files, in the order given; several run directories are
    variants of one pipeline (``as_variant``, ``share_common_stages``)."""
    paths = list(paths)
    dirs = [Path(p) for p in paths if Path(p).is_dir()]
    variants = variant_names(dirs) if len(dirs) > 1 else {}
    inputs = ReportInputs()
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            run = load_run_dir(path)
            inputs.extend(as_variant(run, variants[path], path) if variants else run)
            continue
        data = read_json(path)
        kind = data.get("kind", "run_record") if isinstance(data, dict) else None
        if kind == "comparison":
            inputs.comparisons.append(Comparison.from_dict(data, where=str(path)))
        elif kind == "run_record":
            inputs.records.append(RunRecord.from_dict(data, where=str(path)))
        elif kind in ANALYSES:
            inputs.analyses.append(load_analysis(path))
        else:
            raise RecordError(f"{path}: field 'kind' is {kind!r}; expected 'run_record', 'comparison' or an "
                              f"analysis ({', '.join(ANALYSES.names())})")
    if not inputs.records and not inputs.comparisons:
        raise RecordError("no records or comparisons given")
    return share_common_stages(inputs) if variants else inputs


def compare_in_order(inputs: ReportInputs, gate: GateConfig, trains: Sequence[str] = ()) -> list[Comparison]:
    """Compare each record with the one given before it under ``gate`` (``trains``: the suites the later
    one's stage trained), where no comparison of that pair was given; the new comparisons join ``inputs``."""
    from tunegate.evals.compare import compare_records

    have = {(c.baseline_fingerprint, c.candidate_fingerprint) for c in inputs.comparisons}
    added = [compare_records(before, after, gate, trains=trains)
             for before, after in zip(inputs.records, inputs.records[1:])
             if (before.fingerprint, after.fingerprint) not in have]
    inputs.comparisons.extend(added)
    return added
