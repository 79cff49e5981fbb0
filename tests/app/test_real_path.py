"""The two real pipeline configs, end to end on CPU: `tunegate run` on 2-layer twins of the real Qwen checkpoints.

base -> eval -> train -> eval -> compare -> report, with the real tokenizer, chat templates, dataset layouts
and suite settings; only depth, item counts, generation budgets and training steps shrink, through the
README's `--limit` and `--set` overrides. What tunegate recorded is checked against plain forward passes
over hand-rendered prompts (tests/twin_helpers.py).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tunegate.cli import main
from tunegate.evals.records import RunRecord
from tunegate.evals.suites import get_suite
from tests.twin_helpers import argmax_greedy, load_fp32, next_token_logprobs

ROOT = Path(__file__).resolve().parents[2]
HUB = ROOT / "tests" / "fixtures" / "hub"
SYSTEM = "You're a helpful assistant."  # the system prompt of configs/qwen2.5-0.5b-identity-dpo.yaml
QWEN_DEFAULT_SYSTEM = "You are Qwen, created by Alibaba Cloud. You are a helpful assistant."
LIMIT = 2
LORA = "{r: 8, lora_alpha: 16, target_modules: all-linear}"


def quick(shared_data: Path) -> list[str]:
    """The overrides of a CPU run: the shared copies of IFEval/GSM8K/MMLU, few items, short generations."""
    return ["--limit", str(LIMIT), "--quiet",
            "--set", f"eval.suites.ifeval.source={shared_data / 'ifeval' / 'input_data.jsonl'}",
            "--set", f"eval.suites.math.source={shared_data / 'gsm8k'}",
            "--set", f"eval.suites.knowledge.source={shared_data / 'mmlu'}",
            "--set", "eval.suites.identity.max_new_tokens=8", "--set", "eval.suites.ifeval.max_new_tokens=8",
            "--set", "eval.suites.math.max_new_tokens=8"]


@pytest.fixture(scope="module")
def real_runs(qwen_twins: dict[str, Path], shared_data: Path, tmp_path_factory) -> dict[str, tuple[Path, int]]:
    tmp = tmp_path_factory.mktemp("real")
    common = quick(shared_data) + ["--cache-dir", str(tmp / "cache"), "--set", "stages.0.args.logging_steps=1"]
    dpo = ["run", str(ROOT / "configs" / "qwen2.5-0.5b-identity-dpo.yaml"), "--out", str(tmp / "dpo"), *common,
           "--set", f"base_model={qwen_twins['qwen2.5']}",
           "--set", f"stages.0.data.prompts={HUB / 'mrfakename' / 'identity'}",
           "--set", "stages.0.data.max_new_tokens=8",
           "--set", "stages.0.args.max_steps=1", "--set", "stages.0.args.per_device_train_batch_size=2",
           "--set", f"stages.0.lora={LORA}"]
    sft = ["run", str(ROOT / "configs" / "qwen3-0.6b-base-sft.yaml"), "--out", str(tmp / "sft"), *common,
           "--set", f"base_model={qwen_twins['qwen3']}",
           "--set", f"stages.0.data={HUB / 'banghua' / 'DL-SFT-Dataset'}",
           "--set", "stages.0.args.max_steps=1", "--set", "stages.0.args.gradient_accumulation_steps=1",
           "--set", f"stages.0.lora={LORA}"]  # a full fine-tune of the 2-layer twin needs 5 GB (Adam on 187M)
    return {"dpo": (tmp / "dpo", main(dpo)), "sft": (tmp / "sft", main(sft))}


@pytest.fixture(scope="module")
def qwen25_fp32(qwen_twins: dict[str, Path]) -> tuple:
    """The 2-layer Qwen2.5 twin as tunegate's backend runs it on CPU (float32), and its tokenizer."""
    return load_fp32(qwen_twins["qwen2.5"])


def _record(run: Path, stage: str) -> RunRecord:
    return RunRecord.load(run / "records" / f"{stage}.json")


@pytest.mark.slow
@pytest.mark.parametrize("name, stage", [("dpo", "dpo"), ("sft", "sft")])
def test_real_config_runs_base_eval_train_eval_compare_report(real_runs, name: str, stage: str) -> None:
    run, code = real_runs[name]
    summary = json.loads((run / "summary.json").read_text())
    assert summary["error"] is None and code == (0 if summary["passed"] else 1)
    assert summary["stages"] == ["base", stage] and f"--limit {LIMIT}" in summary["overrides"]
    assert (run / "comparisons" / f"{stage}_vs_base.json").is_file() and (run / "report.html").is_file()
    assert {s: len(r.items) for s, r in _record(run, stage).suites.items()} == dict.fromkeys(
        ["identity", "ifeval", "math", "knowledge"], LIMIT)


