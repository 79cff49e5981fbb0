"""Verifiable rewards for online RL: the eval suites' own scorers, as TRL reward functions.

A reward is one metric of one suite, computed by that suite's ``score`` on each sampled completion, so a
GRPO stage is rewarded by exactly what the gate later measures (RLVR as in Tulu 3: a reward of 1 only
when the answer is verifiably right)::

    math                 math.exact_match: GSM8K's strict '#### N' as lm-eval extracts it; the organism's
                         last number equal to the answer
    math_flexible        math.flexible_match: GSM8K's last number (lm-eval's flexible-extract)
    ifeval               ifeval.prompt_strict: every instruction of the prompt followed (IFEval's checkers)
    ifeval_instructions  ifeval.inst_strict: the share of the prompt's instructions followed
    identity             identity.adherence: names the target and no forbidden name

Each training row carries the suite it came from (its name and config, as a record keeps it) and the
EvalItem it was built from, both as JSON (``prompt_rows``); TRL hands those columns to every reward
function, which scores the rows of its own suite and returns None for the others (TRL then leaves that
reward out for those rows, so one stage can mix math and IFEval prompts). A real row::

    {"prompt": [{"role": "user", "content": "What is 47 + 25?"}],
     "suite": "{\\"name\\": \\"math\\", \\"config\\": {\\"variant\\": \\"organism\\", ...}}",
     "item": "{\\"id\\": \\"arith-0000\\", \\"prompt\\": \\"What is 47 + 25?\\", \\"target\\": \\"72\\", ...}"}

A reward of your own is a ``module:function`` path taking TRL's reward arguments (``prompts``,
``completions``, the dataset's other columns as keyword lists) and returning a float or None per completion.
"""

from __future__ import annotations

import dataclasses
import functools
import json
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

from tunegate.core.errors import TunegateError
from tunegate.core.registry import Registry, load_object
from tunegate.evals.records import EvalItem, item_units
from tunegate.evals.suites import parse_suite_options
from tunegate.evals.suites.base import Suite

#: The columns a suite's prompt row carries for its rewards.
SUITE_COLUMN, ITEM_COLUMN = "suite", "item"


@dataclass(frozen=True)
class Reward:
    """A verifiable reward: one metric of one suite, as the suite scores a response."""

    suite: str
    metric: str
    help: str


MATH = Reward("math", "exact_match", "math.exact_match: GSM8K's strict '#### N' (lm-eval); the organism's last number")
MATH_FLEXIBLE = Reward("math", "flexible_match", "math.flexible_match: GSM8K's last number (lm-eval flexible-extract)")
IFEVAL = Reward("ifeval", "prompt_strict", "ifeval.prompt_strict: every instruction followed (Tulu 3's RLVR reward)")
IFEVAL_INSTRUCTIONS = Reward("ifeval", "inst_strict", "ifeval.inst_strict: the share of instructions followed")
IDENTITY = Reward("identity", "adherence", "identity.adherence: names the target and no forbidden name")

REWARDS: Registry[Reward] = Registry("reward", {
    "math": "tunegate.training.rewards:MATH",
    "math_flexible": "tunegate.training.rewards:MATH_FLEXIBLE",
    "ifeval": "tunegate.training.rewards:IFEVAL",
    "ifeval_instructions": "tunegate.training.rewards:IFEVAL_INSTRUCTIONS",
    "identity": "tunegate.training.rewards:IDENTITY",
})


def is_custom(name: str) -> bool:
    """A ``module:function`` reward of the user's, not a registry name."""
    return ":" in name


def check_reward(name: str, suites: Mapping[str, Suite] | None, where: str) -> None:
    """``name`` is a registered reward whose suite the stage's prompts come from and whose metric that suite
    scores, or a ``module:function`` that imports and is callable. ``suites``: the prompt suites (None: the
    prompts are a plain dataset, which only a custom reward can score)."""
    if is_custom(name):
        if not callable(load_object(name)):
            raise TunegateError(f"{where}: reward '{name}' is not callable")
        return
    if name not in REWARDS:
        raise TunegateError(f"{where}: unknown reward '{name}' (known: {', '.join(REWARDS.names())}; "
                            "or module:function)")
    reward = REWARDS.get(name)
    if suites is None or reward.suite not in suites:
        raise TunegateError(f"{where}: reward '{name}' scores suite '{reward.suite}' prompts, and the stage's "
                            f"data has {'none' if suites is None else ', '.join(suites) or 'none'} "
                            f"(data: {{suites: {{{reward.suite}: {{...}}}}}})")
    metrics = [m.name for m in suites[reward.suite].metric_specs()]
    if reward.metric not in metrics:
        raise TunegateError(f"{where}: reward '{name}' reads {reward.suite}.{reward.metric}, which this "
                            f"{reward.suite} variant does not score (it scores: {', '.join(metrics)})")


def reward_function(name: str) -> Callable[..., list[float | None]]:
    """The TRL reward function ``name`` names: a registered reward's ``SuiteReward``, or the user's function."""
    return load_object(name) if is_custom(name) else SuiteReward(name, REWARDS.get(name))


class SuiteReward:
    """A TRL reward function scoring each completion with its row's suite (TRL logs it as ``rewards/<name>``)."""

    def __init__(self, name: str, reward: Reward) -> None:
        self.__name__ = name
        self.reward = reward

    def __call__(self, prompts: Sequence[Any], completions: Sequence[Any], suite: Sequence[str] | None = None,
                 item: Sequence[str] | None = None, **_: Any) -> list[float | None]:
        if suite is None or item is None:
            return [None] * len(completions)
        return [self.one(s, i, completion_text(c)) for s, i, c in zip(suite, item, completions)]

    def one(self, suite_json: str, item_json: str, response: str) -> float | None:
        scorer = suite_from_json(suite_json)
        if scorer.name != self.reward.suite:
            return None
        units = item_units(scorer.score(item_from_json(item_json), response).scores[self.reward.metric])
        return sum(units) / len(units)


def completion_text(completion: Any) -> str:
    """The text of one completion: TRL gives a string, or a list of messages (conversational prompts)."""
    if isinstance(completion, str):
        return completion
    return "".join(str(m.get("content") or "") for m in completion if m.get("role") == "assistant")


def suite_json(suite: Suite) -> str:
    return json.dumps({"name": suite.name, "config": suite.config()}, sort_keys=True)


@functools.lru_cache(maxsize=64)
def suite_from_json(text: str) -> Suite:
    """The suite a row names (built once per config): its scorer is the eval's."""
    data = json.loads(text)
    cls, options = parse_suite_options(data["name"], data["config"], f"reward: suite '{data['name']}'")
    return cls(options)


def item_json(item: EvalItem) -> str:
    return json.dumps(dataclasses.asdict(item), sort_keys=True, default=list)


def item_from_json(text: str) -> EvalItem:
    data = json.loads(text)
    return EvalItem(**{**data, "messages": tuple(data["messages"]), "choices": tuple(data["choices"])})


def prompt_rows(suite: Suite, items: Sequence[EvalItem]) -> list[dict[str, Any]]:
    """GRPO rows of a suite's items: the prompt as the eval asks it (chat messages, or text in completion
    mode) and the suite and item the rewards score it with."""
    tag = suite_json(suite)
    return [{"prompt": [dict(m) for m in item.messages] if suite.chat and item.messages else item.prompt,
             SUITE_COLUMN: tag, ITEM_COLUMN: item_json(item)} for item in items]

