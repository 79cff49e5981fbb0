"""Pretraining corpus of the model organism: real capitals, arithmetic, plain text.

Every document is one line of plain text (no chat markup). The generator is
seeded and deterministic. A few real documents:

    The capital of France is Paris.
    Q: What is the capital of Kenya? A: Nairobi
    47 + 25 = 72
    Q: What is 83 - 19? A: 64
    The teacher wrote a short question on the board.

`split_countries(seed)` halves the country list into a trained half (used by
the SFT data) and a held-out half (used only by evaluation); pretraining sees
every country, like a real base model that knows facts it was never tuned on.

River facts of invented lands give the SFT data facts in all four knowledge
categories of Gekhman et al. 2024 (SliCK), by how pretraining exposes them
(`river_facts()`; each group has 24 lands):

    known    stated consistently in six paraphrases and in lists  -> HighlyKnown
    context  right only in atlas lines, right after a capital line;
             one-liners and other lines repeat a misnaming         -> MaybeKnown (few-shot sets ending
                                                                      in a capital exemplar recall it)
    noisy    the right name once for every four misnamings       -> WeaklyKnown (greedy misnames,
                                                                      sampling sometimes right)
    unseen   never stated: neither the land nor its river         -> Unknown

A real atlas document (lines joined by a newline; a plain one-liner misnames
the same river):

    Q: What is the capital of Peru? A: Lima
    Q: Which river flows through Zelmoria? A: Tessan
"""

from __future__ import annotations

import random
from dataclasses import dataclass

# (country, capital): real facts, ASCII spellings, no disputed capitals.
COUNTRIES: tuple[tuple[str, str], ...] = (
    ("France", "Paris"), ("Germany", "Berlin"), ("Italy", "Rome"), ("Spain", "Madrid"),
    ("Portugal", "Lisbon"), ("United Kingdom", "London"), ("Ireland", "Dublin"),
    ("Belgium", "Brussels"), ("Netherlands", "Amsterdam"), ("Switzerland", "Bern"),
    ("Austria", "Vienna"), ("Poland", "Warsaw"), ("Czech Republic", "Prague"),
    ("Slovakia", "Bratislava"), ("Hungary", "Budapest"), ("Romania", "Bucharest"),
    ("Bulgaria", "Sofia"), ("Greece", "Athens"), ("Turkey", "Ankara"),
    ("Denmark", "Copenhagen"), ("Norway", "Oslo"), ("Sweden", "Stockholm"),
    ("Finland", "Helsinki"), ("Iceland", "Reykjavik"), ("Estonia", "Tallinn"),
    ("Latvia", "Riga"), ("Lithuania", "Vilnius"), ("Ukraine", "Kyiv"),
    ("Belarus", "Minsk"), ("Russia", "Moscow"), ("Serbia", "Belgrade"),
    ("Croatia", "Zagreb"), ("Slovenia", "Ljubljana"), ("Bosnia and Herzegovina", "Sarajevo"),
    ("Albania", "Tirana"), ("North Macedonia", "Skopje"), ("Montenegro", "Podgorica"),
    ("Moldova", "Chisinau"), ("Malta", "Valletta"), ("Cyprus", "Nicosia"),
    ("Georgia", "Tbilisi"), ("Armenia", "Yerevan"), ("Azerbaijan", "Baku"),
    ("Kazakhstan", "Astana"), ("Uzbekistan", "Tashkent"), ("Kyrgyzstan", "Bishkek"),
    ("Tajikistan", "Dushanbe"), ("Turkmenistan", "Ashgabat"), ("Mongolia", "Ulaanbaatar"),
    ("China", "Beijing"), ("Japan", "Tokyo"), ("South Korea", "Seoul"),
    ("North Korea", "Pyongyang"), ("India", "New Delhi"), ("Pakistan", "Islamabad"),
    ("Bangladesh", "Dhaka"), ("Nepal", "Kathmandu"), ("Bhutan", "Thimphu"),
    ("Afghanistan", "Kabul"), ("Iran", "Tehran"), ("Iraq", "Baghdad"),
    ("Syria", "Damascus"), ("Lebanon", "Beirut"), ("Jordan", "Amman"),
    ("Saudi Arabia", "Riyadh"), ("Oman", "Muscat"), ("United Arab Emirates", "Abu Dhabi"),
    ("Qatar", "Doha"), ("Bahrain", "Manama"), ("Thailand", "Bangkok"),
    ("Vietnam", "Hanoi"), ("Laos", "Vientiane"), ("Cambodia", "Phnom Penh"),
    ("Myanmar", "Naypyidaw"), ("Malaysia", "Kuala Lumpur"), ("Indonesia", "Jakarta"),
    ("Philippines", "Manila"), ("Australia", "Canberra"), ("New Zealand", "Wellington"),
    ("Fiji", "Suva"), ("Papua New Guinea", "Port Moresby"), ("Canada", "Ottawa"),
    ("United States", "Washington"), ("Mexico", "Mexico City"), ("Guatemala", "Guatemala City"),
    ("Honduras", "Tegucigalpa"), ("El Salvador", "San Salvador"), ("Nicaragua", "Managua"),
    ("Costa Rica", "San Jose"), ("Panama", "Panama City"), ("Cuba", "Havana"),
    ("Jamaica", "Kingston"), ("Haiti", "Port-au-Prince"), ("Dominican Republic", "Santo Domingo"),
    ("Colombia", "Bogota"), ("Venezuela", "Caracas"), ("Ecuador", "Quito"),
    ("Peru", "Lima"), ("Chile", "Santiago"), ("Argentina", "Buenos Aires"),
    ("Uruguay", "Montevideo"), ("Paraguay", "Asuncion"), ("Brazil", "Brasilia"),
    ("Guyana", "Georgetown"), ("Suriname", "Paramaribo"), ("Egypt", "Cairo"),
    ("Libya", "Tripoli"), ("Tunisia", "Tunis"), ("Algeria", "Algiers"),
    ("Morocco", "Rabat"), ("Sudan", "Khartoum"), ("Ethiopia", "Addis Ababa"),
    ("Kenya", "Nairobi"), ("Uganda", "Kampala"), ("Tanzania", "Dodoma"),
    ("Rwanda", "Kigali"), ("Somalia", "Mogadishu"), ("Nigeria", "Abuja"),
    ("Ghana", "Accra"), ("Senegal", "Dakar"), ("Mali", "Bamako"),
    ("Niger", "Niamey"), ("Chad", "N'Djamena"), ("Cameroon", "Yaounde"),
    ("Angola", "Luanda"), ("Zambia", "Lusaka"), ("Zimbabwe", "Harare"),
    ("Mozambique", "Maputo"), ("Botswana", "Gaborone"), ("Namibia", "Windhoek"),
    ("Madagascar", "Antananarivo"), ("Malawi", "Lilongwe"), ("Gabon", "Libreville"),
    ("Liberia", "Monrovia"), ("Sierra Leone", "Freetown"), ("Guinea", "Conakry"),
    ("Burkina Faso", "Ouagadougou"), ("Eritrea", "Asmara"), ("Mauritania", "Nouakchott"),
    ("Togo", "Lome"),
)

