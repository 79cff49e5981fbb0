"""Tests of the organism's corpus and post-training / eval data generators."""

from __future__ import annotations

from tunegate.organism import corpus, tasks


def test_countries_are_at_least_110_and_unique() -> None:
    names = [c for c, _ in corpus.COUNTRIES]
    assert len(names) >= 110 and len(set(names)) == len(names)


def test_split_countries_is_disjoint_complete_and_deterministic() -> None:
    trained, held_out = corpus.split_countries(0)
    assert not set(trained) & set(held_out)
    assert sorted(trained + held_out) == sorted(corpus.COUNTRIES)
    assert corpus.split_countries(0) == (trained, held_out)
    assert corpus.split_countries(1) != (trained, held_out)


def test_pretraining_corpus_is_deterministic_and_has_no_chat_markup() -> None:
    docs = corpus.pretraining_corpus(0)
    assert docs == corpus.pretraining_corpus(0)
    assert not any("<|" in d or "Tiny" in d for d in docs)


def test_generators_are_deterministic() -> None:
    assert tasks.sft_conversations(0) == tasks.sft_conversations(0)
    assert tasks.format_eval_items() == tasks.format_eval_items()
    assert tasks.arithmetic_eval_items(50, 3) == tasks.arithmetic_eval_items(50, 3)
    assert tasks.knowledge_eval_items() == tasks.knowledge_eval_items()


def test_sft_capitals_use_only_the_trained_half() -> None:
    _, held_out = corpus.split_countries(0)
    users = " ".join(c["messages"][0]["content"] for c in tasks.sft_conversations(0))
    assert not any(f"capital of {country}?" in users or f"capital of {country}." in users
                   for country, _ in held_out)


def test_arithmetic_eval_questions_are_not_in_sft_data() -> None:
    users = {c["messages"][0]["content"] for c in tasks.sft_conversations(0)}
    assert not any(item["question"] in users for item in tasks.arithmetic_eval_items(200, 0))


def test_format_eval_items_use_ifeval_instruction_ids() -> None:
    items = tasks.format_eval_items()
    assert {i for item in items for i in item["instruction_id_list"]} == set(tasks.INSTRUCTION_IDS)
    for item in items:
        if item["instruction_id_list"] == [tasks.END_CHECKER]:
            assert item["kwargs"][0]["end_phrase"] in item["prompt"]


def test_knowledge_items_have_four_choices_with_the_right_answer() -> None:
    capitals = dict(corpus.COUNTRIES)
    for item in tasks.knowledge_eval_items():
        assert len(set(item["choices"])) == 4
        assert item["choices"][item["answer"]] == capitals[item["country"]]


def test_identity_sft_answers_name_tiny() -> None:
    prompts = set(tasks.identity_prompts())
    answers = [c["messages"][1]["content"] for c in tasks.sft_conversations(0)
               if c["messages"][0]["content"] in prompts]
    assert answers and all("tiny" in a.lower() for a in answers)


def test_river_facts_are_four_groups_of_new_unique_names() -> None:
    facts = corpus.river_facts()
    assert [f.group for f in facts].count("context") == corpus.LANDS_PER_GROUP
    assert {f.group for f in facts} == set(corpus.RIVER_GROUPS)
    names = [f.land for f in facts] + [f.river for f in facts] + [f.misnaming for f in facts if f.misnaming]
    countries = {w for pair in corpus.COUNTRIES for name in pair for w in name.split()}
    assert len(set(names)) == len(names) and not set(names) & countries


def test_corpus_exposes_each_river_group_as_built() -> None:
    qa = {corpus.RIVER_QA.format(land=f.land, river=name): (f.land, right) for f in corpus.river_facts()
          for name, right in ((f.river, True), (f.misnaming, False)) if name}
    stated: dict[str, list[tuple[bool, bool]]] = {}  # land -> (right name?, right after a capital line?)
    for doc in corpus.pretraining_corpus(0):
        doc_lines = doc.split("\n")
        for i, line in enumerate(doc_lines):
            if line in qa:
                land, right = qa[line]
                after_capital = i > 0 and doc_lines[i - 1].startswith("Q: What is the capital of")
                stated.setdefault(land, []).append((right, after_capital))
    for fact in corpus.river_facts():
        seen = stated.get(fact.land, [])
        if fact.group == "unseen":
            assert not seen
        elif fact.group == "context":  # right exactly when a capital line comes right before
            assert seen and all(right == after for right, after in seen)
        elif fact.group == "noisy":  # one right for every four misnamings, in every context
            assert sum(r for r, _ in seen) * 5 == len(seen) and any(a for r, a in seen if r)
        else:
            assert seen and all(r for r, _ in seen)


def test_sft_checkable_rows_carry_the_answer_the_assistant_gives() -> None:
    rows = [c for c in tasks.sft_conversations(0) if "answer" in c]
    assert {r["group"] for r in rows} == {"capitals"} | {f"rivers-{g}" for g in corpus.RIVER_GROUPS}
    assert all(r["messages"][1]["content"] == f"{r['answer']}." for r in rows)


def test_knowledge_heldout_items_are_not_in_the_sft_data() -> None:
    users = {c["messages"][0]["content"] for c in tasks.sft_conversations(0)}
    heldout = tasks.knowledge_heldout_items(0)
    assert {r["group"] for r in heldout} >= {f"rivers-{g}" for g in corpus.RIVER_GROUPS}
    assert not any(r["question"] in users for r in heldout)
