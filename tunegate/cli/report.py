"""``tunegate report``: render the HTML report from a run directory or record/comparison files.

Examples::

    tunegate report runs/demo                          # writes runs/demo/report.html
    tunegate report base.json sft.json sft_vs_base.json --out report.html
    tunegate report base.json dpo.json --gate dpo --trains identity      # compares them itself: the verdict
    tunegate report runs/nightly --store runs/tunegate.sqlite --model-line qwen3-sft
    tunegate report runs/full runs/lora --out lora-vs-full.html       # variants of one pipeline, side by side

Exit codes: 0 the report was written (whatever the gate said; the banner tells),
2 bad input (a missing or malformed file, a store without that model line).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from tunegate.cli.compare import add_trains_option
from tunegate.core.errors import TunegateError
from tunegate.core.files import check_output_path


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "report", help="render the HTML report from saved records (no model is run)",
        description="Render one self-contained HTML report from a pipeline run directory, "
                    "or from RunRecord and Comparison JSON files given in any order.")
    parser.add_argument("inputs", nargs="+", metavar="RECORDS_OR_RUN_DIR",
                        help="a run directory (records/, comparisons/, stages/, analysis/) or .json record, comparison "
                             "or analysis files; several run directories are variants of one pipeline, shown "
                             "side by side (stages labelled DIR/STAGE)")
    parser.add_argument("--out", type=Path, default=None,
                        help="output file (default: RUN_DIR/report.html for one run directory, else report.html)")
    parser.add_argument("--store", default=None, help="results store (SQLite path or sqlite:///path) for the trend plot")
    parser.add_argument("--model-line", default=None, help="model line whose stored history is plotted (with --store)")
    parser.add_argument("--stage", default=None,
                        help="plot only this stage's stored runs (`tunegate run` stores each stage under its line)")
    parser.add_argument("--gate", default=None, metavar="GATE",
                        help="compare each record with the one given before it under this gate (a YAML file or a "
                             "shipped gate's name, dpo or sft) where no comparison of the pair is given")
    add_trains_option(parser, "with --gate: suites the later record's stage trained")
    parser.add_argument("--title", default=None, help="page title")
    parser.set_defaults(func=run_report)


def _history(store_url: str | None, model_line: str | None, stage: str | None = None) -> Any:
    if store_url is None and model_line is None:
        return None
    if store_url is None or model_line is None:
        raise TunegateError("--store and --model-line go together: give both or neither")
    from tunegate.evals.store import Store

    with Store(store_url, create=False) as store:
        rows = store.history(model_line, stage=stage)
    if not rows:
        raise TunegateError(f"store '{store_url}': no runs of model line '{model_line}'")
    return rows


def run_report(args: argparse.Namespace) -> int:
    from tunegate.reports.html import write_report  # matplotlib and jinja2: only when a report is written
    from tunegate.reports.loading import compare_in_order, load_paths

    if args.trains and args.gate is None:
        raise TunegateError("--trains goes with --gate: it says which suites the compared stage trained")
    single_dir = len(args.inputs) == 1 and Path(args.inputs[0]).is_dir()
    out = check_output_path(args.out or (Path(args.inputs[0]) / "report.html" if single_dir else Path("report.html")))
    gate = None
    if args.gate is not None:
        from tunegate.evals.gate import GateConfig

        gate = GateConfig.from_yaml(args.gate)
    inputs = load_paths(args.inputs)
    if gate is not None:
        compare_in_order(inputs, gate, args.trains)
    title = args.title or (f"tunegate report: {Path(args.inputs[0]).resolve().name}" if single_dir else "tunegate report")
    path = write_report(out, inputs.records, inputs.comparisons, training_logs=inputs.training_logs,
                        manifests=inputs.manifests,
                        history=_history(args.store, args.model_line, args.stage),
                        summary=inputs.summary, plans=inputs.plans, title=title, analyses=inputs.analyses,
                        variants=inputs.variants)
    failed = [c for c in inputs.comparisons if not c.passed]
    verdict = "no gate" if not inputs.comparisons else ("FAILED" if failed or inputs.summary.get("passed") is False
                                                         else "passed")
    print(f"wrote {path} ({path.stat().st_size / 1e6:.2f} MB; gate {verdict})", file=sys.stdout)
    return 0
