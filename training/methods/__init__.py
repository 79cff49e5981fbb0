"""The training-method registry.

    sft   supervised fine-tuning on conversations (TRL SFTTrainer)
    dpo   direct preference optimisation on chosen/rejected pairs (TRL DPOTrainer)
    grpo  online RL: sampled completions scored by verifiable rewards, group-relative advantages (TRL GRPOTrainer)
    rloo  online RL as grpo, with leave-one-out baselines (TRL RLOOTrainer)

A new method (PPO, say) is one module here with a ``Method`` subclass plus one line in ``METHODS``::

    get_method("dpo").config_class()   # trl.DPOConfig
    get_method("ppo")                  # TunegateError: unknown training method 'ppo' (known: dpo, grpo, rloo, sft)
"""

from __future__ import annotations

from tunegate.core.registry import Registry
from tunegate.training.methods.base import DataContext, Method

METHODS: Registry[type[Method]] = Registry("training method", {
    "sft": "tunegate.training.methods.sft:SFT",
    "dpo": "tunegate.training.methods.dpo:DPO",
    "grpo": "tunegate.training.methods.grpo:GRPO",
    "rloo": "tunegate.training.methods.rloo:RLOO",
})


def get_method(name: str) -> Method:
    return METHODS.get(name)()


__all__ = ["METHODS", "DataContext", "Method", "get_method"]
