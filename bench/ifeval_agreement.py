"""Per-prompt agreement of tunegate's IFEval scorer with the reference paths, on real responses.

Two references, both over lm-eval's copy of Google's instruction registry:
  google  - Google's evaluation_lib.py test_instruction_following_strict/loose, ported line for line
            (kwargs passed as given; global `random` left alone, as in the reference)
  lmeval  - lm-eval's own utils.process_results (the path `lm_eval --tasks ifeval` takes)

    python -m bench.ifeval_agreement [DATA_DIR]     # default ../shared/data/ifeval, its nltk_data found too

Keys 1122 and 1129 may differ: there the reference scores "#"/"!" against a random letter.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from bench._common import SHARED_DATA
from tunegate.evals.suites.ifeval import IFEvalSuite, instruction_registry


def google_reference(row: dict, response: str) -> tuple[list[bool], list[bool]]:
    """evaluation_lib.test_instruction_following_strict and _loose (google-research), verbatim logic."""
    registry = instruction_registry()

    def build(index: int, instruction_id: str):
        instruction = registry[instruction_id](instruction_id)
        instruction.build_description(**row["kwargs"][index])
        args = instruction.get_instruction_args()
        if args and "prompt" in args:
            instruction.build_description(prompt=row["prompt"])
        return instruction

    strict = []
    for index, instruction_id in enumerate(row["instruction_id_list"]):
        instruction = build(index, instruction_id)
        strict.append(bool(response.strip() and instruction.check_following(response)))
    r = response.split("\n")
    first, last, both = "\n".join(r[1:]).strip(), "\n".join(r[:-1]).strip(), "\n".join(r[1:-1]).strip()
    all_responses = [response, response.replace("*", ""), first, last, both,
                     first.replace("*", ""), last.replace("*", ""), both.replace("*", "")]
    loose = []
    for index, instruction_id in enumerate(row["instruction_id_list"]):
        instruction = build(index, instruction_id)
        loose.append(any(x.strip() and instruction.check_following(x) for x in all_responses))
    return strict, loose


def lmeval_reference(row: dict, response: str) -> tuple[list[bool], list[bool]]:
    from lm_eval.tasks.ifeval.utils import process_results

    out = process_results(row, [response])
    return list(out["inst_level_strict_acc"]), list(out["inst_level_loose_acc"])


def main(data_dir: str) -> int:
    data = Path(data_dir)
    suite = IFEvalSuite(source=str(data / "input_data.jsonl"))
    rows = suite.rows()
    items = suite.items()
    for path in sorted((data / "responses").glob("*.jsonl")):
        responses = {json.loads(line)["prompt"]: json.loads(line)["response"] for line in path.open()}
        t0 = time.perf_counter()
        ours = [suite.score(item, responses[item.prompt]) for item in items]
        seconds = time.perf_counter() - t0
        metrics = {k: round(v.value, 4) for k, v in suite.metrics(ours).items()}
        print(f"{path.name}: {metrics} ({seconds:.1f}s)")
        for name, ref in (("google", google_reference), ("lmeval", lmeval_reference)):
            agree, differ = 0, []
            for row, s in zip(rows, ours):
                strict, loose = ref(row, responses[row["prompt"]])
                if strict == s.meta["follow_strict"] and loose == s.meta["follow_loose"]:
                    agree += 1
                else:
                    differ.append(row["key"])
            print(f"  vs {name}: {agree}/{len(rows)} prompts agree (strict and loose, per instruction)"
                  + (f"; differ at keys {differ}" if differ else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else str(SHARED_DATA / "ifeval")))
