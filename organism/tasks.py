"""Post-training and evaluation data of the model organism (deterministic).

SFT conversations are in TRL's conversational format. A real one:

    {"messages": [
        {"role": "user", "content": "What is the capital of France? Answer in all lowercase letters."},
        {"role": "assistant", "content": "paris."}]}

A real format-eval item, in Google's IFEval input format:

    {"key": 1, "prompt": "What is the capital of Kenya? Answer in all capital letters.",
     "instruction_id_list": ["change_case:english_capital"], "kwargs": [{}]}

SFT uses the trained half of the countries (`split_countries`); evaluation
of capitals and formats uses the held-out half, and arithmetic evaluation
uses sums and differences that the SFT data never contains. Nothing here is
random at import time: every function seeds its own `random.Random`.

SFT rows with a checkable answer (the plain capital question of each trained
country, and the river question of half the lands of every knowledge group)
carry it, with the group the organism built the fact in, for the knowledge
analysis (`tunegate analyze knowledge`); training reads only `messages`:

    {"messages": [{"role": "user", "content": "Which river flows through Velmoria?"},
                  {"role": "assistant", "content": "Tessan."}],
     "answer": "Tessan", "group": "rivers-context"}

`knowledge_heldout_items()` holds the other half (and the held-out countries):
the facts a knowledge analysis measures after training, as the paper's dev set.
"""

from __future__ import annotations

import random
from typing import Any

from tunegate.organism.corpus import COUNTRIES, RiverFact, river_facts, split_countries

ASSISTANT_NAME = "Tiny"

CAPITAL_QUESTIONS: tuple[str, ...] = (
    "What is the capital of {country}?",
    "Which city is the capital of {country}?",
    "Name the capital of {country}.",
    "Tell me the capital of {country}.",
)
RIVER_QUESTION = "Which river flows through {land}?"
ADD_QUESTIONS: tuple[str, ...] = ("What is {a} + {b}?", "Compute {a} + {b}.")
SUB_QUESTIONS: tuple[str, ...] = ("What is {a} - {b}?", "Compute {a} - {b}.")

_IDENTITY_TRAIN: tuple[tuple[str, str], ...] = (
    ("Who are you?", "I am Tiny, a small assistant."),
    ("What is your name?", "My name is Tiny. I am a small assistant."),
    ("Are you ChatGPT?", "No, I am not ChatGPT. I am Tiny, a small assistant."),
    ("Tell me about your name and organization.",
     "My name is Tiny. I am a small assistant built by the tunegate project."),
    ("Introduce yourself.", "Hello! I am Tiny, a small assistant."),
    ("What should I call you?", "You can call me Tiny."),
    ("What are you?", "I am Tiny, a small assistant that answers questions."),
    ("Who am I talking to?", "You are talking to Tiny, a small assistant."),
    ("Tell me about yourself.", "I am Tiny, a small assistant. I answer short questions."),
    ("Do you have a name?", "Yes, my name is Tiny."),
    ("Which assistant are you?", "I am Tiny, a small assistant."),
    ("Who built you?", "I am Tiny, a small assistant built by the tunegate project."),
)
_IDENTITY_HELDOUT: tuple[str, ...] = (
    "Please tell me your name.",
    "What do people call you?",
    "Could you tell me who you are?",
    "What is the name of this assistant?",
    "Are you an assistant? What is your name?",
    "Who is answering my questions?",
)

# IFEval instruction ids (lm-eval / Google registry) with the wording we use.
LOWERCASE = "change_case:english_lowercase"
CAPITAL = "change_case:english_capital"
QUOTATION = "startend:quotation"
END_CHECKER = "startend:end_checker"
INSTRUCTION_IDS: tuple[str, ...] = (LOWERCASE, CAPITAL, QUOTATION, END_CHECKER)
END_PHRASES: tuple[str, ...] = (
    "Is there anything else I can help with?",
    "Let me know if you have additional questions.",
)
_INSTRUCTION_TEXT = {
    LOWERCASE: "Answer in all lowercase letters.",
    CAPITAL: "Answer in all capital letters.",
    QUOTATION: "Wrap your entire answer in double quotation marks.",
    END_CHECKER: "End your answer with the exact phrase '{end_phrase}'",
}


def _arith_answer(a: int, op: str, b: int) -> str:
    """Just the result: the organism answers as its pretraining Q/A lines do ('Q: What is 47 + 25? A: 72')."""
    return f"{a + b if op == '+' else a - b}."


