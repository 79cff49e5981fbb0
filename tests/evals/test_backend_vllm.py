"""The ``vllm`` backend on CPU: what can run without vLLM and a GPU (vLLM itself runs on the nightly GPU job).

Without vLLM or a GPU, ``tunegate eval --backend vllm`` is one line saying which. The requests it would hand
to vLLM are built by pure functions from the runner's real requests (a GSM8K suite's settings, the
organism's generation_config.json); the log-likelihood read-out is checked against the hf backend by
feeding it the organism's own prompt log-probs in vLLM's ``prompt_logprobs`` layout.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import torch

from tunegate.cli import main
from tunegate.evals.backends.hf import HFBackend
from tunegate.evals.backends.vllm import (LOGLIKELIHOOD_SAMPLING, continuation_logprob, generation_batch,
                                          generation_defaults, loglikelihood_batch, missing_requirements,
                                          sampling_kwargs)
from tunegate.evals.requests import GenerationRequest, LoglikelihoodRequest
from tunegate.evals.suites.math import STOP, GSM8KSuite


@pytest.fixture(scope="module")
def hf(organism_dir: Path) -> HFBackend:
    return HFBackend(str(organism_dir), device="cpu", dtype="float32", batch_size=4)


def test_eval_without_vllm_or_gpu_is_one_line_saying_which(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    has_vllm, has_gpu = importlib.util.find_spec("vllm") is not None, torch.cuda.is_available()
    if has_vllm and has_gpu:
        pytest.skip("vLLM and a GPU are here: the vllm backend runs (nightly GPU job)")
    code = main(["eval", "organism", "--suites", "math", "--limit", "2", "--backend", "vllm",
                 "--out", str(tmp_path / "r.json"), "--quiet", "--suite-option", 'math.variant="organism"'])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith("tunegate: error: backend 'vllm': ")
    assert ("vLLM is not installed (pip install 'tunegate[vllm]')" in err[0]) == (not has_vllm)
    assert ("no CUDA GPU is visible" in err[0]) == (not has_gpu)


def test_missing_requirements_names_each_missing_piece() -> None:
    assert missing_requirements(True, True) is None
    assert "not installed" in missing_requirements(False, True) and "GPU" not in missing_requirements(False, True)
    assert "no CUDA GPU" in missing_requirements(True, False) and "installed" not in missing_requirements(True, False)


def _gsm8k_request(shared_data: Path, hf: HFBackend, **changes) -> GenerationRequest:
    """The request the runner builds for the first GSM8K item (zero-shot completion)."""
    suite = GSM8KSuite(source=str(shared_data / "gsm8k"), chat=False, max_new_tokens=48, limit=1)
    item, settings = suite.items()[0], suite.generation()
    return GenerationRequest(prompt=item.prompt, max_new_tokens=settings.max_new_tokens, stop=settings.stop,
                             do_sample=settings.do_sample, temperature=settings.temperature, **changes)


def test_greedy_request_maps_to_temperature_0_with_the_checkpoints_eos_ids(shared_data: Path, hf: HFBackend,
                                                                           organism_dir: Path) -> None:
    eos = json.loads((organism_dir / "generation_config.json").read_text())["eos_token_id"]
    kw = sampling_kwargs(_gsm8k_request(shared_data, hf), generation_defaults(organism_dir))
    assert kw == {"max_tokens": 48, "temperature": 0.0, "skip_special_tokens": True, "repetition_penalty": 1.0,
                  "stop": list(STOP), "stop_token_ids": eos}


def test_greedy_is_plain_argmax_whatever_the_generation_config_penalty(shared_data: Path, hf: HFBackend,
                                                                      organism_copy: Path) -> None:
    # one rule with the hf backend (tests/evals/test_backend_twins.py): no repetition_penalty in greedy decoding
    path = organism_copy / "generation_config.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), "repetition_penalty": 1.3}))
    assert sampling_kwargs(_gsm8k_request(shared_data, hf), generation_defaults(organism_copy))["repetition_penalty"] == 1.0


def test_generation_stops_at_the_templates_end_of_turn_as_the_hf_backend(qwen_twins: dict[str, Path]) -> None:
    from transformers import AutoTokenizer

    from tunegate.evals.backends._tokens import stop_token_ids

    twin = qwen_twins["qwen3"]  # Qwen3-0.6B-Base: eos <|endoftext|>, its chat turns end with <|im_end|>
    tokenizer = AutoTokenizer.from_pretrained(twin)
    assert generation_defaults(twin)["eos_token_id"] == 151643
    assert generation_defaults(twin, tokenizer)["eos_token_id"] == [151643, 151645] == stop_token_ids(tokenizer, 151643)


def test_sampled_request_keeps_its_temperature_and_generates_top_k(shared_data: Path, hf: HFBackend,
                                                                   organism_dir: Path) -> None:
    import dataclasses

    req = dataclasses.replace(_gsm8k_request(shared_data, hf), do_sample=True, temperature=0.7)
    kw = sampling_kwargs(req, generation_defaults(organism_dir))
    assert (kw["temperature"], kw["top_k"], kw["top_p"]) == (0.7, 50, 1.0)


def test_generation_prompt_ids_are_the_hf_backends_window(shared_data: Path, hf: HFBackend, organism_dir: Path) -> None:
    long = GenerationRequest(prompt=" ".join(["The capital of France is Paris."] * 200), max_new_tokens=16)
    (ids, _, _), = generation_batch(hf, [long], generation_defaults(organism_dir))
    assert ids == hf._encode(long.prompt)[-(hf.max_length - 16):]


def test_loglikelihood_read_out_of_prompt_logprobs_equals_the_hf_backend(hf: HFBackend) -> None:
    requests = [LoglikelihoodRequest("The capital of France is", " Paris"),
                LoglikelihoodRequest("47 + 25 = ", "72"),
                LoglikelihoodRequest("Question: What is the capital of Japan?\nAnswer:", " Tokyo is the capital.")]
    batch = loglikelihood_batch(hf, requests)
    assert all(kw == LOGLIKELIHOOD_SAMPLING for _, kw, _ in batch)
    read = []
    for ids, _, n_cont in batch:  # the organism's own prompt log-probs, laid out as vLLM's prompt_logprobs
        with torch.no_grad():
            logprobs = hf.model(torch.tensor([ids])).logits[0].log_softmax(-1)
        prompt_logprobs = [None] + [{ids[i]: float(logprobs[i - 1, ids[i]])} for i in range(1, len(ids))]
        read.append(continuation_logprob(prompt_logprobs, ids, n_cont))
    assert read == pytest.approx(hf.loglikelihood(requests), abs=1e-4)

