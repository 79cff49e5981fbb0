"""``tunegate noise MODEL --suites ... [--limit N] --out RECORD.json``: the A/A noise floor of an eval set-up.

Evaluates one checkpoint at generation batch size N and 1 (and, on CUDA, in bfloat16 and float16), with
no response cache, and writes the reference pass as a RunRecord whose ``noise`` field holds, per metric
and setting, the items that flipped and the metric's change. Use that record as the baseline of
``tunegate compare``: the table shows the floor beside each CI, and a gate with ``noise_floor: true``
fails only drops beyond it::

    $ tunegate noise runs/demo/stages/sft/model --suites knowledge --suite-option knowledge.variant='"organism"' \
          --batch-size 64 --dtypes float32,bfloat16 --out sft.json
    runs/demo/stages/sft/model (b62f5d7cf8b5) on cpu: A/A noise over batch_size 64 -> 1, dtype float32 -> bfloat16
    metric                      setting                    flipped  share  delta    floor
    knowledge.accuracy          batch_size 64 -> 1         0/140    0.000  +0.0000  0.0071
    ...
    knowledge.accuracy          dtype float32 -> bfloat16  1/140    0.007  +0.0071  0.0071
"""

from __future__ import annotations

import argparse
from typing import Any

from tunegate.cli import add_output_options
from tunegate.cli.evaluate import add_backend_flags, add_suite_args, eval_spec_of
from tunegate.core.files import check_output_path


def register(sub: Any) -> None:
    p = sub.add_parser("noise", help="A/A noise floor: evaluate one checkpoint under settings that should not matter",
                       description="Evaluate one checkpoint at generation batch size N (--batch-size, default the "
                                   "backend's) and 1, and in each further dtype, with the same suites and backend "
                                   "options, without the response cache.")
    p.add_argument("model", help="hub id, local checkpoint dir, or 'organism'")
    p.add_argument("--out", required=True, help="RunRecord JSON to write (the reference pass, with its noise floor)")
    add_suite_args(p)
    add_backend_flags(p)
    p.add_argument("--dtypes", default=None, metavar="D1,D2",
                   help="dtypes to compare, the first is the reference (default: bfloat16,float16 on CUDA; float32 on CPU)")
    p.add_argument("--stage", default=None, help="stage name to store in the record")
    add_output_options(p)
    p.set_defaults(func=cmd_noise)


def cmd_noise(args: argparse.Namespace) -> int:
    import dataclasses

    from tunegate.evals.noise import format_noise, measure_noise

    check_output_path(args.out)
    dtypes = [d.strip() for d in args.dtypes.split(",") if d.strip()] if args.dtypes else None
    record = measure_noise(args.model, eval_spec_of(args), dtypes=dtypes, progress=not args.quiet)
    if args.stage:
        record = dataclasses.replace(record, stage=args.stage)
    record.save(args.out)
    assert record.noise is not None
    print(format_noise(record.noise))
    print(f"record with its noise floor written to {args.out}")
    return 0
