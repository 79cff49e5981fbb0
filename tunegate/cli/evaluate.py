"""``tunegate eval MODEL --suites identity,ifeval,math,knowledge --out RECORD.json [--backend hf|vllm|openai]``.

    tunegate eval organism --suites math --out r.json --backend openai --base-url http://127.0.0.1:8000/v1
"""

from __future__ import annotations

import argparse
from typing import Any

from tunegate.cli import add_output_options
from tunegate.evals.backends import BACKEND_FLAGS, BACKENDS, DEFAULT_BACKEND, backend_kwargs, flag_kwargs
from tunegate.core.errors import TunegateError
from tunegate.core.files import check_output_path



def add_backend_flags(p: argparse.ArgumentParser, *, default: str | None = DEFAULT_BACKEND) -> None:
    """``--backend`` and one flag per backend option (``--base-url``, ``--tensor-parallel-size`` ...)."""
    group = p.add_argument_group("backend", "what runs the model (options name the backends they apply to)")
    fallback = default or "the config's eval.backend, else hf"
    group.add_argument("--backend", default=default, metavar="|".join(BACKENDS.names()),
                       help=f"evaluation backend (default: {fallback})")
    for f in BACKEND_FLAGS:
        group.add_argument(f"--{f.name.replace('_', '-')}", dest=f.name, **flag_kwargs(f),
                           help=f"[{', '.join(f.metadata['backends'])}] {f.metadata['help']}")


def backend_flag_values(args: argparse.Namespace) -> dict[str, Any]:
    """``{"backend": ..., **options given}``, each option checked against the chosen backend."""
    options = backend_kwargs(args.backend, {f.name: getattr(args, f.name) for f in BACKEND_FLAGS})
    return {"backend": args.backend, **options}


def register(sub: Any) -> None:
    p = sub.add_parser("eval", help="evaluate a model (hub id or local checkpoint) and write a RunRecord")
    p.add_argument("model", help="hub id (e.g. Qwen/Qwen2.5-0.5B-Instruct), local checkpoint dir, or 'organism'")
    p.add_argument("--out", required=True, help="RunRecord JSON to write")
    add_suite_args(p)
    add_backend_flags(p)
    p.add_argument("--completion-mode", action="store_true", help="send raw prompts (no chat template)")
    p.add_argument("--cache-dir", default=None)
    p.add_argument("--no-cache", action="store_true", help="neither read nor write the generation cache")
    p.add_argument("--stage", default=None, help="stage name to store in the record")
    add_output_options(p)
    p.set_defaults(func=cmd_eval)


def add_suite_args(p: argparse.ArgumentParser) -> None:
    """``--suites``, ``--limit``, ``--subset-seed``, ``--suite-option``: what to evaluate (``suite_args`` reads them)."""
    p.add_argument("--suites", default="identity,ifeval,math,knowledge", help="comma-separated suite names")
    p.add_argument("--limit", type=int, default=None, help="evaluate a fixed seeded subset of N items per suite")
    p.add_argument("--subset-seed", type=int, default=0, help="seed of the --limit subset (same for baseline and candidate)")
    p.add_argument("--suite-option", action="append", default=[], metavar="SUITE.KEY=VALUE",
                   help="suite option, value parsed as JSON when possible (e.g. identity.target='Deep Qwen')")


def suite_args(args: argparse.Namespace) -> tuple[list[str], dict[str, dict[str, Any]]]:
    """The suite names and each suite's options from ``add_suite_args``' flags."""
    from tunegate.evals.suites import parse_suite_options

    suites = [s.strip() for s in args.suites.split(",") if s.strip()]
    if not suites:
        raise TunegateError("--suites: give at least one suite name")
    return suites, parse_suite_options(args.suite_option, suites, args.limit, args.subset_seed)


def cmd_eval(args: argparse.Namespace) -> int:
    from tunegate.evals.runner import evaluate

    check_output_path(args.out)  # before the model loads: an eval must not be lost at the end
    suites, suite_options = suite_args(args)
    model = args.model
    backend_kwargs = backend_flag_values(args) | ({"completion_mode": True} if args.completion_mode else {})
    record = evaluate(model, suites, out=args.out, stage=args.stage, cache_dir=args.cache_dir,
                      use_cache=not args.no_cache, progress=not args.quiet,
                      suite_options=suite_options,
                      **backend_kwargs)
    for name, result in record.suites.items():
        metrics = ", ".join(f"{m}={v.value:.4f}" + (f"±{v.stderr:.4f}" if v.stderr is not None else "")
                            for m, v in result.metrics.items())
        print(f"{name} (v{result.version}, {len(result.items)} items, {result.seconds:.1f}s): {metrics}")
    print(f"record written to {args.out} (fingerprint {record.fingerprint})")
    return 0