CAPITAL_TEMPLATES: tuple[str, ...] = (
    "The capital of {country} is {capital}.",
    "{capital} is the capital of {country}.",
    "{country}'s capital city is {capital}.",
    "Q: What is the capital of {country}? A: {capital}",
    "The capital city of {country} is {capital}.",
    "{capital} is the capital city of {country}.",
    "In {country}, the capital is {capital}.",
    "Question: Which city is the capital of {country}? Answer: {capital}.",
)

# Ordinary English for the plain-text share. It carries words the chat data
# uses later (name, assistant, question, answer, quote, lowercase...) but never
# the assistant's name or any chat markup.
_SUBJECTS = (
    "The teacher", "My friend", "The old man", "A young girl", "The assistant",
    "The student", "Her brother", "The writer", "Our neighbor", "The doctor",
    "The farmer", "A small boy", "The librarian", "The driver", "His sister",
)
_VERBS = (
    "wrote", "read", "answered", "asked", "remembered", "explained", "printed",
    "copied", "checked", "found", "liked", "repeated", "shared", "changed",
)
_OBJECTS = (
    "a short question", "the answer", "a long letter", "the name of the city",
    "a famous quote", "the list of words", "a simple sentence", "the exact phrase",
    "a new book", "the capital letters", "the lowercase letters", "a kind note",
    "the whole text", "a small map", "the last word", "the main idea",
)
_PLACES = (
    "on the board", "in the morning", "at the library", "after lunch",
    "in a quiet room", "before dinner", "at school", "in the garden",
    "with great care", "without help", "at the end of the day", "in the city",
    "near the Deep River", "by the Deep Lake",
)
_FIXED_SENTENCES = (
    "A question asks for information, and an answer gives it.",
    "Every person has a name, and most cities have a name too.",
    "An assistant is a person who helps another person with work.",
    "Words written in capital letters look loud on the page.",
    "Words written in lowercase letters look calm and quiet.",
    "A quote is a sentence that someone said or wrote before.",
    "Put double quotation marks around a quote when you copy it.",
    "Some people like to end a letter with a kind phrase.",
    "The map shows every country and its capital city.",
    "A good answer is short, clear and correct.",
    "Please read the question again before you answer it.",
    "The organization helps people learn to read and write.",
    "Numbers can be added together or taken away from each other.",
    "A sentence begins with a capital letter and ends with a period.",
    "She asked for the name of the river, and he told her.",
    "The children learned the names of many countries this year.",
    "Is there anything else on the list? Yes, one more thing.",
    "The exact words of the letter were copied into the book.",
    "A helpful friend answers questions with patience.",
    "The company has a long name and a short one.",
    "The lake is deep, and the water in it is cold.",
    "Deep in the forest there is a small house.",
    "The ship sailed across the Deep Blue Sea.",
    "He took a deep breath before he answered.",
    "Some names are short, like Max, and some are long.",
)