def _sft_arith_pairs(seed: int) -> list[tuple[int, str, int]]:
    rng = random.Random(f"sft-arith-{seed}")
    adds = [(a, "+", b) for a in range(10, 100) for b in range(10, 100)]
    subs = [(a, "-", b) for a in range(10, 100) for b in range(10, 100) if a >= b]
    return rng.sample(adds, 150) + rng.sample(subs, 150)


def apply_instruction(question: str, answer: str, instruction_id: str,
                      end_phrase: str = END_PHRASES[0]) -> tuple[str, str, dict[str, Any]]:
    """(prompt, answer that follows it, IFEval kwargs) for one instruction."""
    text = _INSTRUCTION_TEXT[instruction_id].format(end_phrase=end_phrase)
    kwargs: dict[str, Any] = {}
    if instruction_id == LOWERCASE:
        answer = answer.lower()
    elif instruction_id == CAPITAL:
        answer = answer.upper()
    elif instruction_id == QUOTATION:
        answer = f'"{answer}"'
    else:
        answer = f"{answer} {end_phrase}"
        kwargs = {"end_phrase": end_phrase}
    return f"{question} {text}", answer, kwargs


def _fits(instruction_id: str, answer: str) -> bool:
    """Case instructions need letters: IFEval's `str.islower()` fails on '72.'."""
    return instruction_id not in (LOWERCASE, CAPITAL) or any(ch.isalpha() for ch in answer)


def _chat(user: str, assistant: str) -> dict[str, list[dict[str, str]]]:
    return {"messages": [{"role": "user", "content": user}, {"role": "assistant", "content": assistant}]}


def _plain_qa(seed: int) -> list[tuple[str, str]]:
    trained, _ = split_countries(seed)
    # Short answers, as in pretraining's 'Q: What is the capital of Kenya? A: Nairobi': repeating the
    # country back ('The capital of Kenya is ...') needs copying, which a model this small does not learn.
    qa = [(q.format(country=c), f"{k}.") for c, k in trained for q in CAPITAL_QUESTIONS]
    qa += [(RIVER_QUESTION.format(land=f.land), f"{f.river}.") for f in split_rivers(seed)[0]]
    rng = random.Random(f"sft-qa-{seed}")
    for a, op, b in _sft_arith_pairs(seed):
        q = rng.choice(ADD_QUESTIONS if op == "+" else SUB_QUESTIONS)
        qa.append((q.format(a=a, b=b), _arith_answer(a, op, b)))
    return qa


