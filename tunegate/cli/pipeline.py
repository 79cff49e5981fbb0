"""``tunegate demo`` and ``tunegate run CONFIG``: the pipeline from the command line.

    tunegate demo --out runs/demo                       # the bundled organism demo, offline; exit 0 once run
    tunegate run configs/qwen2.5-0.5b-identity-dpo.yaml --out runs/dpo   # exit 1 when a gate fails
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from tunegate.training import DEMO_CONFIG


def register(sub: Any) -> None:
    demo = sub.add_parser("demo", help="run the bundled SFT -> identity DPO demo on the embedded organism (offline)")
    demo.add_argument("--out", default="runs/demo", help="run directory (default: runs/demo)")
    _common(demo)
    demo.set_defaults(func=cmd_demo)

    run = sub.add_parser("run", help="run a pipeline config: eval -> train -> eval per stage -> compare -> report")
    run.add_argument("config", help="pipeline YAML (see configs/)")
    run.add_argument("--out", required=True, help="run directory")
    _common(run)
    run.set_defaults(func=cmd_run)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--max-steps", type=int, default=None, help="cap every stage's training steps (quick runs)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config field: dotted KEY (stages.0.args.max_steps), YAML VALUE; repeatable")
    p.add_argument("--limit", type=int, default=None, metavar="N",
                   help="cap every eval suite's items and every stage's training rows at N (quick runs)")
    p.add_argument("--cache-dir", default=None, help="generation cache directory (default: $TUNEGATE_CACHE or ~/.cache/tunegate)")
    p.add_argument("--no-report", action="store_true", help="skip report.html")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("--num-processes", type=int, default=1, metavar="N",
                   help="train each stage on N processes under `accelerate launch` (DDP; default 1: in-process)")
    p.add_argument("--accelerate-config", default=None, metavar="FILE",
                   help="accelerate config for the training launch (e.g. configs/accelerate/fsdp.yaml)")


def _run(config_path: Path, args: argparse.Namespace, *, gate_exit: bool = True) -> int:
    from tunegate.pipeline import run_pipeline
    from tunegate.training.config import load_config

    config = load_config(config_path, sets=args.set, limit=args.limit)
    result = run_pipeline(config, args.out, max_steps=args.max_steps, cache_dir=args.cache_dir,
                          progress=not args.quiet, report=not args.no_report,
                          num_processes=args.num_processes, accelerate_config=args.accelerate_config)
    print(format_summary(result))
    return 0 if result.passed or not gate_exit else 1


def cmd_demo(args: argparse.Namespace) -> int:
    go_offline()
    # the demo exits 0 once it has run: its gate verdicts are part of what it shows (`run` exits 1 on a failed gate)
    return _run(DEMO_CONFIG, args, gate_exit=False)


def go_offline() -> None:
    """The demo opens nothing on the network: no hub calls, no telemetry."""
    import os

    for var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "HF_HUB_DISABLE_TELEMETRY", "TRANSFORMERS_OFFLINE"):
        os.environ[var] = "1"
    constants = sys.modules.get("huggingface_hub.constants")
    if constants is not None:  # already imported: its flags were read at import time
        constants.HF_HUB_OFFLINE = True
        constants.HF_HUB_DISABLE_TELEMETRY = True


def cmd_run(args: argparse.Namespace) -> int:
    return _run(Path(args.config), args)


def format_summary(result: Any) -> str:
    """The end-of-run table: every headline metric per stage, then each comparison's verdicts."""
    stages = list(result.records)
    keys = sorted({f"{s}.{m}" for rec in result.records.values() for s, sr in rec.suites.items() for m in sr.metrics})
    width = max([len(k) for k in keys] + [10])
    lines = [f"{'metric':<{width}} " + " ".join(f"{s:>9}" for s in stages)]
    for key in keys:
        suite, metric = key.split(".", 1)
        vals = []
        for s in stages:
            sr = result.records[s].suites.get(suite)
            mv = sr.metrics.get(metric) if sr else None
            vals.append(f"{mv.value:9.3f}" if mv is not None else f"{'-':>9}")
        lines.append(f"{key:<{width}} " + " ".join(vals))
    for name, comp in result.comparisons.items():
        lines.append("")
        lines.append(f"{name}: {'PASSED' if comp.passed else 'FAILED'} (trains: {', '.join(comp.trains) or '-'})")
        for m in comp.metrics:
            mark = {"fail": "x", "warn": "!", "pass": "ok"}.get(m.gate, "")
            lines.append(f"  {mark:>2} {m.suite + '.' + m.metric:<{width}} {m.baseline:6.3f} -> {m.candidate:6.3f} "
                         f"({m.delta:+.3f} [{m.ci_low:+.3f}, {m.ci_high:+.3f}]) {m.verdict:<13} {m.reason}")
    if result.report:
        lines.append("")
        lines.append(f"report: {result.report}")
    lines.append(f"run directory: {result.out_dir}")
    return "\n".join(lines)
