"""Math suite: GSM8K extraction as lm-eval's filters and exact_match; the organism's arithmetic."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from lm_eval.api.metrics import exact_match_hf_evaluate
from lm_eval.filters.extraction import RegexFilter

from tunegate.evals.suites import get_suite
from tunegate.evals.suites.math import flexible_answer, normalize, strict_answer

#: lm-eval's gsm8k task as published (lm_eval/tasks/gsm8k/gsm8k.yaml): filter regexes, exact_match's ignores
STRICT_PATTERN, FLEXIBLE_PATTERN = r"#### (\-?[0-9\.\,]+)", r"(-?[$0-9.,]{2,})|(-?[0-9]+)"
IGNORE_REGEXES = [",", r"\$", r"(?s).*#### ", r"\.$"]

SAMPLES = [
    "The answer is 42.", "#### 1,234", "She pays $5.50 and gets $2 back. #### $3.50", "-7 degrees, so #### -7",
    "No numbers here.", "", "1. First 2. Then 3.", "He has 3 apples.\n#### 3\n\nQuestion: next", "x = 0.5",
    "The total is $1,000,000.", "Answer: (18)", "#### 18.", "It costs 12 dollars; 12 + 6 = 18", "#### .5",
]


def gold_solutions(shared_data: Path, n: int) -> list[str]:
    lines = (shared_data / "gsm8k" / "train.jsonl").read_text().splitlines()[:n]
    return [json.loads(x)["answer"] for x in lines]


def test_extraction_matches_lm_eval_regex_filters(shared_data: Path) -> None:
    texts = SAMPLES + gold_solutions(shared_data, 300)
    strict = RegexFilter(regex_pattern=STRICT_PATTERN, group_select=0).apply([texts], [{}])[0]
    flexible = RegexFilter(regex_pattern=FLEXIBLE_PATTERN, group_select=-1).apply([texts], [{}])[0]
    assert [strict_answer(t) for t in texts] == strict
    assert [flexible_answer(t) for t in texts] == flexible


def test_normalisation_matches_lm_eval_exact_match(shared_data: Path) -> None:
    golds = gold_solutions(shared_data, 200)
    predictions = [flexible_answer(t) for t in SAMPLES + golds]
    references = (golds * 2)[: len(predictions)]
    for p, r in zip(predictions, references):
        expected = exact_match_hf_evaluate([p], [r], regexes_to_ignore=IGNORE_REGEXES, ignore_case=True)
        assert float(normalize(p) == normalize(r)) == expected["exact_match"], (p, r)


def test_gsm8k_items_load_with_gold_targets(shared_data: Path) -> None:
    items = get_suite("math", source=str(shared_data / "gsm8k" / "test.jsonl")).items()
    assert len(items) == 1319 and items[0].target == "18" and items[0].prompt.startswith("Question: Janet")
    assert items[0].prompt.endswith("\nAnswer:") and items[0].messages[0]["content"] == items[0].prompt


def test_gold_solutions_score_100_percent_strict(shared_data: Path) -> None:
    suite = get_suite("math", source=str(shared_data / "gsm8k" / "test.jsonl"))
    scores = [suite.score(item, item.meta["solution"]) for item in suite.items()]
    metrics = suite.metrics(scores)
    assert metrics["exact_match"].value == 1.0 and metrics["flexible_match"].value == 1.0
    assert metrics["unparseable"].value == 0.0 and metrics["unparseable"].higher_is_better is False


def test_fewshot_prompt_is_lm_eval_format_in_completion_mode(shared_data: Path) -> None:
    suite = get_suite("math", source=str(shared_data / "gsm8k"), fewshot=5, limit=3)
    prompt = suite.items()[0].prompt
    assert suite.chat is False and prompt.count("Question: ") == 6 and prompt.count("\n#### ") == 5
    assert "\n\nQuestion: " in prompt and set(suite.generation().stop) == {"Question:", "</s>", "<|im_end|>"}
    assert suite.items()[0].prompt == prompt  # the same shots every time


def test_fewshot_in_chat_sends_the_shots_as_earlier_turns(shared_data: Path) -> None:
    train = [json.loads(line) for line in (shared_data / "gsm8k" / "train.jsonl").read_text().splitlines()]
    item = get_suite("math", source=str(shared_data / "gsm8k"), fewshot=2, chat=True, limit=1).items()[0]
    assert [m["role"] for m in item.messages] == ["user", "assistant", "user", "assistant", "user"]
    shots = [(m["content"], a["content"]) for m, a in zip(item.messages[0:4:2], item.messages[1:4:2])]
    by_question = {f"Question: {r['question']}\nAnswer:": r["answer"] for r in train}
    assert all(by_question[q] == a for q, a in shots)
    assert item.messages[-1]["content"] == f"Question: {item.meta['question']}\nAnswer:"


def test_flexible_takes_last_number_strict_needs_hashes(shared_data: Path) -> None:
    suite = get_suite("math", source=str(shared_data / "gsm8k" / "test.jsonl"))
    item = suite.items()[0]
    assert suite.score(item, "9 eggs at $2 makes $18.").scores == \
        {"exact_match": 0.0, "flexible_match": 1.0, "unparseable": 0.0}
    assert suite.score(item, "I don't know").scores["unparseable"] == 1.0


def test_organism_arithmetic_items_and_scores() -> None:
    suite = get_suite("math", variant="organism")
    items = suite.items()
    assert len(items) == 100 and items[0].id == "arith-0000" and suite.generation().max_new_tokens == 24
    item = items[0]
    a, op, b = item.prompt.removeprefix("What is ").rstrip("?").split()
    right = suite.score(item, f"{item.target}.")
    loose = suite.score(item, f"{a} {op} {b} = {item.target}")
    wrong = suite.score(item, f"{int(item.target) + 1}.")
    assert right.scores == {"exact_match": 1.0, "strict_match": 1.0, "unparseable": 0.0}
    assert loose.scores["exact_match"] == 1.0 and loose.scores["strict_match"] == 0.0
    assert wrong.scores["exact_match"] == 0.0 and right.answer == item.target


def test_unknown_variant_is_a_suite_error() -> None:
    from tunegate.core.errors import SuiteError

    with pytest.raises(SuiteError, match="unknown variant 'matrix'"):
        get_suite("math", variant="matrix")