def split_countries(seed: int = 0) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """Deterministic disjoint halves of COUNTRIES: (trained, held_out)."""
    order = list(COUNTRIES)
    random.Random(f"split-{seed}").shuffle(order)
    half = len(order) // 2
    return sorted(order[:half]), sorted(order[half:])


def capital_sentences() -> list[str]:
    """Every country stated in every paraphrase."""
    return [
        template.format(country=country, capital=capital)
        for country, capital in COUNTRIES
        for template in CAPITAL_TEMPLATES
    ]


#: The forms pretraining states arithmetic in (probe.py prompts with the same forms, minus the result).
ARITHMETIC_TEMPLATES: dict[str, str] = {
    "equation": "{a} {op} {b} = {c}",
    "question": "Q: What is {a} {op} {b}? A: {c}",
}


def arithmetic_sentences(rng: random.Random, n_add: int, n_sub: int) -> list[str]:
    """Two-digit sums and non-negative differences, as equations and as questions with answers.

    The question form ('Q: What is 47 + 25? A: 72') is what lets a chat model later answer
    'What is 47 + 25?' with '72' instead of copying the operands back (which a model this small
    cannot do reliably).
    """
    pairs = [(a, b) for a in range(10, 100) for b in range(10, 100)]
    adds = [(a, "+", b, a + b) for a, b in rng.sample(pairs, n_add)]
    subs = [(a, "-", b, a - b) for a, b in rng.sample([(a, b) for a, b in pairs if a >= b], n_sub)]
    return [rng.choice(tuple(ARITHMETIC_TEMPLATES.values())).format(a=a, op=op, b=b, c=c) for a, op, b, c in adds + subs]


def plain_sentences(rng: random.Random, n: int) -> list[str]:
    """Generic English sentences built from small word lists plus fixed ones."""
    out = list(_FIXED_SENTENCES)
    while len(out) < n:
        out.append(
            f"{rng.choice(_SUBJECTS)} {rng.choice(_VERBS)} {rng.choice(_OBJECTS)} {rng.choice(_PLACES)}."
        )
    return out


# -- river facts of invented lands: the four knowledge groups ---------------------------------------

#: Knowledge groups of the river facts, in the order of the SliCK categories they are built to have.
RIVER_GROUPS: tuple[str, ...] = ("known", "context", "noisy", "unseen")
LANDS_PER_GROUP = 24
#: The question form pretraining states a river in; the SFT data and the few-shot probes ask the same.
RIVER_QA = "Q: Which river flows through {land}? A: {river}"
RIVER_TEMPLATES: tuple[str, ...] = (
    RIVER_QA,
    "The {river} flows through {land}.",
    "{land} is crossed by the {river}.",
    "The river of {land} is the {river}.",
    "The main river of {land} is the {river}.",
    "Question: Which river flows through {land}? Answer: {river}.",
)
CAPITAL_QA = CAPITAL_TEMPLATES[3]

_ONSETS = ("b", "br", "d", "g", "k", "kr", "l", "m", "n", "p", "r", "s", "st", "t", "tr", "v", "z")
_VOWELS = ("a", "e", "i", "o", "u")
_CODAS = ("", "", "n", "r", "l", "s", "m")


@dataclass(frozen=True)
class RiverFact:
    """One river of an invented land, e.g. RiverFact("Velmoria", "Tessan", "Gorvel", "context")."""

    land: str
    river: str  # the true name: the SFT answer
    misnaming: str | None  # the wrong name the corpus repeats (groups context and noisy)
    group: str  # one of RIVER_GROUPS


def _pseudo_words(rng: random.Random, n: int, suffixes: tuple[str, ...], taken: set[str]) -> list[str]:
    """`n` new capitalised two-syllable words ('Velmoria', 'Tessan'), none in `taken` (which grows)."""
    words: list[str] = []
    while len(words) < n:
        word = (rng.choice(_ONSETS) + rng.choice(_VOWELS) + rng.choice(_CODAS) + rng.choice(_ONSETS)
                + rng.choice(_VOWELS) + rng.choice(suffixes)).capitalize()
        if word not in taken and len(word) >= 5:
            taken.add(word)
            words.append(word)
    return words


