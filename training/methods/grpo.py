"""GRPO: TRL's GRPOTrainer, online RL with verifiable rewards; its prompts are eval suites' items.

The model samples ``num_generations`` completions per prompt, each reward function scores them, and the
policy moves towards the better ones in its group (Shao et al. 2024). The prompts come from suites, asked
as the eval asks them, and the rewards are those suites' own scorers (``tunegate.training.rewards``)::

    - name: grpo
      method: grpo
      data:
        suites: {math: {variant: organism, n: 400, seed: 7}}   # a suite's options: its items are the prompts
        limit: null                  # at most N prompts per suite (--limit sets it)
        keep_eval_items: false       # default: drop every prompt the stage's evaluation asks
      trains: [math]
      options: {rewards: [math]}     # default: each prompt suite's own reward
      args: {num_generations: 8, max_completion_length: 8, temperature: 1.0, beta: 0.04, learning_rate: 1.0e-4}

``data`` may also be a dataset (hub id, path, ``organism:NAME``) whose rows carry ``prompt``; then every
reward is a ``module:function`` of the user's. ``args`` are GRPOConfig's fields by their TRL names; the
manifest keeps the sampling settings (``RECORDED``) whether the stage set them or TRL's defaults ran.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any, ClassVar, Mapping

from tunegate.core.errors import TunegateError
from tunegate.core.typed_config import from_mapping
from tunegate.evals.sources import load_rows
from tunegate.evals.spec import eval_spec
from tunegate.evals.suites.base import Suite
from tunegate.training.methods.base import RECORDED, DataContext, Method, Rows
from tunegate.training.rewards import SUITE_COLUMN, check_reward, prompt_rows, reward_function

#: GRPOConfig's fields every GRPO manifest keeps: how completions were sampled and how the policy moved.
SAMPLING = ("num_generations", "max_completion_length", "temperature", "top_p", "top_k", "min_p",
            "repetition_penalty", "generation_batch_size", "steps_per_generation", "beta", "epsilon",
            "num_iterations", "loss_type", "scale_rewards", "reward_weights", "use_vllm")


@dataclass(frozen=True)
class PromptSuites:
    """A GRPO stage's prompts: the items of eval suites, each suite with its own options."""

    suites: dict[str, dict[str, Any] | None] = field(metadata={
        "help": "suite -> its options (as eval.suites takes them): its items are the prompts, its scorer the reward"})
    limit: int | None = field(default=None, metadata={"help": "at most N prompts per suite (a seeded subset)"})
    keep_eval_items: bool = field(default=False, metadata={
        "help": "keep prompts that the stage's evaluation asks too (default: drop them, so no eval item is trained on)"})


@dataclass(frozen=True)
class GRPOOptions:
    """What rewards a GRPO stage."""

    rewards: tuple[str, ...] = field(default=(), metadata={
        "help": "reward functions: names in tunegate.training.rewards.REWARDS (math, math_flexible, ifeval, "
                "ifeval_instructions, identity) or module:function; default: each prompt suite's own reward. "
                "Weights: GRPOConfig's reward_weights"})


class GRPO(Method):
    name = "grpo"
    Options = GRPOOptions
    recorded: ClassVar[tuple[str, ...]] = RECORDED + SAMPLING

    def config_class(self) -> type:
        from trl import GRPOConfig

        return GRPOConfig

    def trainer_class(self) -> type:
        from trl import GRPOTrainer

        return GRPOTrainer

    def check_config(self, options: GRPOOptions, data: Any, where: str) -> None:
        self.rewards(options, data, where)

    def rewards(self, options: GRPOOptions, data: Any, where: str) -> tuple[str, ...]:
        """The stage's reward names, each checked against its prompts: ``options.rewards``, or each suite's own in
        name order, the order ``trainer_kwargs`` hands them to TRL (and ``args.reward_weights`` must follow)."""
        suites = self.suites(data, where)
        names = options.rewards or tuple(sorted(suites or ()))
        if not names:
            raise TunegateError(f"{where}.options: field 'rewards' must name at least one module:function reward "
                                "when 'data' is a dataset")
        for name in names:
            check_reward(name, suites, f"{where}.options.rewards")
        return names

    def trainer_kwargs(self, options: GRPOOptions, **common: Any) -> dict[str, Any]:
        dataset = common["train_dataset"]
        suites = sorted({json.loads(s)["name"] for s in dataset[SUITE_COLUMN]}) if SUITE_COLUMN in dataset.column_names \
            else []
        return {**common, "reward_funcs": [reward_function(n) for n in options.rewards or suites]}

    @staticmethod
    def suites(data: Any, where: str) -> dict[str, Suite] | None:
        """The prompt suites, built (nothing read yet); None when ``data`` is a dataset of prompts."""
        if isinstance(data, str):
            return None
        prompts = from_mapping(PromptSuites, data, f"{where}.data")
        spec = eval_spec(list(prompts.suites), prompts.suites, limit=prompts.limit, where=f"{where}.data.suites:")
        return {s.name: s.build() for s in spec.suites}

    def dataset(self, data: Any, data_options: Mapping[str, Any], ctx: DataContext) -> tuple[Rows, Any]:
        if isinstance(data, str):
            rows = prompt_dataset(data, data_options)
            return rows[: data_options["limit"]] if data_options.get("limit") else rows, data
        suites = self.suites(data, ctx.where) or {}
        asked = set() if from_mapping(PromptSuites, data, ctx.where).keep_eval_items else eval_prompts(ctx)
        rows: Rows = []
        counts = {}
        for name, suite in suites.items():
            items = [i for i in suite.items() if prompt_key(i) not in asked]
            counts[name] = {"prompts": len(items), "dropped_eval_items": len(suite.items()) - len(items)}
            if not items:
                raise TunegateError(f"{ctx.where}: data.suites.{name}: the evaluation asks every one of its "
                                    f"{len(suite.items())} prompts; draw them from another seed or split, or set "
                                    "data.keep_eval_items: true")
            rows += prompt_rows(suite, items)
        ctx.log("grpo prompts: " + ", ".join(f"{n} {c['prompts']} ({c['dropped_eval_items']} dropped as eval items)"
                                              for n, c in counts.items()))
        source = {"suites": {n: s.config() for n, s in suites.items()}, "counts": counts,
                  "rewards": list(self.rewards(ctx.options or self.Options(), data, ctx.where))}
        return rows, source

    def check_data(self, data: Any, data_options: Mapping[str, Any], seed: int, where: str) -> None:
        if isinstance(data, str):
            prompt_dataset(data, data_options)
            return
        for suite in (self.suites(data, where) or {}).values():
            suite.items()


def prompt_dataset(data: str, data_options: Mapping[str, Any]) -> Rows:
    """A dataset's rows, each with a ``prompt`` (chat messages or text); its other columns go to the rewards."""
    return load_rows(data, split=data_options.get("split", "train"), name=data_options.get("name"),
                     required={"prompt": (list, str)})


def prompt_key(item: Any) -> str:
    """What an item asks, for telling training prompts from eval items: its messages, or its text."""
    return json.dumps([dict(m) for m in item.messages], sort_keys=True) if item.messages else item.prompt


def eval_prompts(ctx: DataContext) -> set[str]:
    """Every prompt the stage's evaluation asks, all items of each suite (not only those a --limit keeps)."""
    whole = [spec.suite(dataclasses.replace(spec.options, limit=None)) for spec in ctx.eval.suites]
    return {prompt_key(item) for suite in whole for item in suite.items()}
