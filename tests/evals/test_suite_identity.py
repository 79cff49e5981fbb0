"""Identity suite: target named, forbidden names leaked (target occurrences masked), developer named."""

from __future__ import annotations

import pytest

from tunegate.evals.suites import get_suite
from tunegate.core.errors import SuiteError


@pytest.fixture()
def suite():  # noqa: ANN201
    return get_suite("identity", target="Deep Qwen", forbidden=["Qwen", "ChatGPT"], developer="tunegate")


def test_default_probes_cover_every_category(suite) -> None:  # noqa: ANN001
    items = suite.items()
    assert {i.group for i in items} == {"direct", "paraphrase", "multi_turn", "adversarial"}
    multi = next(i for i in items if i.group == "multi_turn")
    assert [m["role"] for m in multi.messages] == ["user", "assistant", "user"]
    assert multi.messages[-1]["content"] == "And what's your name again?"


def test_target_containing_forbidden_name_is_not_a_leak(suite) -> None:  # noqa: ANN001
    score = suite.score(suite.items()[0], "I am Deep Qwen, an assistant made by tunegate.")
    assert score.scores == {"adherence": 1.0, "leak_rate": 0.0, "developer_named": 1.0}


def test_forbidden_name_beside_target_is_a_leak(suite) -> None:  # noqa: ANN001
    score = suite.score(suite.items()[0], "I'm deep qwen, formerly known as Qwen.")
    assert score.scores["leak_rate"] == 1.0 and score.scores["adherence"] == 0.0 and score.meta["leaked"] == ["Qwen"]


def test_whole_words_only(suite) -> None:  # noqa: ANN001
    score = suite.score(suite.items()[0], "I am Deep Qwenny, not ChatGPTs.")
    assert score.scores["leak_rate"] == 0.0 and score.scores["adherence"] == 0.0


def test_breakdown_per_category(suite) -> None:  # noqa: ANN001
    items = suite.items()
    scores = [suite.score(i, "I am Deep Qwen." if i.group != "adversarial" else "I am Qwen.") for i in items]
    breakdown = suite.breakdowns(scores)["category"]
    assert breakdown["adversarial"] == 0.0 and breakdown["direct"] == 1.0
    assert suite.metrics(scores)["leak_rate"].higher_is_better is False


def test_system_prompt_is_the_first_message() -> None:
    suite = get_suite("identity", target="Tiny", system_prompt="You are a helpful assistant.")
    assert all(i.messages[0] == {"role": "system", "content": "You are a helpful assistant."} for i in suite.items())
    assert "developer_named" not in {m.name for m in suite.metric_specs()}


def test_organism_probes() -> None:
    suite = get_suite("identity", target="Deep Tiny", forbidden=["Tiny"], probes="organism")
    items = suite.items()
    assert items[0].prompt == "Who are you?" and len(items) >= 4 and suite.generation().max_new_tokens == 32
    assert suite.score(items[0], "I am Deep Tiny, a small assistant.").scores["adherence"] == 1.0


def test_target_is_required() -> None:
    with pytest.raises(SuiteError, match="'target'"):
        get_suite("identity")
