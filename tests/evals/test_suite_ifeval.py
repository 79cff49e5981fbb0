"""IFEval suite: real prompts and responses, verdicts as Google's reference evaluation_lib.py."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from bench.ifeval_agreement import google_reference
from tunegate.evals.suites import get_suite
from tunegate.core.errors import SuiteError
from tunegate.evals.suites.ifeval import IFEvalSuite, instruction_registry

RANDOM_LETTER_KEYS = {1122, 1129}  # the reference draws a random letter for "#" and "!"


@pytest.fixture(scope="module")
def suite(shared_data: Path) -> IFEvalSuite:
    return IFEvalSuite(source=str(shared_data / "ifeval" / "input_data.jsonl"))


def responses(folder: Path, model: str) -> dict[str, str]:
    lines = (folder / f"{model}.jsonl").read_text(encoding="utf-8").splitlines()
    return {row["prompt"]: row["response"] for row in map(json.loads, lines)}


def test_items_load_all_541_prompts(suite: IFEvalSuite) -> None:
    items = suite.items()
    assert len(items) == 541 and sum(len(i.meta["instruction_id_list"]) for i in items) == 834
    assert items[0].id == "ifeval-1000" and items[0].messages[0]["content"] == items[0].prompt


def test_verdicts_agree_with_google_reference_on_all_prompts(suite: IFEvalSuite, ifeval_responses: Path) -> None:
    answers = responses(ifeval_responses, "gpt4")
    errors = []
    for row, item in zip(suite.rows(), suite.items()):
        ours = suite.score(item, answers[item.prompt])
        if row["key"] in RANDOM_LETTER_KEYS:
            continue
        strict, loose = google_reference(row, answers[item.prompt])
        if (strict, loose) != (ours.meta["follow_strict"], ours.meta["follow_loose"]):
            errors.append(f"key {row['key']}: reference {strict}/{loose}, ours {ours.meta}")
    assert not errors


def test_scoring_twice_gives_identical_verdicts(suite: IFEvalSuite, ifeval_responses: Path) -> None:
    answers = responses(ifeval_responses, "qwen2.5-1.5b-instruct-gptq-int4")
    items = [i for i in suite.items() if i.meta["key"] in RANDOM_LETTER_KEYS
             or "language:response_language" in i.meta["instruction_id_list"]]
    first = [suite.score(i, answers[i.prompt]).scores for i in items]
    assert [suite.score(i, answers[i.prompt]).scores for i in items] == first


def test_strict_never_beats_loose_and_metrics_are_ordered(suite: IFEvalSuite, ifeval_responses: Path) -> None:
    answers = responses(ifeval_responses, "llama-3.1-8b-instruct-awq-int4")
    scores = [suite.score(i, answers[i.prompt]) for i in suite.items()[:150]]
    assert all(a <= b for s in scores for a, b in zip(s.scores["inst_strict"], s.scores["inst_loose"]))
    metrics = suite.metrics(scores)
    assert metrics["prompt_strict"].value <= metrics["prompt_loose"].value
    assert metrics["inst_strict"].cluster == "item" and metrics["inst_strict"].n > 150


def test_breakdown_by_instruction_id(suite: IFEvalSuite) -> None:
    item = next(i for i in suite.items() if i.meta["instruction_id_list"] == ["punctuation:no_comma"])
    scores = [suite.score(item, "No commas here at all."), suite.score(item, "One, two.")]
    assert suite.breakdowns(scores) == {"instruction_id": {"punctuation:no_comma": 0.5}}


def test_empty_response_fails_every_instruction(suite: IFEvalSuite) -> None:
    score = suite.score(suite.items()[0], "   \n")
    assert score.scores["prompt_loose"] == 0.0 and set(score.scores["inst_loose"]) == {0.0}


def test_strip_thinking_scores_only_the_answer(suite: IFEvalSuite, shared_data: Path) -> None:
    stripping = IFEvalSuite(source=str(shared_data / "ifeval" / "input_data.jsonl"), strip_thinking=True)
    item = next(i for i in suite.items() if i.meta["instruction_id_list"] == ["punctuation:no_comma"])
    response = "<think>Well, commas, commas.</think>No commas in this answer."
    assert suite.score(item, response).scores["prompt_strict"] == 0.0
    assert stripping.score(item, response).scores["prompt_strict"] == 1.0
    assert stripping.config()["strip_thinking"] is True


def test_unknown_instruction_id_names_the_key(tmp_path: Path) -> None:
    path = tmp_path / "input.jsonl"
    path.write_text(json.dumps({"key": 77, "prompt": "Hi", "instruction_id_list": ["made:up"], "kwargs": [{}]}))
    with pytest.raises(SuiteError, match="key 77: unknown IFEval instruction id 'made:up'"):
        IFEvalSuite(source=str(path)).items()


def test_hub_copy_with_null_kwargs_is_accepted(tmp_path: Path) -> None:
    row = {"key": 1, "prompt": "Say hi.", "instruction_id_list": ["length_constraints:number_words"],
           "kwargs": [{"num_words": 3, "relation": "less than", "keyword": None, "letter": None}]}
    (tmp_path / "train.jsonl").write_text(json.dumps(row) + "\n")
    suite = IFEvalSuite(source=str(tmp_path))
    assert suite.score(suite.items()[0], "Hi there").scores["prompt_strict"] == 1.0


def test_falsy_kwarg_is_refused_naming_key_and_field(tmp_path: Path) -> None:
    # lm-eval's checks drop falsy kwargs (and draw a random value); Google's keep them: refuse, don't diverge
    row = {"key": 5, "prompt": "Say hi.", "instruction_id_list": ["detectable_format:number_highlighted_sections"],
           "kwargs": [{"num_highlights": 0}]}
    (tmp_path / "train.jsonl").write_text(json.dumps(row) + "\n")
    with pytest.raises(SuiteError, match=r"key 5: kwargs\[0\]\.num_highlights is 0"):
        IFEvalSuite(source=str(tmp_path)).items()


def test_bundled_punkt_tab_is_found_without_nltk_data_and_searched_last(monkeypatch: pytest.MonkeyPatch,
                                                                         tmp_path: Path) -> None:
    import nltk

    from tunegate.evals.suites import ifeval

    monkeypatch.setattr(nltk.data, "path", [])  # no NLTK_DATA, no ~/nltk_data
    instruction_registry()
    assert Path(nltk.data.find("tokenizers/punkt_tab/english/").path).is_relative_to(ifeval.BUNDLED_NLTK_DATA)
    user = tmp_path / "nltk_data" / "tokenizers" / "punkt_tab" / "english"
    shutil.copytree(ifeval.BUNDLED_NLTK_DATA / "tokenizers" / "punkt_tab" / "english", user)
    monkeypatch.setattr(nltk.data, "path", [str(tmp_path / "nltk_data")])  # a user's NLTK_DATA
    instruction_registry()
    assert Path(nltk.data.find("tokenizers/punkt_tab/english/").path).is_relative_to(tmp_path)


def test_missing_punkt_is_one_clear_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import nltk

    from tunegate.evals.suites import ifeval

    monkeypatch.setattr(nltk.data, "path", [])
    monkeypatch.setattr(ifeval, "BUNDLED_NLTK_DATA", tmp_path / "removed")
    with pytest.raises(SuiteError) as info:
        instruction_registry()
    assert str(info.value) == ifeval.PUNKT_HINT and "NLTK_DATA" in ifeval.PUNKT_HINT and "punkt_tab" in ifeval.PUNKT_HINT


def test_organism_variant_uses_format_eval_items() -> None:
    suite = get_suite("ifeval", variant="organism")
    items = suite.items()
    ids = {i.meta["instruction_id_list"][0] for i in items}
    assert len(items) == 100 and ids == {"change_case:english_lowercase", "change_case:english_capital",
                                         "startend:quotation", "startend:end_checker"}
    assert suite.generation().max_new_tokens == 48
    quoted = next(i for i in items if i.meta["instruction_id_list"] == ["startend:quotation"])
    assert suite.score(quoted, '"the capital of kenya is nairobi."').scores["prompt_strict"] == 1.0


def test_generation_defaults_to_lm_eval_budget(suite: IFEvalSuite) -> None:
    assert suite.generation().max_new_tokens == 1280 and suite.config()["variant"] == "default"
