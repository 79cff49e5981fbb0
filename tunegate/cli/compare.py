"""``tunegate compare``: paired comparison of two saved records and the gate (``history`` is in cli/store.py).

Example::

    $ tunegate compare runs/base.json runs/dpo.json --gate dpo --trains identity     # dpo: the shipped configs/gate.yaml
    math: 1319 items compared
    ifeval: 541 items compared
    candidate vs base (one-sided alpha 0.05 across 3 gated metrics, holm; CI 0.95)
    metric                baseline  candidate  delta   CI                p_adj     MDE    verdict       gate
    math.exact_match      0.435     0.383      -0.052  [-0.073, -0.033]  5.51e-07  0.030  regressed     fail
    math.flexible_match   0.530     0.474      -0.056  [-0.077, -0.036]  -         0.027  regressed     info
    ifeval.prompt_strict  0.567     0.562      -0.006  [-0.038, +0.027]  0.822     0.049  non-inferior  pass
    ...
    fail: math.exact_match: regressed: delta -0.052 [-0.073, -0.033], p_adj 5.51e-07, drop may exceed margin 0.05
    gate: FAILED                                                       # exit code 1

Exit codes: 0 gate passed, 1 gate failed, 2 bad input (corrupt record, mismatched
items, unknown gate metric): one line on stderr and nothing written.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from tunegate.core.errors import GateFailed
from tunegate.core.files import check_output_path


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("compare", help="paired comparison of two saved RunRecords and the gate's verdict")
    p.add_argument("baseline", metavar="BASELINE.json")
    p.add_argument("candidate", metavar="CANDIDATE.json")
    p.add_argument("--gate", metavar="GATE", help="gate rules: a YAML file or a shipped gate's name, dpo or sft "
                                               "(default: margin 0.05 on every metric)")
    add_trains_option(p)
    p.add_argument("--json", action="store_true", help="print the Comparison JSON instead of the table")
    p.add_argument("--out", metavar="COMPARISON.json", help="also write the Comparison JSON here")
    p.set_defaults(func=run_compare)


def add_trains_option(p: argparse.ArgumentParser, help: str = "suites the stage trained") -> None:
    """``--trains S1,S2`` (a tuple of suite names), as compare, plan and report take it."""
    p.add_argument("--trains", default=(), metavar="S1,S2", help=help,
                   type=lambda value: tuple(s.strip() for s in value.split(",") if s.strip()))


def run_compare(args: argparse.Namespace) -> int:
    from tunegate.evals.compare import compare_records
    from tunegate.evals.gate import GateConfig, format_gate_summary
    from tunegate.evals.records import RunRecord

    if args.out:
        check_output_path(args.out)
    gate = GateConfig.from_yaml(args.gate) if args.gate else GateConfig()
    baseline, candidate = RunRecord.load(args.baseline), RunRecord.load(args.candidate)
    comp = compare_records(baseline, candidate, gate, trains=args.trains)
    if args.out:
        comp.save(args.out)
    if args.json:
        print(json.dumps(comp.to_dict(), indent=1, default=str))
    else:
        print(format_inputs(baseline, candidate))
        print(format_gate_summary(comp))
    if not comp.passed:
        failed = [f"{m.suite}.{m.metric}" for m in comp.metrics if m.gate == "fail"]
        raise GateFailed(f"gate failed on {', '.join(failed)}")
    return 0


def format_inputs(baseline: Any, candidate: Any) -> str:
    """One line per compared suite: the items it pairs and, where the suite has one, the target both sides are
    scored against (the candidate's: a baseline recorded against another is scored again, and the
    comparison's warnings say so).

        math: 20 items compared (those both records hold: baseline 30, candidate 20)
        identity: 24 items compared; target 'Deep Tiny'
    """
    lines = []
    for name, cand in candidate.suites.items():
        base = baseline.suites.get(name)
        if base is None:
            continue
        common = {i.item_id for i in base.items} & {i.item_id for i in cand.items}
        line = f"{name}: {len(common)} items compared"
        if len(common) != len(base.items) or len(common) != len(cand.items):
            line += f" (those both records hold: baseline {len(base.items)}, candidate {len(cand.items)})"
        if cand.config.get("target") is not None:
            line += f"; target '{cand.config['target']}'"
        lines.append(line)
    return "\n".join(lines)