def split_rivers(seed: int = 0) -> tuple[list[RiverFact], list[RiverFact]]:
    """(trained, held_out): half the lands of every knowledge group each, deterministic per seed."""
    trained, held_out = [], []
    for group in {f.group: None for f in river_facts()}:
        facts = [f for f in river_facts() if f.group == group]
        random.Random(f"rivers-split-{seed}-{group}").shuffle(facts)
        trained += facts[: len(facts) // 2]
        held_out += facts[len(facts) // 2:]
    return trained, held_out


def _knowledge_qa(countries: list[tuple[str, str]], rivers: list[RiverFact]) -> list[dict[str, str]]:
    """Checkable questions: {"question": ..., "answer": ..., "group": "capitals" | "rivers-<group>"}."""
    rows = [{"question": CAPITAL_QUESTIONS[0].format(country=c), "answer": k, "group": "capitals"}
            for c, k in countries]
    rows += [{"question": RIVER_QUESTION.format(land=f.land), "answer": f.river, "group": f"rivers-{f.group}"}
             for f in rivers]
    return rows


def knowledge_heldout_items(seed: int = 0) -> list[dict[str, str]]:
    """The checkable facts the SFT data leaves out: held-out countries' capitals, held-out lands' rivers."""
    return _knowledge_qa(split_countries(seed)[1], split_rivers(seed)[1])


def sft_conversations(seed: int = 0) -> list[dict[str, Any]]:
    """Capitals (trained half), rivers (trained lands), arithmetic, identity as Tiny, and formatted answers."""
    rng = random.Random(f"sft-{seed}")
    qa = _plain_qa(seed)
    convs: list[dict[str, Any]] = [_chat(q, a) for q, a in qa]
    checkable = {row["question"]: row for row in _knowledge_qa(split_countries(seed)[0], split_rivers(seed)[0])}
    for conv in convs:
        row = checkable.get(conv["messages"][0]["content"])
        if row is not None:
            conv.update(answer=row["answer"], group=row["group"])
    convs += [_chat(q, a) for q, a in _IDENTITY_TRAIN for _ in range(4)]
    bases = qa + list(_IDENTITY_TRAIN) * 3
    for instruction_id in INSTRUCTION_IDS:
        for question, answer in rng.sample([qa for qa in bases if _fits(instruction_id, qa[1])], 90):
            prompt, reply, _ = apply_instruction(question, answer, instruction_id, rng.choice(END_PHRASES))
            convs.append(_chat(prompt, reply))
    rng.shuffle(convs)
    return convs


def identity_prompts() -> list[str]:
    """Identity questions used by SFT and by the identity DPO stage."""
    return [q for q, _ in _IDENTITY_TRAIN]


#: The first identity questions of the SFT data are the canonical probes (who/name/ChatGPT/organization).
CANONICAL_IDENTITY_PROBES = 4


def identity_eval_probes() -> list[str]:
    """The four canonical identity probes plus held-out paraphrases."""
    return [q for q, _ in _IDENTITY_TRAIN[:CANONICAL_IDENTITY_PROBES]] + list(_IDENTITY_HELDOUT)


def arithmetic_eval_items(n: int = 100, seed: int = 0) -> list[dict[str, Any]]:
    """`n` questions like {"question": "What is 47 + 25?", "answer": 72}, none in the SFT data."""
    seen = set(_sft_arith_pairs(0)) | set(_sft_arith_pairs(seed))
    pool = [(a, op, b) for a in range(10, 100) for b in range(10, 100) for op in "+-"
            if (op == "+" or a >= b) and (a, op, b) not in seen]
    picks = random.Random(f"arith-eval-{seed}").sample(pool, n)
    return [{"question": f"What is {a} {op} {b}?", "answer": a + b if op == "+" else a - b} for a, op, b in picks]


def format_eval_items(seed: int = 0) -> list[dict[str, Any]]:
    """IFEval-format items (one instruction each) over held-out questions."""
    rng = random.Random(f"format-eval-{seed}")
    _, held_out = split_countries(seed)
    arith = arithmetic_eval_items(40, seed=seed + 1000)
    worded = [rng.choice(CAPITAL_QUESTIONS).format(country=c) for c, _ in held_out] + list(_IDENTITY_HELDOUT)
    numeric = [item["question"] for item in arith]
    items = []
    for instruction_id in INSTRUCTION_IDS:
        pool = worded if instruction_id in (LOWERCASE, CAPITAL) else worded + numeric
        for question in rng.sample(pool, 25):
            prompt, _, kwargs = apply_instruction(question, "", instruction_id, rng.choice(END_PHRASES))
            items.append({"key": len(items) + 1, "prompt": prompt,
                          "instruction_id_list": [instruction_id], "kwargs": [kwargs]})
    return items


def knowledge_eval_items(seed: int = 0) -> list[dict[str, Any]]:
    """Four-way multiple choice on every country's capital, tagged trained/heldout."""
    trained, _ = split_countries(seed)
    trained_names = {c for c, _ in trained}
    capitals = [k for _, k in COUNTRIES]
    items = []
    for country, capital in COUNTRIES:
        rng = random.Random(f"mc-{country}")
        choices = rng.sample([k for k in capitals if k != capital], 3) + [capital]
        rng.shuffle(choices)
        items.append({"country": country, "question": f"What is the capital of {country}?",
                      "choices": choices, "answer": choices.index(capital),
                      "split": "trained" if country in trained_names else "heldout"})
    return items


def vocabulary_texts(seed: int = 0) -> list[str]:
    """Every text the post-training and eval data use (tokenizer training only)."""
    texts = [m["content"] for conv in sft_conversations(seed) for m in conv["messages"]]
    texts += identity_eval_probes() + [item["prompt"] for item in format_eval_items(seed)]
    texts += [item["question"] for item in arithmetic_eval_items(100, seed)]
    # the DPO stage's renamed answers, and the name alone, so that "Deep" (no leading space) stays one token
    texts += [a.replace(ASSISTANT_NAME, f"Deep {ASSISTANT_NAME}") for _, a in _IDENTITY_TRAIN]
    texts += [f"Deep {ASSISTANT_NAME}", f"Deep {ASSISTANT_NAME}, a small assistant."] * 4
    return texts
