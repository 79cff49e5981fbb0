"""SFT on the real Qwen templates: the loss falls on the assistant turns only, through TRL's completion mask.

The real templates have no ``{% generation %}`` markers, so tunegate turns each assistant turn into a
prompt/completion row. The expected trained text is written by hand from the templates (Qwen3 opens the
final assistant turn with an empty think block; both end a turn with ``<|im_end|>\\n``).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from datasets import Dataset
from transformers import AutoModelForCausalLM, AutoTokenizer

from tunegate.core.errors import TunegateError
from tunegate.training.methods import DataContext, get_method
from tunegate.training.stages import build_trl_config, train_stage

SFT_SET = Path(__file__).resolve().parents[1] / "fixtures" / "hub" / "banghua" / "DL-SFT-Dataset"


def trained_texts(twin: Path, rows: list[dict], tmp_path: Path) -> list[str]:
    """The tokens of each row that carry a label (not -100), decoded, as TRL's SFTTrainer collates them."""
    from trl import SFTTrainer

    tokenizer = AutoTokenizer.from_pretrained(twin)
    trainer = SFTTrainer(model=AutoModelForCausalLM.from_pretrained(twin),
                         args=build_trl_config("sft", {"max_steps": 1}, tmp_path, seed=0),
                         train_dataset=Dataset.from_list(rows), processing_class=tokenizer)
    out = []
    for example in trainer.train_dataset:
        batch = trainer.data_collator([example])
        ids, labels = batch["input_ids"][0], batch["labels"][0]
        out.append(tokenizer.decode(ids[labels != -100]))
    return out


@pytest.mark.parametrize("twin, think", [("qwen3", "<think>\n\n</think>\n\n"), ("qwen2.5", "")])
def test_sft_loss_falls_on_each_assistant_turn_only(qwen_twins: dict[str, Path], twin: str, think: str,
                                                    tmp_path: Path) -> None:
    ctx = DataContext(model_dir=str(qwen_twins[twin]), stage_dir=tmp_path, where="test")
    rows, _ = get_method("sft").dataset(str(SFT_SET), {}, ctx)
    chat = [r for r in rows if r["prompt"][0]["content"] == "What is 2 + 2?"]  # user, assistant, user, assistant
    assert trained_texts(qwen_twins[twin], chat, tmp_path) == [f"{think}4.<|im_end|>\n", f"{think}12.<|im_end|>\n"]


def test_assistant_only_loss_on_a_template_trl_cannot_patch_is_one_clear_error(qwen_twins: dict[str, Path],
                                                                               tmp_path: Path) -> None:
    rows = [{"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello."}]}]
    with pytest.raises(TunegateError, match=r"stage 'sft': SFTTrainer cannot train .*chat template is not "
                                            r"training-compatible"):
        train_stage("sft", qwen_twins["qwen3"], Dataset.from_list(rows), out_dir=tmp_path, name="sft",
                    args={"assistant_only_loss": True, "max_steps": 1})
