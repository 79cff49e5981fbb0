"""Knowledge suite: MMLU prompts as lm-eval's mmlu task, argmax of log-likelihoods, organism capitals."""

from __future__ import annotations

from pathlib import Path

import pytest

from tunegate.evals.suites import get_suite
from tunegate.evals.suites.knowledge import extract_letter


@pytest.fixture(scope="module")
def mmlu(shared_data: Path):  # noqa: ANN201
    return get_suite("knowledge", source=str(shared_data / "mmlu"), fewshot=0)


def test_mmlu_items_load_with_subjects(mmlu) -> None:  # noqa: ANN001
    items = mmlu.items()
    assert len(items) == 14042 and len({i.group for i in items}) == 57
    assert items[0].prompt == (
        "The following are multiple choice questions (with answers) about abstract algebra.\n\n"
        "Find the degree for the given field extension Q(sqrt(2), sqrt(3), sqrt(18)) over Q.\n"
        "A. 0\nB. 4\nC. 2\nD. 6\nAnswer:")
    assert items[0].choices == (" A", " B", " C", " D") and items[0].target == "B"
    assert mmlu.choice_context(items[0]) == items[0].prompt and mmlu.kind == "loglikelihood"


def test_five_shot_uses_first_five_dev_questions(shared_data: Path) -> None:
    suite = get_suite("knowledge", source=str(shared_data / "mmlu"), fewshot=5)
    prompt = suite.items()[0].prompt
    assert prompt.count("\nAnswer:") == 6 and "Find all c in Z_3" in prompt.split("\n\n")[1]
    assert prompt.split("\n\n")[1].endswith("Answer: B")


def test_score_choices_takes_raw_argmax(mmlu) -> None:  # noqa: ANN001
    item = mmlu.items()[0]
    right = mmlu.score_choices(item, [-9.0, -1.5, -2.0, -3.0])
    wrong = mmlu.score_choices(item, [-1.0, -1.5, -2.0, -3.0])
    assert (right.answer, right.scores, right.group) == ("B", {"accuracy": 1.0}, "abstract_algebra")
    assert wrong.scores["accuracy"] == 0.0 and wrong.meta["logprobs"] == [-1.0, -1.5, -2.0, -3.0]


def test_subject_breakdown_and_group_clustering(mmlu) -> None:  # noqa: ANN001
    items = [i for i in mmlu.items() if i.group in ("anatomy", "virology")]
    scores = [mmlu.score_choices(i, [0.0 if c.strip() == i.target else -1.0 for c in i.choices]) for i in items]
    assert mmlu.breakdowns(scores) == {"subject": {"anatomy": 1.0, "virology": 1.0}}
    assert mmlu.metrics(scores)["accuracy"].cluster == "group"


def test_chat_mode_renders_messages_and_bare_letters(shared_data: Path) -> None:
    suite = get_suite("knowledge", source=str(shared_data / "mmlu" / "test.jsonl"), chat=True, limit=2)
    item = suite.items()[0]
    assert suite.choice_context(item) is None and item.choices == ("A", "B", "C", "D")
    assert item.messages == ({"role": "user", "content": item.prompt},)


@pytest.mark.parametrize("text,letter", [("Answer: B", "B"), ("The answer is (C).", "C"), ("D. 6", "D"),
                                         ("**A**", "A"), ("I am not sure.", None)])
def test_generative_letter_extraction(text: str, letter: str | None) -> None:
    assert extract_letter(text) == letter


def test_generative_variant_scores_the_letter(shared_data: Path) -> None:
    suite = get_suite("knowledge", variant="generative", source=str(shared_data / "mmlu" / "test.jsonl"), limit=3)
    item = suite.items()[0]
    assert suite.kind == "generate" and suite.score(item, f"The answer is {item.target}.").scores["accuracy"] == 1.0


def test_organism_reports_trained_and_heldout_accuracy() -> None:
    suite = get_suite("knowledge", variant="organism")
    items = suite.items()
    assert {i.group for i in items} == {"trained", "heldout"} and items[0].choices[0].startswith(" ")
    scores = [suite.score_choices(i, [0.0 if c.strip() == i.target else -1.0 for c in i.choices])
              for i in items if i.group == "trained"]
    scores += [suite.score_choices(i, [-1.0] * 3 + [0.0]) for i in items if i.group == "heldout"]
    metrics = suite.metrics(scores)
    assert metrics["accuracy_trained"].value == 1.0 and metrics["accuracy_trained"].n == len(items) // 2
    assert metrics["accuracy_heldout"].value < 0.5 and metrics["accuracy"].n == len(items)
