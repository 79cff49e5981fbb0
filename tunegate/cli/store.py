"""``tunegate store add|bless|list`` and ``tunegate history``: the results store from the command line.

The store is the SQLite file the pytest plugin, ``tunegate run`` (for a config with ``model_line``) and
``tunegate report --store`` use (default ``runs/tunegate.sqlite``)::

    $ tunegate store add runs/qwen3-sft/records/sft.json --model-line qwen3-0.6b-base-sft --bless
    stored run 20260101T021700-3f2a9c1b (model line qwen3-0.6b-base-sft) in runs/tunegate.sqlite; blessed

    $ tunegate store list qwen3-0.6b-base-sft
      run_id                    model_line           stage  model           fingerprint   created
    * 20260101T021700-3f2a9c1b  qwen3-0.6b-base-sft  sft    runs/.../model  9f1c2ab4e0d1  2026-01-01T02:17:00
          math.exact_match=0.570  ifeval.prompt_strict=0.412
    (* blessed)

    $ tunegate store bless qwen3-0.6b-base-sft runs/qwen3-sft/records/sft.json --if-unblessed
    # the run stored from that record becomes the baseline, unless the line has one (`latest`: its newest run)
    $ tunegate history qwen3-0.6b-base-sft --stage sft                  # one line per metric, one column per run

A record is stored once per model line: adding it again names the run that holds it and adds nothing.
Only ``store add`` creates a store; ``list``, ``bless`` and ``history`` of a missing one are an error.

Exit codes: 0 done, 2 bad input (unknown run, unreadable record or store, a store it cannot write): one line
on stderr.
"""

from __future__ import annotations

import argparse
from typing import Any, Sequence

from tunegate.core.errors import TunegateError

STORE_HELP = "results store: a path or sqlite:///path (default runs/tunegate.sqlite)"


def register(subparsers: Any) -> None:
    store = subparsers.add_parser("store", help="add, bless and list runs in the results store (SQLite)",
                                  description="The results store the plugin, `tunegate run` and the report use.")
    commands = store.add_subparsers(dest="store_command", metavar="COMMAND", required=True)

    add = commands.add_parser("add", help="store a RunRecord under a model line")
    add.add_argument("record", metavar="RECORD.json")
    add.add_argument("--model-line", required=True, metavar="LINE", help="model line to store the run under")
    add.add_argument("--store", default=None, metavar="PATH", help=STORE_HELP)
    add.add_argument("--bless", action="store_true", help="also make it the line's blessed baseline")
    add.set_defaults(func=run_add)

    bless = commands.add_parser("bless", help="make a stored run the blessed baseline of its model line")
    bless.add_argument("model_line", metavar="LINE")
    bless.add_argument("run_id", metavar="RUN_ID", help="a run id (see `tunegate store list`); `latest`: the line's "
                                                        "newest run; or a RECORD.json: the line's run stored from it")
    bless.add_argument("--store", default=None, metavar="PATH", help=STORE_HELP)
    bless.add_argument("--if-unblessed", action="store_true",
                       help="bless only when the line has no blessed run yet (e.g. the first night)")
    bless.set_defaults(func=run_bless)

    ls = commands.add_parser("list", help="stored runs: id, model, fingerprint, stage, created, blessed, metrics")
    ls.add_argument("model_line", nargs="?", default=None, metavar="LINE", help="only this model line")
    ls.add_argument("--store", default=None, metavar="PATH", help=STORE_HELP)
    ls.set_defaults(func=run_list)

    history = subparsers.add_parser("history", help="trend of each metric over the stored runs of a model line")
    history.add_argument("model_line", metavar="MODEL_LINE")
    history.add_argument("--store", default=None, metavar="PATH", help=STORE_HELP)
    history.add_argument("--stage", default=None, help="only the runs of this stage (a pipeline stores each stage)")
    history.set_defaults(func=run_history)


def _open(path: str | None, create: bool = False) -> Any:
    """The store at ``path``; only ``store add`` creates one (reading a missing store is an error)."""
    from tunegate.evals.store import DEFAULT_STORE, Store

    return Store(path or DEFAULT_STORE, create=create)


