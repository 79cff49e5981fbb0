"""``tunegate demo`` and ``tunegate run CONFIG``: the pipeline from the command line.

    tunegate demo --out runs/demo                       # the bundled organism demo, offline; exit 0 once run
    tunegate run configs/qwen2.5-0.5b-identity-dpo.yaml --out runs/dpo   # exit 1 when a gate fails
    tunegate run configs/qwen3-0.6b-base-sft.yaml --out runs/sft --backend vllm   # evals on vLLM
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from tunegate.cli import add_output_options
from tunegate.cli.evaluate import add_backend_flags, backend_args
from tunegate.core.files import check_output_path
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
    add_backend_flags(run, default=None)
    run.set_defaults(func=cmd_run)


def _common(p: argparse.ArgumentParser) -> None:
    from tunegate.evals.spec import LIMIT_HELP

    p.add_argument("--max-steps", type=int, default=None, help="cap every stage's training steps (quick runs)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config field: dotted KEY (stages.0.args.max_steps), YAML VALUE; repeatable")
    p.add_argument("--limit", type=int, default=None, metavar="N",
                   help=f"{LIMIT_HELP}; every stage's training rows are capped at N too (quick runs)")
    p.add_argument("--cache-dir", default=None, help="generation cache directory (default: $TUNEGATE_CACHE or ~/.cache/tunegate)")
    p.add_argument("--no-report", action="store_true", help="skip report.html")
    add_output_options(p)
    p.add_argument("--num-processes", type=int, default=1, metavar="N",
                   help="train each stage on N processes under `accelerate launch` (DDP; default 1: in-process)")
    p.add_argument("--accelerate-config", default=None, metavar="FILE",
                   help="accelerate config for the training launch (e.g. configs/accelerate/fsdp.yaml)")
    p.add_argument("--store", default=None, metavar="PATH",
                   help="results store the stages' records go to when the config has a model_line "
                        "(default runs/tunegate.sqlite)")


def _run(config_path: Path, args: argparse.Namespace, *, gate_exit: bool = True) -> int:
    from tunegate.evals.store import DEFAULT_STORE
    from tunegate.pipeline import run_pipeline
    from tunegate.training.config import load_config

    check_output_path(args.out, directory=True)
    config = with_backend_flags(load_config(config_path, sets=args.set, limit=args.limit), args)
    result = run_pipeline(config, args.out, max_steps=args.max_steps, cache_dir=args.cache_dir,
                          progress=not args.quiet, report=not args.no_report,
                          num_processes=args.num_processes, accelerate_config=args.accelerate_config,
                          store=args.store or DEFAULT_STORE)
    print(format_summary(result))
    return 0 if result.passed or not gate_exit else 1


def with_backend_flags(config: Any, args: argparse.Namespace) -> Any:
    """``config`` with the command line's ``--backend`` and backend options over its ``eval.backend(_options)``:
    a flag replaces the config's option; another ``--backend`` drops the config's options (they are the other
    backend's)."""
    from dataclasses import replace

    from tunegate.evals.backends import BackendOptions

    if not hasattr(args, "backend"):  # tunegate demo
        return config
    backend, given = backend_args(args)
    if given.trust_remote_code:  # the config's top-level key: it covers training as well as evaluation
        config, given = replace(config, trust_remote_code=True), replace(given, trust_remote_code=None)
    if backend is None and not given.given():
        return config
    same = backend in (None, config.eval.backend)
    options = (config.eval.backend_options if same else BackendOptions()).updated(**given.given())
    return replace(config, eval=replace(config.eval, backend=backend or config.eval.backend, backend_options=options))


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
    """The end-of-run table: every headline metric per stage, then each comparison's verdicts.

    A suite scored against a target (identity) names it on each row, one row per target, since a
    stage that renames the model scores against a new name; a comparison whose target differs from
    its input stage's own record says that the input was re-scored against the new one::

        metric                                base       sft       dpo
        identity.adherence [target: Tiny]     0.000     0.917         -
        identity.adherence [target: Deep Tiny]    -         -     0.958
        ...
        dpo_vs_sft: PASSED (trains: identity)
          identity target: 'Tiny' in sft's record -> 'Deep Tiny' here: sft's responses re-scored against 'Deep Tiny'
          ok identity.adherence [target: Deep Tiny]  0.000 ->  0.958 (+0.958 [+0.875, +1.000]) improved ...
    """
    stages = list(result.records)
    rows: dict[str, dict[str, float]] = {}
    for stage, rec in result.records.items():
        for suite, sr in rec.suites.items():
            for metric, mv in sr.metrics.items():
                rows.setdefault(_label(suite, metric, sr.config), {})[stage] = mv.value
    labels = sorted(rows, key=lambda k: (k.split(" ")[0], k))
    width = max([len(k) for k in labels] + [10])
    lines = [f"{'metric':<{width}} " + " ".join(f"{s:>9}" for s in stages)]
    for label in labels:
        lines.append(f"{label:<{width}} " + " ".join(
            f"{rows[label][s]:9.3f}" if s in rows[label] else f"{'-':>9}" for s in stages))
    for name, comp in result.comparisons.items():
        candidate, baseline = result.records.get(comp.candidate_stage), result.records.get(comp.baseline_stage)
        lines.append("")
        lines.append(f"{name}: {'PASSED' if comp.passed else 'FAILED'} (trains: {', '.join(comp.trains) or '-'})")
        for suite, sr in (candidate.suites.items() if candidate else ()):
            old = baseline.suites[suite].config.get("target") if baseline and suite in baseline.suites else None
            new = sr.config.get("target")
            if old is not None and new is not None and old != new:
                lines.append(f"  {suite} target: '{old}' in {comp.baseline_stage}'s record -> '{new}' here: "
                             f"{comp.baseline_stage}'s responses re-scored against '{new}'")
        for m in comp.metrics:
            mark = {"fail": "x", "warn": "!", "pass": "ok"}.get(m.gate, "")
            label = _label(m.suite, m.metric, candidate.suites[m.suite].config if candidate else {})
            lines.append(f"  {mark:>2} {label:<{width}} {m.baseline:6.3f} -> {m.candidate:6.3f} "
                         f"({m.delta:+.3f} [{m.ci_low:+.3f}, {m.ci_high:+.3f}]) {m.verdict:<13} {m.reason}")
    if result.report:
        lines.append("")
        lines.append(f"report: {result.report}")
    lines.append(f"run directory: {result.out_dir}")
    return "\n".join(lines)


def _label(suite: str, metric: str, config: Any) -> str:
    """``suite.metric``, plus the target it was scored against when the suite has one (identity)."""
    target = config.get("target")
    return f"{suite}.{metric}" + (f" [target: {target}]" if target else "")
