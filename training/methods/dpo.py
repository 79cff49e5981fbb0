"""DPO: TRL's DPOTrainer on preference pairs, read from a dataset or built by the identity builder.

    data: my-org/preferences                         # rows with chosen/rejected (and prompt)
    data: {builder: identity, prompts: organism:identity, old_name: Tiny, new_name: Deep Tiny,
           system_prompt: null, max_new_tokens: 32, limit: 12, unnamed: keep}   # keep | skip | introduce
"""

from __future__ import annotations

from typing import Any, ClassVar, Mapping

from tunegate.core.errors import TunegateError
from tunegate.core.files import write_json_atomic
from tunegate.evals.sources import load_rows
from tunegate.training.conversations import load_identity_prompts
from tunegate.training.identity_dpo import NEUTRAL_SYSTEM_PROMPT, UNNAMED, build_identity_dpo
from tunegate.training.methods.base import RECORDED, DataContext, Method, Rows

BUILDER_KEYS = ("prompts", "old_name", "new_name")
#: The fields of a ready preference dataset's rows (TRL's DPOTrainer: ``prompt`` optional, with chats or text).
PAIR_FIELDS = {"chosen": (list, str), "rejected": (list, str)}


class DPO(Method):
    name = "dpo"
    recorded: ClassVar[tuple[str, ...]] = RECORDED + ("beta", "loss_type")

    def config_class(self) -> type:
        from trl import DPOConfig

        return DPOConfig

    def trainer_class(self) -> type:
        from trl import DPOTrainer

        return DPOTrainer

    def dataset(self, data: Any, data_options: Mapping[str, Any], ctx: DataContext) -> tuple[Rows, Any]:
        if isinstance(data, str):  # a ready preference dataset: prompt/chosen/rejected
            rows = self._pairs(data, data_options, ctx.where)
            return rows[: data_options["limit"]] if data_options.get("limit") else rows, data
        self._check_builder(data, ctx.where)
        prompts = load_identity_prompts(data["prompts"], limit=data.get("limit"))
        backend = ctx.eval.load_backend(ctx.model_dir)
        rows, report = build_identity_dpo(
            backend, prompts, old_name=data["old_name"], new_name=data["new_name"],
            system_prompt=data.get("system_prompt", NEUTRAL_SYSTEM_PROMPT),  # null: no system turn
            max_new_tokens=int(data.get("max_new_tokens", 64)),
            unnamed=data.get("unnamed", "skip" if data.get("drop_unchanged") else "keep"))
        if hasattr(backend, "close"):
            backend.close()  # a vLLM engine gives the GPU back before training starts
        write_json_atomic(ctx.stage_dir / "dpo_pairs.json", {"report": report.to_dict(), "pairs": rows})
        ctx.log(f"identity DPO pairs: {report.kept} kept, {report.renamed} renamed, {len(report.unchanged)} without "
                f"'{data['old_name']}' ({report.unnamed}), {len(report.failures)} failed")
        return rows, dict(data)

    def check_data(self, data: Any, data_options: Mapping[str, Any], seed: int, where: str) -> None:
        if isinstance(data, str):
            self._pairs(data, data_options, where)
            return
        self._check_builder(data, where)
        load_identity_prompts(data["prompts"], limit=data.get("limit"))

    @staticmethod
    def _pairs(data: str, data_options: Mapping[str, Any], where: str) -> Rows:
        try:
            return load_rows(data, split=data_options.get("split", "train"), name=data_options.get("name"),
                             required=PAIR_FIELDS)
        except TunegateError as exc:
            raise TunegateError(f"{where}: field 'data': {exc}") from None

    @staticmethod
    def _check_builder(data: Any, where: str) -> None:
        if not isinstance(data, Mapping) or data.get("builder") != "identity":
            raise TunegateError(f"{where}: field 'data' must be a dataset or "
                                "{builder: identity, prompts: ..., old_name: ..., new_name: ...}")
        for key in BUILDER_KEYS:
            if key not in data:
                raise TunegateError(f"{where}: field 'data.{key}' is missing")
        if data.get("unnamed", "keep") not in UNNAMED:
            raise TunegateError(f"{where}: field 'data.unnamed' must be one of {', '.join(UNNAMED)}, "
                                f"got {data['unnamed']!r}")
