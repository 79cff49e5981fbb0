"""SFT: TRL's SFTTrainer on conversations (``{"messages": [...]}``; ShareGPT ``conversations`` converted).

    data: organism:sft                 # or a hub id / local JSONL
    data_options: {limit: 100, split: train}

The loss falls on the assistant turns only: each conversation becomes one prompt/completion row per
assistant turn (``conversations.assistant_turn_rows``), which TRL masks to the completion. A stage that
sets ``assistant_only_loss: true`` (a template with ``{% generation %}`` markers, as the organism's) keeps
whole conversations for TRL to mask; ``completion_only_loss: false`` trains on every token.
"""

from __future__ import annotations

from typing import Any, Mapping

from tunegate.core.errors import TunegateError
from tunegate.training.conversations import assistant_turn_rows, load_conversations
from tunegate.training.methods.base import DataContext, Method, Rows


class SFT(Method):
    name = "sft"

    def config_class(self) -> type:
        from trl import SFTConfig

        return SFTConfig

    def trainer_class(self) -> type:
        from trl import SFTTrainer

        return SFTTrainer

    def dataset(self, data: Any, data_options: Mapping[str, Any], ctx: DataContext) -> tuple[Rows, Any]:
        if not isinstance(data, str):
            raise TunegateError(f"{ctx.where}: field 'data' must be a dataset id or path for sft")
        rows = load_conversations(data, seed=ctx.seed, **data_options)
        whole = ctx.args.get("assistant_only_loss") or ctx.args.get("completion_only_loss") is False
        return (rows if whole else assistant_turn_rows(rows)), data

    def check_data(self, data: Any, data_options: Mapping[str, Any], seed: int, where: str) -> None:
        if not isinstance(data, str):
            raise TunegateError(f"{where}: field 'data' must be a dataset id or path for sft")
        load_conversations(data, seed=seed, **{**dict(data_options), "limit": None})
