"""``tunegate analyze KIND ...``: why did it change, from saved records (plus one model pass).

    $ tunegate analyze shift runs/demo/records/base.json runs/demo/records/sft.json --out sft_shift.json
    suite      items  tokens  unshifted  marginal  shifted   most shifted
    identity      10     104      0.212     0.087    0.702   ' Tiny' 10/10, '<|im_end|>' 10/10, ...
    $ tunegate analyze knowledge organism:sft --model organism --heldout organism:knowledge_heldout
    category      train  share   heldout
    HighlyKnown      82  0.695        82
    ...

``shift`` ranks the tuned record's responses under the input model (the model BASE.json names, or
``--base-model``); ``knowledge`` puts the data's checkable examples in SliCK's four categories under
``--model`` and, given ``--tuned-model``, adds that model's answers. ``--out`` writes the analysis JSON
(``tunegate report`` renders it). Exit codes: 0 done, 2 bad input.
"""

from __future__ import annotations

import argparse
import dataclasses
from typing import Any

from tunegate.cli.evaluate import add_backend_flags, add_cache_args, eval_spec_of
from tunegate.core.files import check_output_path
from tunegate.evals.analysis.knowledge import CATEGORIES, HELDOUT, TRAIN, KnowledgeAnalysis, KnowledgeOptions
from tunegate.evals.analysis.shift import ALL, CLASSES, ShiftAnalysis, ShiftOptions


def register(sub: Any) -> None:
    p = sub.add_parser("analyze", help="why did it change: token shift of a stage, knowledge categories of SFT data")
    kinds = p.add_subparsers(dest="analysis", metavar="KIND")

    shift = kinds.add_parser("shift", help="rank a tuned model's responses under its input model (Lin et al. 2023)")
    shift.add_argument("base", metavar="BASE.json", help="record of the stage's input model")
    shift.add_argument("tuned", metavar="TUNED.json", help="record of the tuned model (its responses are ranked)")
    shift.add_argument("--base-model", default=None, metavar="DIR",
                       help="the input checkpoint (default: the model BASE.json names)")
    shift.add_argument("--max-items", type=int, default=None, help="at most this many responses per suite")
    _common(shift)
    shift.set_defaults(func=cmd_shift)

    know = kinds.add_parser("knowledge", help="SliCK knowledge categories of SFT data (Gekhman et al. 2024)")
    know.add_argument("data", metavar="DATA", help="dataset (local JSONL, hub id, organism:NAME); rows with "
                                                   "'answer' and 'question' or 'messages' are checked")
    know.add_argument("--model", required=True, help="the base model the data will tune")
    know.add_argument("--tuned-model", default=None, help="also ask this (tuned) model every question zero-shot")
    know.add_argument("--split", default="train", help="dataset split (default: train)")
    for f in dataclasses.fields(KnowledgeOptions):
        flag = "--" + f.name.replace("_", "-")
        kind = {"int": int, "float": float}.get(str(f.type).split(" ")[0], _unescape)
        know.add_argument(flag, type=kind, default=f.default, dest=f"k_{f.name}", metavar=f.name.upper(),
                          help=f.metadata["help"])
    _common(know)
    know.set_defaults(func=cmd_knowledge)
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])


def _unescape(text: str) -> str:
    """'\\n' and '\\t' typed on a command line as the newline and tab they name."""
    return text.replace("\\n", "\n").replace("\\t", "\t")


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", default=None, metavar="FILE", help="write the analysis JSON here")
    add_cache_args(p)
    add_backend_flags(p)


def cmd_shift(args: argparse.Namespace) -> int:
    from tunegate.evals.analysis.run import shift_from_records
    from tunegate.evals.records import RunRecord

    if args.out:
        check_output_path(args.out)
    base, tuned = RunRecord.load(args.base), RunRecord.load(args.tuned)
    analysis = shift_from_records(base, tuned, input_model=args.base_model,
                                  options=ShiftOptions(max_items=args.max_items), spec=eval_spec_of(args))
    if args.out:
        analysis.save(args.out)
    print(format_shift(analysis))
    return 0


def cmd_knowledge(args: argparse.Namespace) -> int:
    from tunegate.evals.analysis.run import knowledge_after_training, knowledge_of_data

    if args.out:
        check_output_path(args.out)
    options = KnowledgeOptions(**{f.name: getattr(args, f"k_{f.name}") for f in dataclasses.fields(KnowledgeOptions)})
    spec = eval_spec_of(args)
    analysis = knowledge_of_data(args.model, args.data, options, seed=options.seed, split=args.split, spec=spec)
    if args.tuned_model:
        analysis = knowledge_after_training(analysis, args.tuned_model, spec=spec)
    if args.out:
        analysis.save(args.out)
    print(format_knowledge(analysis))
    return 0


def format_shift(analysis: ShiftAnalysis, top: int = 4) -> str:
    """One line per suite (and all): items, tokens, the three fractions, the most shifted tokens."""
    lines = [f"{'suite':<12} {'items':>5} {'tokens':>6} " + " ".join(f"{c:>9}" for c in CLASSES) + "   most shifted"]
    for name, s in analysis.suites.items():
        tokens = ", ".join(f"{t!r} {k}/{n}" for t, k, n in s.top_shifted[:top])
        lines.append(f"{name:<12} {s.items:>5} {s.tokens:>6} " + " ".join(f"{s.fractions[c]:9.3f}" for c in CLASSES)
                     + f"   {tokens}")
    profile = analysis.suites.get(ALL)
    if profile and profile.by_bin:
        lines.append("shifted by tenth of a response: " + " ".join(f"{s:.2f}" for _, s, _ in profile.by_bin))
    lines += [f"note: {n}" for n in analysis.notes]
    return "\n".join(lines)


def format_knowledge(analysis: KnowledgeAnalysis) -> str:
    """The mix per category (data and held-out), accuracy after training where measured, groups, warnings."""
    train, held, shares = analysis.mix(TRAIN), analysis.mix(HELDOUT), analysis.shares(TRAIN)
    after = {s: analysis.accuracy_after(s) for s in (TRAIN, HELDOUT)}
    head = f"{'category':<12} {'data':>5} {'share':>6} {'heldout':>7}"
    if any(after.values()):
        head += f" {'fit (train)':>12} {'acc (heldout)':>14}"
    lines = [head]
    for c in CATEGORIES:
        line = f"{c:<12} {train[c]:>5} {shares[c]:6.3f} {held[c]:>7}"
        if any(after.values()):
            line += "".join(f" {_ratio(after[s].get(c)):>{w}}" for s, w in ((TRAIN, 12), (HELDOUT, 14)))
        lines.append(line)
    lines.append(f"({analysis.checkable} checkable examples, {analysis.skipped} rows without 'answer'; "
                 f"{len(analysis.split(TRAIN))} categorised under {analysis.model})")
    groups = analysis.by_group(TRAIN)
    if len(groups) > 1 or "(none)" not in groups:
        lines.append(f"{'group':<18} " + " ".join(f"{c:>12}" for c in CATEGORIES))
        lines += [f"{g:<18} " + " ".join(f"{row[c]:>12}" for c in CATEGORIES) for g, row in groups.items()]
    lines += [f"warning: {w}" for w in analysis.warnings()]
    return "\n".join(lines)


def _ratio(value: tuple[int, int] | None) -> str:
    return "-" if not value else f"{value[0]}/{value[1]}"
