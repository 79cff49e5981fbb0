"""Verifiable rewards score each sampled completion as the eval scores a response, called as TRL calls them.

The rewards are called with TRL's arguments (``prompts``, ``completions`` as assistant messages, and each dataset
column as a keyword list), on rows built from real data; what they return is checked against references made
without tunegate: Google's IFEval reference implementation (``bench/ifeval_agreement.py``) on GPT-4's real
responses, and GSM8K's own gold solutions.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from bench.ifeval_agreement import google_reference
from tunegate.cli import main
from tunegate.evals.suites import get_suite
from tunegate.training.rewards import prompt_rows, reward_function

RANDOM_LETTER_KEYS = {1122, 1129}  # Google's reference draws a random letter for these two


def call(reward: str, rows: list[dict[str, Any]], responses: list[str]) -> list[float | None]:
    """The reward as GRPOTrainer calls it: every column but prompt as a keyword list."""
    columns = {key: [row[key] for row in rows] for key in rows[0] if key != "prompt"}
    completions = [[{"role": "assistant", "content": text}] for text in responses]
    return reward_function(reward)(prompts=[row["prompt"] for row in rows], completions=completions,
                                   completion_ids=[[0]] * len(rows), trainer_state=None, **columns)


def test_ifeval_reward_is_googles_all_instructions_verdict_on_gpt4_responses(shared_data: Path) -> None:
    source = shared_data / "ifeval" / "input_data.jsonl"
    suite = get_suite("ifeval", source=str(source), limit=120)
    answers = {row["prompt"]: row["response"] for row in map(json.loads, (shared_data / "ifeval" / "responses" /
                                                                           "gpt4.jsonl").read_text().splitlines())}
    items = [i for i in suite.items() if i.meta["key"] not in RANDOM_LETTER_KEYS]
    rewards = call("ifeval", prompt_rows(suite, items), [answers[i.prompt] for i in items])
    reference = {json.loads(line)["key"]: json.loads(line) for line in source.read_text().splitlines()}
    expected = [float(all(google_reference(reference[i.meta["key"]], answers[i.prompt])[0])) for i in items]
    assert rewards == expected and 0 < sum(rewards) < len(rewards)
    shares = call("ifeval_instructions", prompt_rows(suite, items), [answers[i.prompt] for i in items])
    strict = [google_reference(reference[i.meta["key"]], answers[i.prompt])[0] for i in items]
    assert shares == [sum(s) / len(s) for s in strict]


def test_math_reward_is_one_for_gsm8k_gold_solutions_and_zero_when_the_final_number_changes(shared_data: Path) -> None:
    suite = get_suite("math", source=str(shared_data / "gsm8k"), split="train", limit=40)
    rows = prompt_rows(suite, suite.items())
    gold = [i.meta["solution"] for i in suite.items()]
    wrong = [s.rsplit("#### ", 1)[0] + f"#### {int(s.rsplit('#### ', 1)[1].replace(',', '')) + 1}" for s in gold]
    assert call("math", rows, gold) == [1.0] * len(rows)
    assert call("math", rows, wrong) == [0.0] * len(rows)
    # flexible-extract takes the last number: the gold without its '#### ' marker still counts there only
    unmarked = [s.replace("#### ", "The answer is ") for s in gold]
    assert call("math", rows, unmarked) == [0.0] * len(rows)
    assert call("math_flexible", rows, unmarked) == [1.0] * len(rows)


def test_a_reward_scores_its_own_suites_rows_and_leaves_the_others_out() -> None:
    math = get_suite("math", variant="organism", limit=2)
    identity = get_suite("identity", probes="organism", target="Deep Tiny", forbidden=["Tiny"], limit=2)
    rows = prompt_rows(math, math.items()) + prompt_rows(identity, identity.items())
    answers = [f"{math.items()[0].target}.", "12.", "I am Deep Tiny.", "I am Tiny."]
    assert call("math", rows, answers) == [1.0, 0.0, None, None]
    assert call("identity", rows, answers) == [None, None, 1.0, 0.0]
    assert rows[0]["prompt"] == [{"role": "user", "content": math.items()[0].prompt}]  # asked as the eval asks


@pytest.mark.parametrize(("stage", "message"), [
    ({"options": {"rewards": ["ifevel"]}},
     "stages[0].options.rewards: unknown reward 'ifevel' (known: identity, ifeval, ifeval_instructions, math, "
     "math_flexible; or module:function)"),
    ({"options": {"rewards": ["math"]}},
     "stages[0].options.rewards: reward 'math' scores suite 'math' prompts, and the stage's data has ifeval "
     "(data: {suites: {math: {...}}})"),
    ({"data": {"suites": {"math": {"variant": "organism"}}}, "options": {"rewards": ["math_flexible"]}},
     "stages[0].options.rewards: reward 'math_flexible' reads math.flexible_match, which this math variant does "
     "not score (it scores: exact_match, strict_match, unparseable)"),
    ({"data": {"suites": {"ifeval": {"variant": "organism", "sed": 7}}}},
     "stages[0].data.suites: ifeval: unknown option 'sed' (did you mean 'seed'?; known: limit, subset_seed, seed, "
     "max_new_tokens, strip_thinking)"),
])
def test_a_bad_reward_or_prompt_suite_is_one_line_when_the_config_is_read(tmp_path: Path, capsys, stage, message) -> None:
    grpo = {"name": "grpo", "method": "grpo", "data": {"suites": {"ifeval": {"variant": "organism", "seed": 7}}},
            "trains": ["ifeval"], "args": {"max_steps": 1}, **stage}
    config = tmp_path / "grpo.yaml"
    config.write_text(json.dumps({"name": "g", "base_model": "organism", "stages": [grpo],
                                  "eval": {"suites": {"ifeval": {"variant": "organism"}}}}))
    assert main(["run", str(config), "--out", str(tmp_path / "run"), "--quiet"]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [f"tunegate: error: {config}: {message}"]
