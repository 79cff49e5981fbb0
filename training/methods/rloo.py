"""RLOO: TRL's RLOOTrainer, online RL with the REINFORCE leave-one-out baseline (Ahmadian et al. 2024).

The same shape as GRPO (tunegate.training.methods.grpo): prompts from eval suites, the suites' scorers
as rewards, ``options: {rewards: [...]}``; ``args`` are RLOOConfig's fields by their TRL names.
"""

from __future__ import annotations

from tunegate.training.methods.grpo import GRPO


class RLOO(GRPO):
    name = "rloo"

    def config_class(self) -> type:
        from trl import RLOOConfig

        return RLOOConfig

    def trainer_class(self) -> type:
        from trl import RLOOTrainer

        return RLOOTrainer
