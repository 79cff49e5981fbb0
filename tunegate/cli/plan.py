"""``tunegate plan --gate G.yaml --baseline R.json [--candidate C.json] [--mde X]``: the eval budget.

Per gated metric: the items that catch a drop of its margin (or ``--mde``) with the gate's power at
the gate's family-corrected one-sided alpha, from the baseline's accuracy (and, with a candidate, the
observed discordance), and the eval time those items cost on the hardware that wrote the record::

    $ tunegate plan --gate configs/gate.yaml --baseline runs/demo/records/sft.json
    items to catch each drop with power 0.8 at one-sided alpha 0.05 across 3 gated metrics (same test as the gate)
    metric                effect  accuracy  discordance      alpha    n now  n needed  eval s
    ifeval.prompt_strict  0.05    0.430     0.490 (assumed)  0.01667  100    1730      14.6
    math.exact_match      0.05    0.020     0.039 (assumed)  0.01667  100    177       0.2
    knowledge.accuracy    0.05    0.557     0.493 (assumed)  0.01667  140    1741      1.5
    eval time per model at those n (from the record's suite timing): ifeval 14.6s, math 0.2s, knowledge 1.5s; ...
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from tunegate.core.files import check_output_path


def register(sub: Any) -> None:
    p = sub.add_parser("plan", help="items each gated metric needs at the gate's alpha and power, and their eval time")
    p.add_argument("--gate", required=True, metavar="GATE",
                   help="gate rules (margins, confidence, family, power): a YAML file or a shipped gate's name, dpo or sft")
    p.add_argument("--baseline", required=True, metavar="RECORD.json", help="a RunRecord: accuracy and timing")
    p.add_argument("--candidate", metavar="RECORD.json", help="a candidate RunRecord: observed discordance")
    p.add_argument("--mde", type=float, default=None, metavar="X", help="plan for a drop of X on every gated metric")
    p.add_argument("--trains", default="", metavar="S1,S2", help="suites the stage trains")
    p.add_argument("--json", action="store_true", help="print the plan as JSON")
    p.add_argument("--out", metavar="PLAN.json", help="also write the plan JSON here")
    p.set_defaults(func=cmd_plan)


def cmd_plan(args: argparse.Namespace) -> int:
    from tunegate.evals.gate import GateConfig
    from tunegate.evals.plan import format_plan, plan
    from tunegate.evals.records import RunRecord

    if args.out:
        check_output_path(args.out)
    gate = GateConfig.from_yaml(args.gate)
    baseline = RunRecord.load(args.baseline)
    candidate = RunRecord.load(args.candidate) if args.candidate else None
    trains = tuple(s.strip() for s in args.trains.split(",") if s.strip())
    result = plan(baseline, gate, candidate, trains=trains, effect=args.mde)
    if args.out:
        result.save(args.out)
    print(json.dumps(result.to_dict(), indent=1) if args.json else format_plan(result))
    return 0
