"""``tunegate eval MODEL --suites identity,ifeval,math,knowledge --out RECORD.json [--backend hf|vllm|openai]``.

    tunegate eval organism --suites math --out r.json --backend openai --base-url http://127.0.0.1:8000/v1

The flags here are declared by what they configure and read into one ``EvalSpec``
(tunegate.evals.spec): each suite's options (``--suite-option``, its dataclass lists them in
``--help``), the backend's (``BackendOptions``: one flag per field), ``--limit`` as a cap.
``tunegate noise`` and ``tunegate analyze`` take the same flags (``add_suite_args``, ``add_backend_flags``).
"""

from __future__ import annotations

import argparse
from typing import Any

from tunegate.cli import add_output_options
from tunegate.core.errors import TunegateError
from tunegate.core.files import check_output_path
from tunegate.evals.backends import BACKENDS, DEFAULT_BACKEND, backend_flags


def add_backend_flags(p: argparse.ArgumentParser, *, default: str | None = DEFAULT_BACKEND) -> None:
    """``--backend`` and one flag per ``BackendOptions`` field (``--batch-size``, ``--base-url`` ...)."""
    group = p.add_argument_group("backend", "what runs the model (each option names the backends it applies to)")
    fallback = default or "the config's eval.backend, else hf"
    group.add_argument("--backend", default=default, metavar="|".join(BACKENDS.names()),
                       help=f"evaluation backend (default: {fallback})")
    for name, kwargs in backend_flags():
        group.add_argument(name, **kwargs)


def backend_args(args: argparse.Namespace) -> tuple[str | None, Any]:
    """``(--backend, BackendOptions of the backend flags given)``."""
    from tunegate.evals.backends import options_from

    return args.backend, options_from(vars(args))


def add_suite_args(p: argparse.ArgumentParser) -> None:
    """``--suites``, ``--limit``, ``--subset-seed``, ``--suite-option``, ``--lm-eval-include-path``: what to evaluate (``eval_spec_of`` reads
    them); the suites and their options, with defaults, are listed under the command's help."""
    from tunegate.evals.spec import LIMIT_HELP, LM_EVAL_INCLUDE_HELP
    from tunegate.evals.suites import describe_suites

    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.epilog = ("suites and their options (--suite-option SUITE.OPTION=VALUE; VALUE is JSON, else text; in a "
                "pipeline config: eval.suites.SUITE.OPTION):\n" + describe_suites())
    p.add_argument("--suites", default="identity,ifeval,math,knowledge",
                   help="comma-separated suite names: built-in, lm-eval:TASK (any lm-eval task or group), PATH.yaml "
                        "(a suite file)")
    p.add_argument("--limit", type=int, default=None, metavar="N", help=LIMIT_HELP)
    p.add_argument("--subset-seed", type=int, default=None, metavar="S",
                   help="seed of the --limit order for every suite that sets none (default 0)")
    p.add_argument("--suite-option", action="append", default=[], metavar="SUITE.OPTION=VALUE",
                   help="one option of one suite, e.g. identity.target='Deep Qwen' (listed below)")
    p.add_argument("--lm-eval-include-path", default=None, metavar="DIR", help=LM_EVAL_INCLUDE_HELP)


def add_cache_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--cache-dir", default=None, help="response cache (default: $TUNEGATE_CACHE or ~/.cache/tunegate)")
    p.add_argument("--no-cache", action="store_true", help="neither read nor write the response cache")


def eval_spec_of(args: argparse.Namespace) -> Any:
    """The EvalSpec that the flags of ``add_suite_args``, ``add_backend_flags`` and ``add_cache_args`` ask for."""
    from tunegate.evals.spec import eval_spec, suite_option_pairs

    suites = [s.strip() for s in args.suites.split(",") if s.strip()] if getattr(args, "suites", None) else []
    if hasattr(args, "suites") and not suites:
        raise TunegateError("--suites: give at least one suite name")
    backend, options = backend_args(args)
    return eval_spec(suites, suite_option_pairs(getattr(args, "suite_option", [])), limit=getattr(args, "limit", None),
                     subset_seed=getattr(args, "subset_seed", None), backend=backend or DEFAULT_BACKEND,
                     backend_options=options, cache_dir=getattr(args, "cache_dir", None),
                     use_cache=not getattr(args, "no_cache", False), where="--suite-option",
                     lm_eval_include_path=getattr(args, "lm_eval_include_path", None))


def register(sub: Any) -> None:
    p = sub.add_parser("eval", help="evaluate a model (hub id or local checkpoint) and write a RunRecord",
                       description="Evaluate a model on suites and write a RunRecord. Every suite's data is "
                                   "read and checked before the model loads.")
    p.add_argument("model", help="hub id (e.g. Qwen/Qwen2.5-0.5B-Instruct), local checkpoint dir, or 'organism'")
    p.add_argument("--out", required=True, help="RunRecord JSON to write")
    add_suite_args(p)
    add_backend_flags(p)
    add_cache_args(p)
    p.add_argument("--stage", default=None, help="stage name to store in the record")
    add_output_options(p)
    p.set_defaults(func=cmd_eval)


def cmd_eval(args: argparse.Namespace) -> int:
    from tunegate.evals.runner import evaluate

    check_output_path(args.out)  # before the model loads: an eval must not be lost at its end
    record = evaluate(args.model, eval_spec_of(args), out=args.out, stage=args.stage, progress=not args.quiet)
    for name, result in record.suites.items():
        metrics = ", ".join(f"{m}={v.value:.4f}" + (f"±{v.stderr:.4f}" if v.stderr is not None else "")
                            for m, v in result.metrics.items())
        print(f"{name} (v{result.version}, {len(result.items)} items, {result.seconds:.1f}s): {metrics}")
    print(f"record written to {args.out} (fingerprint {record.fingerprint})")
    return 0
