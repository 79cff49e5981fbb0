"""SFT: TRL's SFTTrainer on conversations (``{"messages": [...]}``; ShareGPT ``conversations`` converted).

    data: organism:sft                 # or a hub id / local JSONL
    data_options: {limit: 100, split: train}
"""

from __future__ import annotations

from typing import Any, Mapping

from tunegate.evals.errors import TunegateError
from tunegate.training.conversations import load_conversations
from tunegate.training.methods.base import DataContext, Method, Rows


class SFT(Method):
    name = "sft"

    def config_class(self) -> type:
        from trl import SFTConfig

        return SFTConfig

    def trainer_class(self) -> type:
        from trl import SFTTrainer

        return SFTTrainer

    def dataset(self, data: Any, options: Mapping[str, Any], ctx: DataContext) -> tuple[Rows, Any]:
        if not isinstance(data, str):
            raise TunegateError(f"{ctx.where}: field 'data' must be a dataset id or path for sft")
        return load_conversations(data, seed=ctx.seed, **options), data

    def check_data(self, data: Any, options: Mapping[str, Any], seed: int, where: str) -> None:
        if not isinstance(data, str):
            raise TunegateError(f"{where}: field 'data' must be a dataset id or path for sft")
        load_conversations(data, seed=seed, **{**dict(options), "limit": None})