def run_add(args: argparse.Namespace) -> int:
    from tunegate.evals.records import RunRecord

    record = RunRecord.load(args.record)
    with _open(args.store, create=True) as store:
        existing = store.stored_run(record, args.model_line)
        run_id = existing or store.add_run(record, args.model_line)
        if args.bless:
            store.bless(args.model_line, run_id)
        blessed = "; blessed" if args.bless else ""
        if existing:
            print(f"{args.record} is already stored as run {run_id} (model line {args.model_line}) in {store.path}; "
                  f"nothing added{blessed}")
        else:
            print(f"stored run {run_id} (model line {args.model_line}) in {store.path}{blessed}")
    return 0


def run_bless(args: argparse.Namespace) -> int:
    with _open(args.store) as store:
        current = store.blessed_run_id(args.model_line)
        if args.if_unblessed and current is not None:
            print(f"model line {args.model_line} already has a blessed run ({current}); nothing blessed")
            return 0
        run_id = _resolve(store, args.model_line, args.run_id)
        if run_id not in store.run_ids(args.model_line):
            raise TunegateError(f"{store.path}: model line '{args.model_line}' has no run '{run_id}' "
                                "(see `tunegate store list`)")
        store.bless(args.model_line, run_id)
        print(f"blessed run {run_id} as the baseline of model line {args.model_line} in {store.path}")
    return 0


def _resolve(store: Any, model_line: str, spec: str) -> str:
    """A run id from a run id, ``latest`` or a record file (the run stored from that record)."""
    if spec == "latest":
        run_id = store.latest_run_id(model_line)
        if run_id is None:
            raise TunegateError(f"{store.path}: no runs stored for model line '{model_line}'")
        return run_id
    if spec.endswith(".json"):
        from tunegate.evals.records import RunRecord

        run_id = store.find_run(model_line, RunRecord.load(spec))
        if run_id is None:
            raise TunegateError(f"{store.path}: model line '{model_line}' has no run stored from {spec}")
        return run_id
    return spec


def run_list(args: argparse.Namespace) -> int:
    with _open(args.store) as store:
        runs = store.runs(args.model_line)
        if not runs:
            where = f" for model line '{args.model_line}'" if args.model_line else ""
            raise TunegateError(f"{store.path}: no runs stored{where}")
    print(format_runs(runs))
    return 0


def format_runs(runs: Sequence[Any]) -> str:
    """One header line per run (``*`` marks a blessed run), then its metrics on an indented line."""
    head = ["run_id", "model_line", "stage", "model", "fingerprint", "created"]
    rows = [[r.run_id, r.model_line, r.stage or "-", r.model, r.fingerprint[:12], r.created] for r in runs]
    widths = [max(len(str(row[i])) for row in [head, *rows]) for i in range(len(head))]
    lines = ["  " + "  ".join(c.ljust(w) for c, w in zip(head, widths)).rstrip()]
    for run, row in zip(runs, rows):
        lines.append(("* " if run.blessed else "  ") + "  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip())
        if run.metrics:
            lines.append("      " + "  ".join(f"{name}={value:.3f}" for name, value in run.metrics.items()))
    lines.append("(* blessed)")
    return "\n".join(lines)


def run_history(args: argparse.Namespace) -> int:
    with _open(args.store) as store:
        rows = store.history(args.model_line, stage=args.stage)
        blessed = store.blessed_run_id(args.model_line)
        path = store.path
    if not rows:
        stage = f" at stage '{args.stage}'" if args.stage else ""
        raise TunegateError(f"{path}: no runs stored for model line '{args.model_line}'{stage}")
    print(format_history(rows, blessed))
    return 0


def format_history(rows: list, blessed: str | None = None) -> str:
    """One line per metric: its value in each run, oldest first (``*`` marks the blessed run)."""
    metrics = sorted({k for _, _, values in rows for k in values})
    head = ["metric"] + [f"{run_id}{'*' if run_id == blessed else ''}" for run_id, _, _ in rows]
    table = [head]
    for name in metrics:
        cells = [name]
        for _, _, values in rows:
            v = values.get(name)
            cells.append("-" if v is None else f"{v[0]:.3f}" + ("" if v[1] is None else f"±{v[1]:.3f}"))
        table.append(cells)
    widths = [max(len(r[i]) for r in table) for i in range(len(head))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in table)