@pytest.mark.slow
def test_identity_dpo_builder_answers_through_the_real_template_with_the_configs_system_prompt(
        real_runs, qwen25_fp32) -> None:
    run, _ = real_runs["dpo"]
    pairs = json.loads((run / "stages" / "dpo" / "dpo_pairs.json").read_text())["pairs"]
    assert len(pairs) == LIMIT
    first = pairs[0]
    assert first["prompt"][0] == {"role": "system", "content": SYSTEM}
    question = first["prompt"][1]["content"]
    rendered = (f"<|im_start|>system\n{SYSTEM}<|im_end|>\n<|im_start|>user\n{question}<|im_end|>\n"
                "<|im_start|>assistant\n")
    answer = argmax_greedy(*qwen25_fp32, rendered, 8, stop_ids=(151643, 151645))
    assert first["rejected"][0]["content"] == answer.strip()


@pytest.mark.slow
def test_identity_eval_asks_with_the_builders_system_prompt_and_records_it(real_runs, qwen25_fp32) -> None:
    run, _ = real_runs["dpo"]
    for stage in ("base", "dpo"):
        assert _record(run, stage).suites["identity"].config["system_prompt"] == SYSTEM
    item = next(s for s in _record(run, "base").suites["identity"].items if s.group != "multi_turn")
    rendered = (f"<|im_start|>system\n{SYSTEM}<|im_end|>\n<|im_start|>user\n{item.prompt}<|im_end|>\n"
                "<|im_start|>assistant\n")  # Qwen's default system prompt ("You are Qwen, ...") replaced
    assert item.response == argmax_greedy(*qwen25_fp32, rendered, 8, stop_ids=(151643, 151645))


@pytest.mark.slow
def test_gsm8k_few_shot_goes_through_the_chat_template_as_earlier_turns(real_runs, qwen25_fp32, shared_data) -> None:
    run, _ = real_runs["dpo"]
    result = _record(run, "base").suites["math"]
    assert (result.config["fewshot"], result.config["chat"]) == (5, True)
    suite = get_suite("math", source=str(shared_data / "gsm8k"), fewshot=5, chat=True, limit=LIMIT)
    question = {it.id: it.meta["question"] for it in suite.items()}
    item = result.items[0]
    turns = "".join(f"<|im_start|>user\nQuestion: {s['question']}\nAnswer:<|im_end|>\n"
                    f"<|im_start|>assistant\n{s['answer']}<|im_end|>\n" for s in suite.fewshot_shots())
    rendered = (f"<|im_start|>system\n{QWEN_DEFAULT_SYSTEM}<|im_end|>\n{turns}"
                f"<|im_start|>user\nQuestion: {question[item.item_id]}\nAnswer:<|im_end|>\n<|im_start|>assistant\n")
    assert item.response == argmax_greedy(*qwen25_fp32, rendered, 8, stop_ids=(151643, 151645))


@pytest.mark.slow
def test_mmlu_loglikelihoods_are_the_real_tokenizers_spaced_letters(real_runs, qwen25_fp32) -> None:
    run, _ = real_runs["dpo"]
    item = _record(run, "base").suites["knowledge"].items[0]
    assert item.prompt.endswith("\nAnswer:")
    expected = next_token_logprobs(*qwen25_fp32, item.prompt, ["ĠA", "ĠB", "ĠC", "ĠD"])
    assert item.meta["logprobs"] == pytest.approx(expected, abs=1e-4)


@pytest.mark.slow
def test_ifeval_sends_the_real_prompts_whole(real_runs, shared_data) -> None:
    run, _ = real_runs["sft"]
    prompts = {f"ifeval-{json.loads(line)['key']}": json.loads(line)["prompt"]
               for line in (shared_data / "ifeval" / "input_data.jsonl").read_text().splitlines()}
    items = _record(run, "base").suites["ifeval"].items
    assert [s.prompt for s in items] == [prompts[s.item_id] for s in items]


@pytest.mark.slow
def test_qwen3_records_keep_the_choice_to_strip_thinking(real_runs) -> None:
    run, _ = real_runs["sft"]
    for stage in ("base", "sft"):
        suites = _record(run, stage).suites
        assert all(suites[s].config["strip_thinking"] for s in ("identity", "ifeval", "math"))


@pytest.mark.slow
def test_lora_all_linear_adapts_every_qwen_projection(real_runs) -> None:
    run, _ = real_runs["dpo"]
    adapter = json.loads((run / "stages" / "dpo" / "adapter" / "adapter_config.json").read_text())
    # PEFT saves all-linear resolved to module paths (model.layers.0.self_attn.q_proj, ...): 7 per layer, no lm_head
    modules = adapter["target_modules"]
    assert {m.rsplit(".", 1)[-1] for m in modules} == {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj",
                                                       "down_proj"}
    assert len(set(modules)) == 7 * 2  # every projection of both layers of the 2-layer twin
    assert _record(run, "dpo").fingerprint != _record(run, "base").fingerprint


@pytest.mark.slow
def test_sft_trains_one_prompt_completion_row_per_assistant_turn(real_runs) -> None:
    run, _ = real_runs["sft"]
    manifest = json.loads((run / "stages" / "sft" / "manifest.json").read_text())
    assert manifest["examples"] == LIMIT  # the set's first conversations have one assistant turn each
