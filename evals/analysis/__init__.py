"""Why did it change: analyses that explain a stage beyond its scores, each a file beside the records.

An analysis is a frozen dataclass with ``kind``, ``to_dict``/``from_dict`` and ``save``/``load``, made
by a pure function over records (plus at most one model pass, through a backend capability). The
pipeline writes them to ``DIR/analysis/<stage>_<kind>.json``; ``tunegate analyze <kind>`` writes one
from saved records; the report renders each kind in its own section. A new analysis is one module
here plus one line in ``ANALYSES`` (and a section in ``tunegate.reports.html.ANALYSIS_SECTIONS``)::

    shift      token-distribution shift of a stage's responses under its input model (Lin et al. 2023)
    knowledge  SliCK knowledge categories of SFT data under the base model (Gekhman et al. 2024)

    analysis = load_analysis("runs/demo/analysis/sft_shift.json")   # a ShiftAnalysis
    analysis.kind, analysis.stage                                   # ("shift", "sft")
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tunegate.core.errors import RecordError
from tunegate.core.files import read_json
from tunegate.core.registry import Registry

ANALYSES: Registry[Any] = Registry("analysis", {
    "shift": "tunegate.evals.analysis.shift:ShiftAnalysis",
    "knowledge": "tunegate.evals.analysis.knowledge:KnowledgeAnalysis",
})
SCHEMA_VERSION = 1


def load_analysis(path: str | Path) -> Any:
    """The analysis saved at ``path``, as the class its ``kind`` names; one RecordError otherwise."""
    data = read_json(path)
    kind = data.get("kind") if isinstance(data, dict) else None
    if kind not in ANALYSES:
        raise RecordError(f"{path}: field 'kind' is {kind!r}; expected one of {', '.join(ANALYSES.names())}")
    if data.get("schema_version") != SCHEMA_VERSION:
        raise RecordError(f"{path}: schema_version {data.get('schema_version')!r} is not supported "
                          f"(expected {SCHEMA_VERSION})")
    return ANALYSES.get(kind).from_dict(data, where=str(path))


def analysis_path(run_dir: str | Path, stage: str, kind: str) -> Path:
    """Where a pipeline run keeps one stage's analysis of one kind."""
    return Path(run_dir) / "analysis" / f"{stage}_{kind}.json"
