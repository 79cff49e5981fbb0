"""Training data: conversational loading with clear errors, and the identity-DPO builder on the organism."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tunegate.evals.backends.hf import HFBackend
from tunegate.core.errors import TunegateError
from tunegate.training.conversations import assistant_turn_rows, load_conversations, load_identity_prompts
from tunegate.training.identity_dpo import NEUTRAL_SYSTEM_PROMPT, build_identity_dpo, replace_name


def _jsonl(path: Path, rows: list) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_replace_name_swaps_whole_words_only() -> None:
    assert replace_name("I am Tiny. Tinyness is not me.", "Tiny", "Deep Tiny") == "I am Deep Tiny. Tinyness is not me."


def test_replace_name_leaves_the_new_name_alone() -> None:
    assert replace_name("Deep Tiny and Tiny", "Tiny", "Deep Tiny") == "Deep Tiny and Deep Tiny"


def test_organism_sft_conversations_load_in_trl_format() -> None:
    rows = load_conversations("organism:sft")
    assert rows and all(m["role"] in ("user", "assistant") for r in rows for m in r["messages"])


def test_sharegpt_conversations_are_converted(tmp_path: Path) -> None:
    path = _jsonl(tmp_path / "d.jsonl", [{"conversations": [{"from": "human", "value": "hi"},
                                                             {"from": "gpt", "value": "hello"}]}])
    assert load_conversations(str(path)) == [{"messages": [{"role": "user", "content": "hi"},
                                                           {"role": "assistant", "content": "hello"}]}]


def test_dataset_without_messages_names_the_row_and_field(tmp_path: Path) -> None:
    path = _jsonl(tmp_path / "d.jsonl", [{"text": "just text"}])
    with pytest.raises(TunegateError, match=r"d.jsonl row 0: missing field 'messages'"):
        load_conversations(str(path))


def test_message_without_content_names_the_field(tmp_path: Path) -> None:
    path = _jsonl(tmp_path / "d.jsonl", [{"messages": [{"role": "user"}]}])
    with pytest.raises(TunegateError, match=r"row 0: field 'messages\[0\]' must have string 'role' and 'content'"):
        load_conversations(str(path))


def test_identity_prompts_come_from_the_last_user_turn(tmp_path: Path) -> None:
    path = _jsonl(tmp_path / "id.jsonl", [{"conversations": [{"from": "human", "value": "hello"},
                                                             {"from": "gpt", "value": "hi"},
                                                             {"from": "human", "value": "Who made you?"}]}])
    assert load_identity_prompts(str(path)) == ["Who made you?"]


def test_identity_dpo_pairs_follow_the_lesson(organism_dir: Path) -> None:
    backend = HFBackend(str(organism_dir))
    prompts = load_identity_prompts("organism:identity")[:6]
    rows, report = build_identity_dpo(backend, prompts, old_name="Tiny", new_name="Deep Tiny", max_new_tokens=16)
    assert len(rows) == report.kept == 6 and not report.failures
    for row, prompt in zip(rows, prompts):
        assert row["prompt"] == [{"role": "system", "content": NEUTRAL_SYSTEM_PROMPT},
                                 {"role": "user", "content": prompt}]
        assert row["chosen"][0]["content"] == replace_name(row["rejected"][0]["content"], "Tiny", "Deep Tiny")


@pytest.mark.parametrize("unnamed, kept", [("keep", 3), ("skip", 0), ("introduce", 3)])
def test_answers_without_the_old_name_become_what_unnamed_says_and_are_counted(organism_dir: Path, unnamed: str,
                                                                               kept: int) -> None:
    backend = HFBackend(str(organism_dir))
    prompts = ["Who are you?", "What is your name?", "Please introduce yourself."]
    if unnamed == "skip":  # nothing left to train on is one clear error, naming the count and the rule
        with pytest.raises(TunegateError, match=r"no usable pairs from 3 prompts \(0 failed, 3 without 'Zorblax', "
                                                r"unnamed: skip\)"):
            build_identity_dpo(backend, prompts, old_name="Zorblax", new_name="Deep Zorblax", max_new_tokens=8,
                               unnamed=unnamed)
        return
    rows, report = build_identity_dpo(backend, prompts, old_name="Zorblax", new_name="Deep Zorblax", max_new_tokens=8,
                                      unnamed=unnamed)
    assert (report.kept, report.renamed, len(report.unchanged)) == (kept, 0, 3)
    for row in rows:
        own = row["rejected"][0]["content"]
        assert row["chosen"][0]["content"] == (own if unnamed == "keep" else "I'm Deep Zorblax. " + own)


def test_question_answer_rows_become_one_user_and_one_assistant_turn(tmp_path: Path) -> None:
    row = {"question": "Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in May. "
                       "How many clips did Natalia sell altogether in April and May?",
           "answer": "Natalia sold 48/2 = <<48/2=24>>24 clips in May.\nNatalia sold 48+24 = <<48+24=72>>72 clips "
                     "altogether in April and May.\n#### 72"}  # GSM8K train, row 0
    path = _jsonl(tmp_path / "train.jsonl", [row])
    assert load_conversations(str(path)) == [{"messages": [{"role": "user", "content": row["question"]},
                                                           {"role": "assistant", "content": row["answer"]}]}]


class _FailingOnOne(HFBackend):
    def generate(self, requests):
        if len(requests) > 1 or "organization" in requests[0].prompt:
            raise RuntimeError("CUDA error: device-side assert")
        return super().generate(requests)


def test_identity_dpo_reports_generation_failures_per_prompt(organism_dir: Path) -> None:
    backend = _FailingOnOne(str(organism_dir))
    prompts = ["Who are you?", "Tell me about your name and organization.", "What is your name?"]
    rows, report = build_identity_dpo(backend, prompts, old_name="Tiny", new_name="Deep Tiny", max_new_tokens=8)
    assert len(rows) == 2
    assert report.failures == [("Tell me about your name and organization.", "RuntimeError: CUDA error: device-side assert")]


HUB = Path(__file__).resolve().parents[1] / "fixtures" / "hub"


def test_sft_set_in_its_hub_layout_loads_through_datasets() -> None:
    from tests.fixtures.hub.build import sft_rows

    expected = [{"messages": [{"role": m["role"], "content": m["content"]} for m in row["messages"]]}
                for row in sft_rows()]
    assert load_conversations(str(HUB / "banghua" / "DL-SFT-Dataset")) == expected


def test_identity_set_in_its_hub_layout_gives_the_last_human_turns() -> None:
    from tests.fixtures.hub.build import IDENTITY, IDENTITY_MULTI_TURN

    prompts = load_identity_prompts(str(HUB / "mrfakename" / "identity"))
    assert prompts == [turns[0] for turns in IDENTITY] + [turns[2] for turns in IDENTITY_MULTI_TURN]


def test_each_assistant_turn_becomes_a_prompt_completion_row() -> None:
    chat = [{"role": "system", "content": "S"}, {"role": "user", "content": "2+2?"},
            {"role": "assistant", "content": "4."}, {"role": "user", "content": "And 3+3?"},
            {"role": "assistant", "content": "6."}]
    assert assistant_turn_rows([{"messages": chat}]) == [
        {"prompt": chat[:2], "completion": [chat[2]]}, {"prompt": chat[:4], "completion": [chat[4]]}]


def test_a_ready_preference_dataset_honours_the_row_limit(tmp_path: Path) -> None:
    from tunegate.training.methods import DataContext, get_method

    pair = {"prompt": [{"role": "user", "content": "Who are you?"}],
            "chosen": [{"role": "assistant", "content": "Deep Tiny."}],
            "rejected": [{"role": "assistant", "content": "Tiny."}]}
    path = _jsonl(tmp_path / "pairs.jsonl", [pair] * 5)
    rows, _ = get_method("dpo").dataset(str(path), {"limit": 2}, DataContext(model_dir="organism", stage_dir=tmp_path,
                                                                             where="test"))
    assert rows == [pair] * 2
