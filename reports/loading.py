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
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Iterable, Sequence

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

    def extend(self, other: "ReportInputs") -> None:
        self.records.extend(other.records)
        self.comparisons.extend(other.comparisons)
        self.plans.update(other.plans)
        self.analyses.extend(other.analyses)
        self.training_logs.update(other.training_logs)
        self.manifests.update(other.manifests)
        self.summary = self.summary or other.summary


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


def load_paths(paths: Iterable[str | Path]) -> ReportInputs:
    """Load run directories and record/comparison JSON files, in the order given."""
    inputs = ReportInputs()
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            inputs.extend(load_run_dir(path))
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
    return inputs


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
