"""``tunegate organism build --out DIR``: rebuild the embedded model organism deterministically."""

from __future__ import annotations

import argparse
from typing import Any

from tunegate.core.files import check_output_path


def register(sub: Any) -> None:
    org = sub.add_parser("organism", help="the embedded model organism")
    org_sub = org.add_subparsers(dest="organism_command", metavar="ACTION")
    build = org_sub.add_parser("build", help="rebuild the organism base checkpoint deterministically")
    build.add_argument("--out", required=True, help="output checkpoint directory")
    build.add_argument("--steps", type=int, default=None, help="pretraining steps (default: the recipe's)")
    build.add_argument("--seed", type=int, default=0)
    build.set_defaults(func=cmd_organism_build)
    org.set_defaults(func=lambda args: (org.print_help(), 2)[1])


def cmd_organism_build(args: argparse.Namespace) -> int:
    from tunegate.organism.recipe import build_organism

    kwargs = {"seed": args.seed} | ({"steps": args.steps} if args.steps else {})
    check_output_path(args.out, directory=True)
    path = build_organism(args.out, **kwargs)
    print(f"organism checkpoint written to {path}")
    return 0
