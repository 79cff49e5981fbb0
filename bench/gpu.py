"""tunegate's GPU path and its speed against the roofline, on the full-size twin of Qwen3-0.6B-Base.

The model is ``tunegate twin Qwen/Qwen3-0.6B-Base`` (the real architecture, tokenizer and chat template,
random weights, so nothing is downloaded; or ``--model DIR``, a twin built before) in bf16 with SDPA
attention, loaded through tunegate's own ``HFBackend``. Measured:

- SFT training tokens/s through TRL's SFTTrainer (tunegate's SFTConfig defaults), on random token
  rows of chat-like lengths, without packing (padded batches) and with BFD packing (padding-free);
  roofline = peak bf16 FLOP/s / (6 N) tokens/s (attention FLOPs left out);
- greedy generation tokens/s through ``HFBackend.generate`` at batch 1, 16 and 64, 256 new tokens;
  decoding is memory-bandwidth bound: roofline = batch x bandwidth / bytes of weights (the KV-cache
  reads are printed as a second, tighter roofline);
- log-likelihood scoring items/s through ``HFBackend.loglikelihood`` (MMLU-like: ~300-token context,
  one-token continuation); prefill is compute bound: roofline = peak / (2 N tokens per item);
- the organism demo (``tunegate demo``) on the same device, with its phase times;
- with ``--vllm-model DIR``: greedy generation of 64 prompts x 256 new tokens by the ``vllm`` backend against
  the ``hf`` backend on DIR (tokens/s each, identical responses), ``bench_vllm_vs_hf``.

    python bench/gpu.py                      # on a GPU (bandwidth/peak from the device name)
    python bench/gpu.py --model twins/qwen3 --bandwidth 3.35e12 --peak-flops 989e12 --json runs/bench/gpu.json
    python bench/gpu.py --smoke              # 2 layers, tiny vocab, CPU: proves the script runs
    python bench/gpu.py --vllm-model DIR     # + vLLM vs HF greedy generation on DIR (the full-size twin)

Output lines look like (values from an actual run are in the change's report)::

    generate   batch 16   4211.3 tokens/s   roofline 45042.0   0.094 of roofline   (weights+KV 41530.2: 0.101)
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from bench._common import ROOT  # noqa: E402

#: The model the nightly SFT trains; its twin (training/twins.py) is what this script measures.
REAL_MODEL = "Qwen/Qwen3-0.6B-Base"
#: --smoke: the same architecture shrunk to a toy (2 layers, width 64, vocab 512) with a word-level tokenizer.
SMOKE = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
             num_key_value_heads=2, head_dim=16, vocab_size=512, tie_word_embeddings=True,
             rope_theta=1_000_000.0, max_position_embeddings=2048, rms_norm_eps=1e-6)
#: Token ids the benchmark's random texts draw from: the twin's byte-level BPE tokens (below its added tokens).
TWIN_TOKENS = 151643
#: (substring of torch.cuda.get_device_name(), HBM bandwidth B/s, dense bf16 peak FLOP/s); first match wins.
GPUS = (
    ("H200", 4.8e12, 989e12),
    ("H100 PCIe", 2.0e12, 756e12),
    ("H100", 3.35e12, 989e12),
    ("A100-SXM4-80GB", 2.0e12, 312e12),
    ("A100 80GB", 2.0e12, 312e12),
    ("A100", 1.555e12, 312e12),
    ("L40S", 0.864e12, 362e12),
)


@dataclass
class BenchConfig:
    """What to measure and against which roofline."""

    smoke: bool = field(default=False, metadata={"help": "2 layers, tiny vocab, CPU, few steps"})
    model: str | None = field(default=None, metadata={"help": "a full-size twin built before (default: build one)"})
    bandwidth: float | None = field(default=None, metadata={"help": "memory bandwidth B/s (default: by GPU name)"})
    peak_flops: float | None = field(default=None, metadata={"help": "dense bf16 FLOP/s (default: by GPU name)"})
    batches: tuple[int, ...] = field(default=(1, 16, 64), metadata={"help": "generation batch sizes"})
    new_tokens: int = field(default=256, metadata={"help": "new tokens per generated sequence"})
    prompt_tokens: int = field(default=128, metadata={"help": "prompt length of the generation requests"})
    train_steps: int = field(default=30, metadata={"help": "optimizer steps per training measurement"})
    max_length: int = field(default=2048, metadata={"help": "SFT max_length (packed row length)"})
    train_batch: int = field(default=8, metadata={"help": "per-device batch without packing (packed: a quarter)"})
    ll_items: int = field(default=512, metadata={"help": "log-likelihood items"})
    ll_context: int = field(default=300, metadata={"help": "context tokens per log-likelihood item"})
    skip_demo: bool = field(default=False, metadata={"help": "do not run the organism demo"})
    json: str | None = field(default=None, metadata={"help": "write the results here as JSON"})

    def __post_init__(self) -> None:
        if self.smoke:
            self.batches, self.new_tokens, self.prompt_tokens = (1, 4), 8, 16
            self.train_steps, self.max_length, self.train_batch = 4, 128, 4
            self.ll_items, self.ll_context = 16, 24


def hardware(cfg: BenchConfig) -> tuple[str, str, float | None, float | None]:
    """(device, its name, bandwidth B/s, peak bf16 FLOP/s); explicit flags override the table."""
    if cfg.smoke or not torch.cuda.is_available():
        return "cpu", "cpu", cfg.bandwidth, cfg.peak_flops
    name = torch.cuda.get_device_name()
    bw, peak = next(((b, p) for key, b, p in GPUS if key in name), (None, None))
    return "cuda", name, cfg.bandwidth or bw, cfg.peak_flops or peak


def build_checkpoint(out: Path, smoke: bool, device: str) -> Path:
    """The full-size twin of Qwen3-0.6B-Base (``tunegate twin``), or the --smoke toy with a word-level tokenizer."""
    if not smoke:
        from tunegate.training.twins import build_twin

        return build_twin(REAL_MODEL, out)
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast, Qwen3Config, Qwen3ForCausalLM

    config = Qwen3Config(**SMOKE, eos_token_id=None, pad_token_id=0, bos_token_id=None)
    torch.manual_seed(0)
    with torch.device(device):
        model = Qwen3ForCausalLM(config)
    model.generation_config.eos_token_id = None
    model.save_pretrained(out)
    vocab = {f"t{i}": i for i in range(config.vocab_size)}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="t0"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="t0", unk_token="t0").save_pretrained(out)
    return out


def _text(rng: random.Random, n: int, vocab: int, tokenizer: Any) -> str:
    """About ``n`` tokens of random text: random ids of the vocabulary, decoded."""
    return tokenizer.decode([rng.randrange(1, vocab) for _ in range(n)])


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def bench_generate(backend: Any, cfg: BenchConfig, vocab: int, device: str) -> list[dict[str, float]]:
    from tunegate.evals.requests import GenerationRequest

    rng, out = random.Random(0), []
    # every sequence makes all its new tokens: random weights rarely say eos, and then only a few tokens early
    for batch in cfg.batches:
        requests = [GenerationRequest(_text(rng, cfg.prompt_tokens, vocab, backend.tokenizer),
                                      max_new_tokens=cfg.new_tokens) for _ in range(batch)]
        backend.batch_size = batch
        backend.generate(requests[:1])  # warm-up (kernels, allocator)
        _sync(device)
        start = time.perf_counter()
        backend.generate(requests)
        _sync(device)
        seconds = time.perf_counter() - start
        out.append({"batch": batch, "tokens_per_s": batch * cfg.new_tokens / seconds, "seconds": seconds})
    return out


def bench_loglikelihood(backend: Any, cfg: BenchConfig, vocab: int, device: str) -> dict[str, float]:
    from tunegate.evals.requests import LoglikelihoodRequest

    rng = random.Random(1)
    requests = [LoglikelihoodRequest(_text(rng, cfg.ll_context, vocab, backend.tokenizer),
                                     " " + backend.tokenizer.decode([rng.randrange(1, vocab)]).lstrip())
                for _ in range(cfg.ll_items)]
    backend.batch_size = 32
    backend.loglikelihood(requests[:32])  # warm-up
    _sync(device)
    start = time.perf_counter()
    backend.loglikelihood(requests)
    _sync(device)
    seconds = time.perf_counter() - start
    return {"items_per_s": len(requests) / seconds, "tokens_per_item": cfg.ll_context, "seconds": seconds}


def _rows(n: int, cfg: BenchConfig, vocab: int) -> list[dict[str, list[int]]]:
    """Random token rows with chat-SFT-like lengths: log-normal around max_length / 6, clipped."""
    rng = random.Random(2)
    lengths = [min(cfg.max_length, max(16, int(rng.lognormvariate(math.log(cfg.max_length / 6), 0.7))))
               for _ in range(n)]
    return [{"input_ids": [rng.randrange(1, vocab) for _ in range(k)]} for k in lengths]


def bench_train(path: Path, cfg: BenchConfig, vocab: int, packing: bool) -> dict[str, float]:
    """Real (non-pad) tokens/s of TRL's SFTTrainer over the steps after the first quarter (warm-up)."""
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer, PrinterCallback, ProgressCallback, TrainerCallback
    from trl import SFTTrainer

    from tunegate.training.stages import build_trl_config

    class Clock(TrainerCallback):
        def __init__(self) -> None:
            self.marks: list[tuple[float, float]] = []  # (time, cumulative real tokens) at each logging step

        def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, float] | None = None, **kw: Any) -> None:
            if logs and "num_tokens" in logs:
                _sync("cuda" if torch.cuda.is_available() else "cpu")
                self.marks.append((time.perf_counter(), float(logs["num_tokens"])))

    batch = max(1, cfg.train_batch // 4) if packing else cfg.train_batch
    args = {"max_steps": cfg.train_steps, "per_device_train_batch_size": batch, "max_length": cfg.max_length,
            "packing": packing, "logging_steps": 1, "learning_rate": 1e-5, "disable_tqdm": True}
    with tempfile.TemporaryDirectory() as tmp:
        config = build_trl_config("sft", args, Path(tmp), seed=0)
        dtype = torch.bfloat16 if config.bf16 else torch.float32
        model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype, attn_implementation="sdpa",
                                                     trust_remote_code=False)
        rows = _rows(cfg.train_steps * cfg.train_batch * (2 if packing else 1), cfg, vocab)
        clock = Clock()
        trainer = SFTTrainer(model=model, args=config, train_dataset=Dataset.from_list(rows),
                             processing_class=AutoTokenizer.from_pretrained(path, trust_remote_code=False),
                             callbacks=[clock])
        for noisy in (PrinterCallback, ProgressCallback):
            trainer.remove_callback(noisy)
        trainer.train()
    marks = clock.marks[len(clock.marks) // 4:]
    (t0, n0), (t1, n1) = marks[0], marks[-1]
    del trainer, model
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    return {"packing": packing, "tokens_per_s": (n1 - n0) / (t1 - t0), "per_device_batch": batch,
            "steps_timed": len(marks) - 1}


def bench_vllm_vs_hf(model: str, prompts: int = 64, new_tokens: int = 256) -> dict[str, Any]:
    """Greedy generation of the same ``prompts`` requests by the ``hf`` and the ``vllm`` backend on ``model`` (a
    checkpoint dir, e.g. the full-size real-architecture twin, or a hub id): generated tokens/s of each, and
    how many responses are identical. A backend that cannot run here (no vLLM, no GPU) is its one-line error."""
    from tunegate.evals.backends import BackendOptions, load_backend
    from tunegate.core.errors import TunegateError
    from tunegate.evals.requests import GenerationRequest

    rng = random.Random(3)
    requests = [GenerationRequest(f"Question: Tom has {rng.randrange(10, 99)} apples and buys {rng.randrange(10, 99)} "
                                  f"more. How many apples does he have? Explain step by step.\nAnswer:",
                                  max_new_tokens=new_tokens) for _ in range(prompts)]
    out: dict[str, Any] = {"model": model, "prompts": prompts, "new_tokens": new_tokens}
    texts: dict[str, list[str]] = {}
    for name in ("hf", "vllm"):
        try:
            backend = load_backend(model, name, BackendOptions(batch_size=prompts if name == "hf" else None))
        except TunegateError as exc:
            out[name] = {"error": str(exc)}
            continue
        device = "cuda" if torch.cuda.is_available() else "cpu"
        backend.generate(requests[:2])  # warm-up (kernels, CUDA graphs, allocator)
        _sync(device)
        start = time.perf_counter()
        texts[name] = backend.generate(requests)
        _sync(device)
        seconds = time.perf_counter() - start
        tokens = sum(len(backend._encode(t)) for t in texts[name])  # generated tokens, re-encoded
        out[name] = {"seconds": seconds, "tokens": tokens, "tokens_per_s": tokens / seconds}
        if hasattr(backend, "close"):
            backend.close()
        del backend
        if device == "cuda":
            torch.cuda.empty_cache()
    if len(texts) == 2:
        out["same_responses"] = sum(a == b for a, b in zip(texts["hf"], texts["vllm"]))
    return out


def run_demo(smoke: bool) -> dict[str, Any]:
    """``tunegate demo`` in a subprocess; its phase times from summary.json (or the error)."""
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "tunegate", "demo", "--out", tmp, "--quiet", "--no-report",
               "--cache-dir", str(Path(tmp) / "cache")] + (["--max-steps", "2"] if smoke else [])
        env = dict(os.environ)
        start = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=env)
        seconds = time.perf_counter() - start
        summary_path = Path(tmp) / "summary.json"
        summary = json.loads(summary_path.read_text()) if summary_path.is_file() else {}
    last_line = (proc.stderr.strip().splitlines() or [""])[-1]
    return {"exit_code": proc.returncode, "seconds": round(seconds, 1), "phases": summary.get("phases", {}),
            "passed": summary.get("passed"), "error": summary.get("error") or (last_line if not summary else None)}


