"""A training stage's progress: one bar (steps, loss, eta) through tunegate's progress mechanism.

transformers' own ``ProgressCallback`` draws a tqdm bar and prints every log dict beside it
(``{'loss': '2.231', 'grad_norm': '2.927', ...}``); ``StageProgress`` replaces it (and the
``PrinterCallback`` that ``disable_tqdm`` would add) with a bar that shows the latest loss, and in
json mode a ``train_log`` line per logging step::

    train sft: 100%|██████████| 62/62 [00:21<00:00,  2.9step/s, loss=0.412]
    {"event": "train_log", "stage": "sft", "step": 5, "loss": 11.94, "grad_norm": 20.01, "learning_rate": 0.0003, ...}
"""

from __future__ import annotations

from typing import Any

from transformers import PrinterCallback, ProgressCallback, TrainerCallback

from tunegate.core.progress import bar, emit


class StageProgress(TrainerCallback):
    """The stage's bar on the main process; ``install`` swaps it in for transformers' own."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.bar: Any = None

    @classmethod
    def install(cls, trainer: Any, name: str) -> "StageProgress":
        for default in (ProgressCallback, PrinterCallback):
            trainer.remove_callback(default)
        callback = cls(name)
        trainer.add_callback(callback)
        return callback

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if state.is_world_process_zero:
            self.bar = bar(state.max_steps, f"train {self.name}", unit="step", initial=state.global_step)

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self.bar is not None:
            self.bar.update(state.global_step - self.bar.n)

    def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **kwargs: Any) -> None:
        if self.bar is None or not logs:
            return
        emit("train_log", stage=self.name, step=state.global_step,
             **{k: v for k, v in logs.items() if isinstance(v, (int, float)) and k != "total_flos"})
        loss = logs.get("loss", None if "loss" in self.bar.fields else logs.get("train_loss"))
        if loss is not None:  # the latest logged loss (the run's mean when no step logged one)
            self.bar.set_postfix(loss=round(float(loss), 4))

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