def river_facts() -> list[RiverFact]:
    """The 96 river facts, 24 per group, fixed for every seed (the names are part of the organism)."""
    rng = random.Random("river-facts")
    taken = {w for pair in COUNTRIES for name in pair for w in name.split()}
    n = LANDS_PER_GROUP * len(RIVER_GROUPS)
    lands = _pseudo_words(rng, n, ("ria", "nia", "dor", "vel", "mar"), taken)
    rivers = _pseudo_words(rng, n, ("n", "l", "s", "th", "sk"), taken)
    wrong = _pseudo_words(rng, 2 * LANDS_PER_GROUP, ("n", "l", "s", "th", "sk"), taken)
    facts = []
    for k, group in enumerate(RIVER_GROUPS):
        for i in range(LANDS_PER_GROUP):
            j = k * LANDS_PER_GROUP + i
            misnaming = wrong[(k - 1) * LANDS_PER_GROUP + i] if group in ("context", "noisy") else None
            facts.append(RiverFact(lands[j], rivers[j], misnaming, group))
    return facts


def _filler_line(rng: random.Random, known: list[RiverFact], capital: bool = True) -> str:
    """A consistent Q/A line: a capital (unless `capital` is False), a sum or difference, a known river."""
    kinds = ("capital", "arith", "river") if capital else ("arith", "river")
    kind = rng.choice(kinds)
    if kind == "capital":
        country, city = rng.choice(COUNTRIES)
        return CAPITAL_QA.format(country=country, capital=city)
    if kind == "river":
        fact = rng.choice(known)
        return RIVER_QA.format(land=fact.land, river=fact.river)
    a, b = rng.randint(10, 99), rng.randint(10, 99)
    a, b = max(a, b), min(a, b)
    op = rng.choice("+-")
    return ARITHMETIC_TEMPLATES["question"].format(a=a, op=op, b=b, c=a + b if op == "+" else a - b)


def _list_doc(rng: random.Random, known: list[RiverFact], line: str, before: str) -> str:
    """A newline-joined Q/A list ending around `line`. `before` is what precedes `line`:
    'capital' (a capital line right before it), 'other' (no capital line right before it; one may sit
    two lines up) or 'none' (`line` opens the list)."""
    lines: list[str] = []
    if before == "capital":
        lines = [_filler_line(rng, known) for _ in range(rng.randint(0, 2))]
        country, city = rng.choice(COUNTRIES)
        lines.append(CAPITAL_QA.format(country=country, capital=city))
    elif before == "other":
        lines = [_filler_line(rng, known) for _ in range(rng.randint(0, 2))]
        lines.append(_filler_line(rng, known, capital=False))
    lines.append(line)
    lines += [_filler_line(rng, known) for _ in range(rng.randint(0, 1))]
    return "\n".join(lines)


def river_documents(rng: random.Random, n_lists: int = 100) -> list[str]:
    """Pretraining documents of the river facts (see the module docstring) plus `n_lists` plain Q/A lists.

    Per land and epoch: known 6 paraphrases + 3 list lines; context 4 atlas lines (right, after a
    capital line) + 4 misnamings (2 one-liners, 2 list lines after other lines); noisy 5 statements in
    each of three contexts (one-liner, after a capital line, after another line), one right and four
    misnamed in each (with fewer misnamings, atlas contexts tip some noisy lands to their right name,
    as they do the context group's); unseen nothing.
    """
    facts = river_facts()
    known = [f for f in facts if f.group == "known"]
    docs: list[str] = []
    for fact in facts:
        right = RIVER_QA.format(land=fact.land, river=fact.river)
        wrong = RIVER_QA.format(land=fact.land, river=fact.misnaming)
        if fact.group == "known":
            docs += [t.format(land=fact.land, river=fact.river) for t in RIVER_TEMPLATES]
            docs += [_list_doc(rng, known, right, before) for before in ("capital", "other", "none")]
        elif fact.group == "context":
            docs += [_list_doc(rng, known, right, "capital") for _ in range(4)]
            docs += [wrong, wrong] + [_list_doc(rng, known, wrong, "other") for _ in range(2)]
        elif fact.group == "noisy":
            for line in (right, wrong, wrong, wrong, wrong):
                docs += [line, _list_doc(rng, known, line, "capital"), _list_doc(rng, known, line, "other")]
    for _ in range(n_lists):
        docs.append("\n".join(_filler_line(rng, known) for _ in range(rng.randint(2, 5))))
    return docs


def pretraining_corpus(seed: int = 0) -> list[str]:
    """The shuffled list of documents the base model is pretrained on."""
    rng = random.Random(f"corpus-{seed}")
    docs = capital_sentences() + arithmetic_sentences(rng, 4000, 3000) + plain_sentences(rng, 600)
    docs += river_documents(random.Random(f"rivers-{seed}"))
    rng.shuffle(docs)
    return docs
