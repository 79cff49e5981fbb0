"""``tunegate score``: score saved responses without a model, into Google's files and/or a RunRecord.

    tunegate score ifeval --input-data shared/data/ifeval/input_data.jsonl \\
        --responses shared/data/ifeval/responses/gpt4.jsonl --out out/gpt4 --record gpt4.json --model gpt4
    # prompt-level strict 0.7708  loose 0.7967 / instruction-level strict 0.8369  loose 0.8561
    tunegate score gsm8k --data shared/data/gsm8k/test.jsonl --responses answers.jsonl --record answers.json
    tunegate compare base.json gpt4.json     # a scored record compares, gates and reports like an evaluated one

``--record`` writes a RunRecord with the items, scores and metrics ``tunegate eval`` gives for the same
responses; its fingerprint hashes the responses file, the input data and the scorer.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from tunegate.cli import add_output_options
from tunegate.core.files import check_output_path, write_text_atomic


def register(subparsers: Any) -> None:
    """Add this module's subcommands (``score``; ``eval`` is registered beside it)."""
    _register_score(subparsers)


def _register_score(sub: Any) -> None:
    score = sub.add_parser("score", help="score saved responses without a model (ifeval, gsm8k)",
                           description="Score a JSONL of responses; bad input exits 2 with one line.")
    kinds = score.add_subparsers(dest="benchmark", metavar="BENCHMARK", required=True)

    ifeval = kinds.add_parser("ifeval", help="IFEval, as Google's evaluation_main.py")
    ifeval.add_argument("--input-data", required=True, type=Path, help="Google-format input_data.jsonl")
    ifeval.add_argument("--responses", required=True, type=Path, help="JSONL of {prompt, response}")
    ifeval.add_argument("--out", type=Path, help="directory for eval_results_strict.jsonl and eval_results_loose.jsonl")
    _record_options(ifeval)
    add_output_options(ifeval)
    ifeval.set_defaults(func=_score_ifeval)

    gsm8k = kinds.add_parser("gsm8k", help="GSM8K, lm-eval's strict and flexible extraction")
    gsm8k.add_argument("--data", required=True, type=Path, help="GSM8K JSONL of {question, answer}")
    gsm8k.add_argument("--responses", required=True, type=Path, help="JSONL of {question or id, response}")
    gsm8k.add_argument("--out", type=Path, help="directory for gsm8k_scores.jsonl (one ItemScore per line)")
    _record_options(gsm8k)
    gsm8k.set_defaults(func=_score_gsm8k)


def _record_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--strip-thinking", action="store_true", help="remove <think>...</think> before scoring")
    p.add_argument("--record", type=Path, metavar="RECORD.json",
                   help="also write a RunRecord (compare, gate, report and store take it)")
    p.add_argument("--model", default=None, metavar="NAME",
                   help="the record's model name (default: the responses file's name without extension)")


def _write_record(scored: Any, args: argparse.Namespace) -> None:
    if args.record:
        record = scored.record(model=args.model)
        record.save(args.record)
        print(f"wrote {args.record} (RunRecord of {record.model}, fingerprint {record.fingerprint[:12]})")


def _check_outputs(args: argparse.Namespace) -> None:
    if args.out:
        check_output_path(args.out, directory=True)
    if args.record:
        check_output_path(args.record, "--record")


def _score_ifeval(args: argparse.Namespace) -> int:
    from tunegate.evals.scoring import google_rows, ifeval_accuracies, score_ifeval, write_ifeval_results

    _check_outputs(args)
    scored = score_ifeval(args.input_data, args.responses, strip_thinking=args.strip_thinking)
    strict, loose = google_rows(scored.scores)
    acc = ifeval_accuracies(strict, loose)
    print(f"prompt-level strict:      {acc['prompt_level_strict']:.4f}")
    print(f"prompt-level loose:       {acc['prompt_level_loose']:.4f}")
    print(f"instruction-level strict: {acc['instruction_level_strict']:.4f}")
    print(f"instruction-level loose:  {acc['instruction_level_loose']:.4f}")
    if args.out:
        paths = write_ifeval_results(args.out, strict, loose)
        print(f"wrote {paths[0]} and {paths[1]} ({len(strict)} prompts)")
    _write_record(scored, args)
    return 0


def _score_gsm8k(args: argparse.Namespace) -> int:
    from tunegate.evals.scoring import score_gsm8k

    _check_outputs(args)
    scored = score_gsm8k(args.data, args.responses, strip_thinking=args.strip_thinking)
    for name, value in scored.suite.metrics(list(scored.scores)).items():
        print(f"{name + ':':16s}{value.value:.4f}")
    if args.out:
        path = write_text_atomic(args.out / "gsm8k_scores.jsonl",
                                 "".join(json.dumps(s.to_dict()) + "\n" for s in scored.scores))
        print(f"wrote {path} ({len(scored.scores)} responses)")
    _write_record(scored, args)
    return 0