def _num(value: float | None) -> str:
    return f"{value:.3g}" if value else "n/a"


def _frac(value: float, roofline: float | None) -> str:
    return f"roofline {roofline:12.1f}   {value / roofline:.3f} of roofline" if roofline else "roofline n/a"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help=BenchConfig.__dataclass_fields__["smoke"].metadata["help"])
    parser.add_argument("--model", default=None, help=BenchConfig.__dataclass_fields__["model"].metadata["help"])
    parser.add_argument("--bandwidth", type=float, default=None, help="memory bandwidth in B/s")
    parser.add_argument("--peak-flops", type=float, default=None, help="dense bf16 peak FLOP/s")
    parser.add_argument("--skip-demo", action="store_true", help="do not run the organism demo")
    parser.add_argument("--json", default=None, help="write the results here as JSON")
    parser.add_argument("--vllm-model", default=None, metavar="DIR|HUB_ID",
                        help="also compare vLLM with HF greedy generation on this checkpoint (e.g. the full-size "
                             "real-architecture twin from `tunegate twin`, or Qwen/Qwen3-0.6B-Base)")
    a = parser.parse_args(argv)
    cfg = BenchConfig(smoke=a.smoke, model=a.model, bandwidth=a.bandwidth, peak_flops=a.peak_flops,
                      skip_demo=a.skip_demo, json=a.json)
    from tunegate.evals.backends.hf import HFBackend
    from tunegate.training.stages import quiet_training_logs

    quiet_training_logs()
    device, name, bandwidth, peak = hardware(cfg)
    vocab = SMOKE["vocab_size"] if cfg.smoke else TWIN_TOKENS
    results: dict[str, Any] = {"device": name, "bandwidth": bandwidth, "peak_flops": peak, "config": asdict(cfg)}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(cfg.model) if cfg.model else build_checkpoint(Path(tmp) / "qwen3-0.6b-twin", cfg.smoke, device)
        backend = HFBackend(str(path), device=device)
        n_params = sum(p.numel() for p in backend.model.parameters())
        weight_bytes = n_params * torch.finfo(backend.model.dtype).bits // 8
        arch = backend.model.config
        bytes_per_value = weight_bytes // n_params
        kv_per_token = 2 * arch.num_hidden_layers * arch.num_key_value_heads * arch.head_dim * bytes_per_value
        results.update(params=n_params, weight_bytes=weight_bytes, dtype=backend.dtype)
        print(f"device {name}; {n_params / 1e6:.1f}M params, {weight_bytes / 1e9:.3f} GB of {backend.dtype} weights; "
              f"bandwidth {_num(bandwidth)} B/s, peak {_num(peak)} FLOP/s")

        results["generate"] = bench_generate(backend, cfg, vocab, device)
        for row in results["generate"]:
            b = row["batch"]
            roof = b * bandwidth / weight_bytes if bandwidth else None
            context = cfg.prompt_tokens + cfg.new_tokens / 2
            roof_kv = b * bandwidth / (weight_bytes + b * context * kv_per_token) if bandwidth else None
            row.update(roofline=roof, roofline_with_kv=roof_kv)
            kv = f"   (weights+KV {roof_kv:.1f}: {row['tokens_per_s'] / roof_kv:.3f})" if roof_kv else ""
            rate = row["tokens_per_s"]
            print(f"generate   batch {b:<4} {rate:10.1f} tokens/s   {_frac(rate, roof)}{kv}")

        ll = results["loglikelihood"] = bench_loglikelihood(backend, cfg, vocab, device)
        ll["roofline"] = peak / (2 * n_params * (cfg.ll_context + 1)) if peak else None
        rate = ll["items_per_s"]
        print(f"loglik     {cfg.ll_context}-token items {rate:8.1f} items/s    {_frac(rate, ll['roofline'])}")
        del backend
        if device == "cuda":
            torch.cuda.empty_cache()

        results["train"] = []
        for packing in (False, True):
            row = bench_train(path, cfg, vocab, packing)
            row["roofline"] = peak / (6 * n_params) if peak else None
            results["train"].append(row)
            label = "packed (BFD)" if packing else "padded"
            rate = row["tokens_per_s"]
            print(f"sft train  {label:<13} {rate:10.1f} tokens/s   {_frac(rate, row['roofline'])}")

    if a.vllm_model:
        vs = results["vllm_vs_hf"] = bench_vllm_vs_hf(a.vllm_model, *((4, 8) if cfg.smoke else (64, 256)))
        line = "   ".join(f"{k} " + (f"{vs[k]['tokens_per_s']:10.1f} tokens/s" if "error" not in vs[k] else vs[k]["error"])
                          for k in ("hf", "vllm"))
        ratio = (f"   vllm/hf {vs['vllm']['tokens_per_s'] / vs['hf']['tokens_per_s']:.2f}x, same greedy responses "
                 f"{vs['same_responses']}/{vs['prompts']}") if "same_responses" in vs else ""
        print(f"vllm vs hf {vs['prompts']} x {vs['new_tokens']} new tokens: {line}{ratio}")
    if not cfg.skip_demo:
        demo = results["demo"] = run_demo(cfg.smoke)
        phases = ", ".join(f"{k} {v:.1f}s" for k, v in demo["phases"].items())
        error = f"; error: {demo['error']}" if demo["error"] else ""
        print(f"demo       exit {demo['exit_code']} in {demo['seconds']}s: {phases}{error}")
    if cfg.json:
        Path(cfg.json).parent.mkdir(parents=True, exist_ok=True)
        Path(cfg.json).write_text(json.dumps(results, indent=1, default=str) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
