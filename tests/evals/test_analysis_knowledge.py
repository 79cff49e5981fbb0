"""The knowledge-category analysis (SliCK): the rule, answer matching, the rows it reads, and the organism's
constructed groups recovered through `tunegate analyze knowledge`."""

from __future__ import annotations

from pathlib import Path

import pytest

from tunegate.cli import main
from tunegate.evals.analysis import load_analysis
from tunegate.evals.analysis.knowledge import (
    HIGHLY,
    MAYBE,
    UNKNOWN,
    WEAKLY,
    Fact,
    FactResult,
    KnowledgeAnalysis,
    KnowledgeOptions,
    categorize,
    checkable_facts,
    fewshot_prompt,
    is_correct,
)
from tunegate.core.errors import TunegateError

#: The category each group of the organism's SFT facts is built to have (organism/corpus.py).
CONSTRUCTED = {"capitals": HIGHLY, "rivers-known": HIGHLY, "rivers-context": MAYBE, "rivers-noisy": WEAKLY,
               "rivers-unseen": UNKNOWN}


@pytest.mark.parametrize(("greedy", "sampled", "category"), [
    ([True, True, True], [], HIGHLY),
    ([True, False, True], [False], MAYBE),
    ([False, False, False], [False, True], WEAKLY),
    ([False, False, False], [False, False], UNKNOWN),
    ([False], [], UNKNOWN),
])
def test_categories_follow_slick(greedy: list[bool], sampled: list[bool], category: str) -> None:
    assert categorize(greedy, sampled) == category


def test_answers_match_on_the_first_line_after_squad_normalisation() -> None:
    assert is_correct(" The Paris.\nQ: What is", ["Paris"])
    assert is_correct("new  delhi", ["New Delhi"])
    assert not is_correct("Paris France", ["Paris"])
    assert not is_correct("", ["Paris"])


def test_fewshot_prompt_ends_with_the_open_question() -> None:
    shots = [Fact("What is the capital of Peru?", ("Lima",)), Fact("What is 2 + 3?", ("5",))]
    assert fewshot_prompt(shots, "What is the capital of Chad?", KnowledgeOptions()) == (
        "Q: What is the capital of Peru? A: Lima\nQ: What is 2 + 3? A: 5\nQ: What is the capital of Chad? A:")


def test_checkable_rows_come_from_questions_or_chats_and_others_are_counted() -> None:
    rows = [{"question": "What is the capital of Peru?", "answer": "Lima"},
            {"messages": [{"role": "user", "content": "Which river flows through Sulinia?"},
                          {"role": "assistant", "content": "Trimges."}], "answer": ["Trimges"], "group": "g"},
            {"messages": [{"role": "user", "content": "Who are you?"}, {"role": "assistant", "content": "Tiny."}]}]
    facts, skipped = checkable_facts(rows, "data.jsonl")
    assert facts == [Fact("What is the capital of Peru?", ("Lima",)),
                     Fact("Which river flows through Sulinia?", ("Trimges",), "g")]
    assert skipped == 1


def test_a_bad_answer_field_is_one_error_naming_the_row() -> None:
    with pytest.raises(TunegateError, match=r"data.jsonl row 1: field 'answer'"):
        checkable_facts([{"question": "q", "answer": "a"}, {"question": "q", "answer": 7}], "data.jsonl")


def test_bad_options_are_one_error() -> None:
    with pytest.raises(TunegateError, match="template"):
        KnowledgeOptions(template="{question}?")


def test_shares_weigh_a_stratified_subsample_by_group_size() -> None:
    def fact(group: str, category: str) -> FactResult:
        return FactResult("q", ("a",), group, "train", category, 0, 1, 0, 0)

    facts = (fact("big", HIGHLY), fact("big", HIGHLY), fact("small", UNKNOWN), fact("small", UNKNOWN))
    analysis = KnowledgeAnalysis("m", "f", "d", facts, options={"unknown_warning": 0.2},
                                 group_sizes={"train": {"big": 90, "small": 10}})
    assert analysis.mix() == {HIGHLY: 2, MAYBE: 0, WEAKLY: 0, UNKNOWN: 2}
    assert analysis.shares() == {HIGHLY: 0.9, MAYBE: 0.0, WEAKLY: 0.0, UNKNOWN: 0.1}
    assert not analysis.warnings()
    heavy = KnowledgeAnalysis("m", "f", "d", facts, options={"unknown_warning": 0.2},
                              group_sizes={"train": {"big": 50, "small": 50}})
    assert heavy.warnings() and heavy.warnings()[0].startswith(
        "50% of the checkable examples of d are Unknown to the input model m, more than the 20% this check allows")
    barely = KnowledgeAnalysis("m", "f", "d", facts, options={"unknown_warning": 0.2},
                               group_sizes={"train": {"big": 799, "small": 201}})
    assert barely.warnings()[0].startswith("20.1% of the checkable examples of d are Unknown to the input model m, "
                                           "more than the 20.0% this check allows")  # never "20% ... (above 20%)"


@pytest.mark.slow
def test_the_classifier_recovers_the_organisms_constructed_groups(tmp_path: Path, capsys) -> None:
    out = tmp_path / "knowledge.json"
    assert main(["analyze", "knowledge", "organism:sft", "--model", "organism", "--per-group", "12",
                 "--max-new-tokens", "8", "--out", str(out), "--cache-dir", str(tmp_path / "cache")]) == 0
    analysis = load_analysis(out)
    assert isinstance(analysis, KnowledgeAnalysis)
    groups = analysis.by_group()
    assert set(groups) == set(CONSTRUCTED)
    recovered = {g: groups[g][c] / sum(groups[g].values()) for g, c in CONSTRUCTED.items()}
    assert all(share >= 0.8 for share in recovered.values()), recovered
    assert "MaybeKnown" in capsys.readouterr().out


def test_answer_marker_takes_the_gold_answer_after_gsm8ks_marker() -> None:
    row = {"question": "Weng earns $12 an hour for babysitting. Yesterday, she just did 50 minutes of babysitting. "
                       "How much did she earn?",
           "answer": "Weng earns 12/60 = $<<12/60=0.2>>0.2 per minute.\nWorking 50 minutes, she earned 0.2 x 50 = "
                     "$<<0.2*50=10>>10.\n#### 10"}  # GSM8K train, row 1
    (fact,), _ = checkable_facts([row], "gsm8k", answer_marker="#### ")
    assert fact.answers == ("10",)
    (whole,), _ = checkable_facts([row], "gsm8k")  # without the marker the worked solution is the answer
    assert whole.answers == (row["answer"],)
