"""Pairwise judging, pure: a judge's two verdicts on one prompt (both orders) as the candidate's score, and the
baseline side a pairwise suite is compared against.

A judge sees the baseline's and the candidate's answers twice, once in each order, so a judge that favours the
first (or second) position favours each side once: the orders cancel. Each verdict gives the candidate 1 (it
won), 0.5 (tie, or a verdict that could not be read) or 0 (it lost); the item's ``win_rate`` is their mean (0,
0.25, 0.5, 0.75, 1) and its outcome win / tie / loss is that score above, at or below 0.5::

    parse_verdict("... so Assistant B is better. [[B]]")        # "B"
    candidate_points("B", candidate_is="B")                      # 1.0
    item_win_rate(("A", "A"))                                   # 0.5: the first position won both times

The judge's prompt is FastChat's MT-Bench pairwise prompt ("pair-v2", lm-sys/FastChat
``fastchat/llm_judge/data/judge_prompts.jsonl``, Apache-2.0): the verdict is ``[[A]]``, ``[[B]]`` or ``[[C]]`` (tie).

The records hold the judged score in the candidate's record; the baseline's side of the comparison is a tie on
every item (a model against itself scores 0.5), so ``compare`` measures the win rate against 50% with its paired CI
and gates it with a margin: ``baseline_side`` builds that side, after checking that the candidate was judged
against this baseline's own answers.
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

from tunegate.core.errors import TunegateError
from tunegate.evals.records import ItemScore, SuiteResult

#: The score a pairwise suite records per item, and its value for a tie.
WIN_RATE = "win_rate"
TIE = 0.5
#: The suite config key that marks a suite as pairwise (its scores are relative to the baseline's answers).
PAIRWISE = "pairwise"

JUDGE_SYSTEM = (
    "Please act as an impartial judge and evaluate the quality of the responses provided by two AI assistants to "
    "the user question displayed below. You should choose the assistant that follows the user's instructions and "
    "answers the user's question better. Your evaluation should consider factors such as the helpfulness, "
    "relevance, accuracy, depth, creativity, and level of detail of their responses. Begin your evaluation by "
    "comparing the two responses and provide a short explanation. Avoid any position biases and ensure that the "
    "order in which the responses were presented does not influence your decision. Do not allow the length of the "
    "responses to influence your evaluation. Do not favor certain names of the assistants. Be as objective as "
    "possible. After providing your explanation, output your final verdict by strictly following this format: "
    "\"[[A]]\" if assistant A is better, \"[[B]]\" if assistant B is better, and \"[[C]]\" for a tie.")
JUDGE_TEMPLATE = (
    "[User Question]\n{question}\n\n[The Start of Assistant A's Answer]\n{answer_a}\n[The End of Assistant A's "
    "Answer]\n\n[The Start of Assistant B's Answer]\n{answer_b}\n[The End of Assistant B's Answer]")
VERDICTS = ("A", "B", "tie", "unparsed")
#: The verdict marks of the judge's prompt, and the verdict each stands for.
MARKS = {"[[A]]": "A", "[[B]]": "B", "[[C]]": "tie"}


def parse_verdict(judgment: str) -> str:
    """FastChat's rule: ``[[A]]`` -> A, else ``[[B]]`` -> B, else ``[[C]]`` -> tie, else unparsed."""
    for mark, verdict in MARKS.items():
        if mark in judgment:
            return verdict
    return "unparsed"


def likelihood_judgment(logprobs: Sequence[float]) -> str:
    """The judgment of a judge asked for the verdict mark alone: the mark of highest log-likelihood (the first on a
    tie), then each mark's log-likelihood, as ``parse_verdict`` reads it::

        likelihood_judgment([-3.2, -2.1, -6.7])   # "[[B]] (log-likelihood A -3.200, B -2.100, C -6.700)"
    """
    best = max(range(len(MARKS)), key=lambda i: (logprobs[i], -i))
    values = ", ".join(f"{mark[2]} {value:.3f}" for mark, value in zip(MARKS, logprobs))
    return f"{list(MARKS)[best]} (log-likelihood {values})"


def candidate_points(verdict: str, candidate_is: str) -> float:
    """The candidate's points from one verdict when it was shown as assistant ``candidate_is`` (A or B)."""
    if verdict in ("A", "B"):
        return 1.0 if verdict == candidate_is else 0.0
    return TIE


def item_win_rate(verdicts: Sequence[str]) -> float:
    """The candidate's score over the two orders: ``verdicts[0]`` with the baseline as A, ``verdicts[1]`` with the
    candidate as A."""
    first, second = verdicts
    return (candidate_points(first, "B") + candidate_points(second, "A")) / 2


def outcome(win_rate: float) -> str:
    return "win" if win_rate > TIE else "loss" if win_rate < TIE else "tie"


def baseline_side(baseline: SuiteResult, candidate: SuiteResult) -> SuiteResult:
    """The baseline's side of a pairwise suite's comparison: every item a tie (``win_rate`` 0.5), its own answer
    kept as evidence. The candidate's items must have been judged against these very answers."""
    answers = {s.item_id: s.response for s in baseline.items}
    if not any("reference_response" in s.meta for s in candidate.items):
        raise TunegateError(f"suite '{candidate.suite}': the candidate's record holds no verdicts (it was evaluated "
                            f"without a baseline to judge against); evaluate it with --suite-option "
                            f"{candidate.suite}.reference=BASELINE.json")
    for item in candidate.items:
        judged = item.meta.get("reference_response")
        if item.item_id in answers and judged != answers[item.item_id]:
            raise TunegateError(
                f"suite '{candidate.suite}': item '{item.item_id}' of the candidate was judged against another "
                f"answer than the baseline's; evaluate the candidate with this baseline as its reference "
                f"(--suite-option {candidate.suite}.reference=BASELINE.json)")
    return dataclasses.replace(baseline, items=tuple(_tie(s) for s in baseline.items))


def _tie(item: ItemScore) -> ItemScore:
    return dataclasses.replace(item, scores={WIN_RATE: TIE})
