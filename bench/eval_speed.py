"""tunegate's evaluation against lm-eval's ``simple_evaluate`` (HF backend) on the real architecture, side by side.

Two workloads on the same checkpoint, items, dtype (float32), device (CPU), torch threads and batch size:

- MMLU, 0-shot, by log-likelihood of " A".." D" (lm-eval's own ``mmlu`` template through ``include``):
  the first ``--per-subject`` test rows of each ``--subjects`` (default 4 x 50 = 200 items);
- GSM8K, zero-shot completion, the first ``--gsm8k-n`` (16) test questions, greedy, ``--max-new-tokens`` (64),
  lm-eval's stop strings; ``repetition_penalty: 1.0`` in lm-eval's task, because lm-eval's HF backend would
  otherwise apply the checkpoint's generation_config (Qwen2.5-Instruct: 1.1) to greedy decoding, which
  tunegate does not (``evals/backends/_tokens.py: GREEDY``).

Each side loads the model itself (its load is timed) after a warm-up that imports both stacks. The sides
alternate ``--repeat`` times and keep their best time (timeit's rule). Then the peak RSS of a fresh process
that evaluates the real configs' MMLU set (2,000 seeded test items, or its ``--rss-longest`` longest).

    tunegate twin Qwen/Qwen2.5-0.5B-Instruct --out twins/qwen2.5           # the full-size twin (0.49B)
    HF_HUB_OFFLINE=1 python bench/eval_speed.py --model twins/qwen2.5 --threads 1 --repeat 1 --rss-items 0
    HF_HUB_OFFLINE=1 python bench/eval_speed.py --model twins/qwen2.5 --threads 1 --repeat 1 --rss-items 0 --only gsm8k
    HF_HUB_OFFLINE=1 python bench/eval_speed.py --rss-child --model twins/qwen2.5 --threads 1 --rss-longest 32

Measured on 2 CPU cores shared with 3-5 other jobs (load average 6-8; each run got 18-25% of a core, so wall
seconds are loose and CPU seconds are the figure to compare), batch 32, one torch thread per side::

    mmlu   (200 items): tunegate 1467.8 s (cpu 280.2 s), lm-eval 1502.9 s (cpu 313.7 s) -> 1.02x wall, 1.12x cpu;
           same choice 200/200, max |dlogp| 2.9e-06
    gsm8k  (16 x 64 tokens): tunegate 271.3 s (cpu 65.9 s), lm-eval 278.9 s (cpu 61.2 s) -> 1.03x wall, 0.93x cpu;
           same response 16/16 (a second run, --only gsm8k: 394.5 s / 297.6 s wall, cpu 67.1 s / 65.6 s, 16/16)
    peak RSS, MMLU 2000 items (the 32 longest prompts, its heaviest batches): 3.72 GiB (3.90 GB, /usr/bin/time -v)

Both speed targets (2x MMLU, 1.3x generation) are missed. Profile: generation is the same transformers
``generate`` over the same 16-row batch on both sides (the 0.49B forward per step dominates; lm-eval's per-step
stop-string check is milliseconds), so the two run at ~1x. For MMLU both sides run one forward per
question (lm-eval groups the four one-token continuations by context); on one padded batch of 8 MMLU prompts
(52-369 tokens, 1 thread) tunegate's ``_loglikelihood_batch`` took 33.7 cpu s, a bare right-padded forward with
``logits_to_keep=1`` 33.6 s, lm-eval's way (all positions' logits + log_softmax) 48.8 s: 1.45x per forward, the
upper bound of skipping the tied 136M-parameter head; the whole run's 1.12x is below it (not yet explained).

``--backend openai`` instead times the first ``--gsm8k-n`` GSM8K items through the ``openai`` backend against a real
``transformers serve`` started on localhost, at ``--concurrency 1 4 16``, beside the in-process HF
backend, and counts the responses equal to HF's (``served_throughput``)::

    HF_HUB_OFFLINE=1 python bench/eval_speed.py --backend openai --gsm8k-n 40 --max-new-tokens 16 [--concurrency 1 4 16] [--serve-arg=--continuous-batching]

Output on the organism, 2 CPU cores shared with other jobs (load average 12, so the seconds are loose; CPU time
of the whole script 71 s)::

    backend                      concurrency  seconds  items/s same as hf
    hf (in process)                        -    11.81     3.39      40/40
    openai (transformers serve)            1    27.76     1.44      40/40
    openai (transformers serve)            4    62.32     0.64      40/40
    openai (transformers serve)           16    59.17     0.68      40/40

``transformers serve`` runs one ``generate`` at a time, so concurrency only queues requests; with
``--serve-arg=--continuous-batching`` (paged attention, batched decoding) concurrency 16 was its fastest
(60.0 / 88.8 / 37.0 s at 1 / 4 / 16, all 40/40 equal to hf) on the same busy cores.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any, Callable

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import SHARED_DATA, peak_rss_gb  # noqa: E402

SUBJECTS = ("astronomy", "abstract_algebra", "college_biology", "nutrition")


def warm_up(model_dir: str) -> None:
    """Import both stacks and run one forward pass, so one-time costs land on neither timer."""
    import lm_eval  # noqa: F401
    import lm_eval.models.huggingface  # noqa: F401
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    import tunegate.evals.backends.hf  # noqa: F401
    import tunegate.evals.runner  # noqa: F401
    import tunegate.evals.stats  # noqa: F401  (scipy)

    tok = AutoTokenizer.from_pretrained(model_dir, trust_remote_code=False)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32, trust_remote_code=False)
    with torch.inference_mode():
        model(**tok(["The capital of France is"], return_tensors="pt"))
    del model


def cpu_seconds() -> float:
    import resource

    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def timed(fn: Callable[[], Any]) -> tuple[Any, float, float]:
    """(result, wall seconds, CPU seconds of this process)."""
    wall, cpu = time.perf_counter(), cpu_seconds()
    out = fn()
    return out, time.perf_counter() - wall, cpu_seconds() - cpu


def rss_child(args: argparse.Namespace) -> int:
    """In a fresh process: evaluate the real configs' MMLU set and print the peak RSS (GB)."""
    from tunegate.evals.backends import BackendOptions
    from tunegate.evals.runner import evaluate
    from tunegate.evals.spec import EvalSpec, SuiteSpec
    from tunegate.evals.suites.knowledge import MMLUOptions, MMLUSuite

    class Longest(MMLUSuite):
        """The heaviest batches of that set: its ``--rss-longest`` longest prompts."""

        def items(self) -> list[Any]:
            return sorted(super().items(), key=lambda it: -len(it.prompt))[: args.rss_longest]

    options = MMLUOptions(source=str(Path(args.data) / "mmlu"), limit=args.rss_items, subset_seed=0)
    backend = BackendOptions(device="cpu", dtype="float32", batch_size=args.batch_size or None)
    with tempfile.TemporaryDirectory() as tmp:
        spec = EvalSpec((SuiteSpec(Longest if args.rss_longest else MMLUSuite, options),), "hf", backend, tmp)
        record = evaluate(args.model, spec, progress=False)
    print(json.dumps({"items": len(record.suites["knowledge"].items), "peak_rss_gb": peak_rss_gb(),
                      "seconds": record.seconds}))


def served_throughput(model_dir: str, data: Path, *, n: int, max_new_tokens: int, concurrencies: list[int],
                      serve_args: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    """``--backend openai``: tunegate's evaluation of the same GSM8K items (zero-shot completion, greedy) by the
    in-process HF backend and by the openai backend against ``transformers serve`` on localhost at each
    concurrency; every run on a fresh cache. Returns one row per run (seconds, items/s, same responses as hf)."""
    from bench._common import TransformersServer
    from tunegate.evals.backends import BackendOptions
    from tunegate.evals.runner import evaluate
    from tunegate.evals.spec import eval_spec
    from tunegate.evals.suites.math import GSM8KSuite

    def run(backend: str = "hf", **options: Any) -> tuple[float, list[str]]:
        suite = GSM8KSuite(source=str(data / "gsm8k"), chat=False, max_new_tokens=max_new_tokens, limit=n)
        spec = eval_spec([suite], backend=backend, backend_options=BackendOptions(**options), use_cache=False)
        start = time.perf_counter()
        record = evaluate(model_dir, spec, progress=False)
        return time.perf_counter() - start, [s.response for s in record.suites["math"].items]

    rows = []
    seconds, reference = run(device="cpu", dtype="float32")
    rows.append({"backend": "hf (in process)", "concurrency": "-", "seconds": seconds, "same_as_hf": n})
    with TransformersServer(model_dir, extra=serve_args) as server:
        run(backend="openai", base_url=server.base_url, concurrency=1)  # warm-up: the server's first request
        for c in concurrencies:
            seconds, responses = run(backend="openai", base_url=server.base_url, concurrency=c)
            rows.append({"backend": "openai (transformers serve)", "concurrency": c, "seconds": seconds,
                         "same_as_hf": sum(a == b for a, b in zip(responses, reference))})
    for row in rows:
        row["items_per_s"] = n / row["seconds"]
    return rows


def main_served(args: argparse.Namespace) -> int:
    """Print the ``--backend openai`` table (see ``served_throughput``)."""
    import torch

    rows = served_throughput(args.model, Path(args.data), n=args.gsm8k_n, max_new_tokens=args.max_new_tokens or 16,
                             concurrencies=args.concurrency, serve_args=tuple(args.serve_arg))
    print(f"model {args.model}; {args.gsm8k_n} GSM8K items, {args.max_new_tokens or 16} new tokens, greedy; "
          f"torch threads {torch.get_num_threads()}")
    print(f"{'backend':<28} {'concurrency':>11} {'seconds':>8} {'items/s':>8} {'same as hf':>10}")
    for r in rows:
        print(f"{r['backend']:<28} {r['concurrency']!s:>11} {r['seconds']:8.2f} {r['items_per_s']:8.2f} "
              f"{r['same_as_hf']:>7}/{args.gsm8k_n}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None,
                        help="checkpoint directory, e.g. a full-size `tunegate twin` (default: the shipped organism)")
    parser.add_argument("--batch-size", type=int, default=None,
                        help="batch size for both (default: tunegate's own, 32 on CPU, also given to lm-eval)")
    parser.add_argument("--subjects", default=",".join(SUBJECTS), help="MMLU subjects (comma-separated)")
    parser.add_argument("--per-subject", type=int, default=50)
    parser.add_argument("--gsm8k-n", type=int, default=16)
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--threads", type=int, default=None, help="torch threads for both (default: torch's)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per side; the best time counts")
    parser.add_argument("--only", choices=("mmlu", "gsm8k"), default=None, help="one workload only")
    parser.add_argument("--rss-items", type=int, default=2000, help="MMLU items of the peak-RSS run (0: skip)")
    parser.add_argument("--rss-longest", type=int, default=None,
                        help="run only this many of the RSS set's longest prompts (its heaviest batches)")
    parser.add_argument("--rss-child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--data", default=str(SHARED_DATA), help="folder with mmlu/ and gsm8k/ test.jsonl")
    parser.add_argument("--backend", choices=["hf", "openai"], default="hf",
                        help="openai: throughput against a localhost `transformers serve` at --concurrency levels, "
                             "beside the in-process hf backend (instead of the lm-eval comparison)")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 4, 16], help="with --backend openai")
    parser.add_argument("--serve-arg", action="append", default=[],
                        help="extra `transformers serve` argument, e.g. --serve-arg=--continuous-batching")
    args = parser.parse_args(argv)

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    warnings.filterwarnings("ignore")
    import logging

    logging.getLogger("lm_eval").setLevel(logging.ERROR)
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.model is None:
        from tunegate.organism import base_checkpoint

        args.model = str(base_checkpoint())
    if args.rss_child:
        return rss_child(args)
    if args.backend == "openai":
        return main_served(args)

    from tunegate.evals.backends import BackendOptions
    from tunegate.evals.lm_eval_fidelity import agreement, build_mirror, per_item, run_lm_eval
    from tunegate.evals.runner import evaluate
    from tunegate.evals.spec import eval_spec

    warm_up(args.model)
    backend = BackendOptions(device="cpu", dtype="float32", batch_size=args.batch_size or None,
                             threads=args.threads or None)
    subjects = tuple(s for s in args.subjects.split(",") if s)
    print(f"model {args.model}; torch threads {torch.get_num_threads()}; load average {os.getloadavg()[0]:.1f}",
          flush=True)
    figures: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="tunegate-bench-") as tmp:
        mirror = build_mirror(tmp, mmlu_test=Path(args.data) / "mmlu" / "test.jsonl",
                              gsm8k_test=Path(args.data) / "gsm8k" / "test.jsonl", subjects=subjects,
                              per_subject=args.per_subject, gsm8k_n=args.gsm8k_n, max_new_tokens=args.max_new_tokens)
        workloads = {"mmlu": (mirror.suites[0], [t for t in mirror.tasks if t.kind == "mmlu"]),
                     "gsm8k": (mirror.suites[1], [t for t in mirror.tasks if t.kind == "gsm8k"])}
        for name, (suite, tasks) in workloads.items():
            if args.only and name != args.only:
                continue
            ours, theirs, cached, record, results = [], [], [], None, None
            for rep in range(args.repeat):  # alternate the sides; each keeps its best time
                spec = eval_spec([suite], cache_dir=Path(tmp) / f"c{name}{rep}", backend_options=backend)
                run = lambda: evaluate(args.model, spec, progress=False)  # noqa: E731
                record, wall, cpu = timed(run)
                ours.append((wall, cpu))
                cached.append(timed(run)[1])  # the same eval again: every response from the cache
                batch = record.generation.get("batch_size")
                results, wall2, cpu2 = timed(lambda: run_lm_eval(args.model, tasks, mirror.task_dir, batch_size=batch))
                theirs.append((wall2, cpu2))
                print(f"[{name} {rep}] tunegate {wall:.1f} s (cpu {cpu:.1f} s), lm-eval {wall2:.1f} s "
                      f"(cpu {cpu2:.1f} s), batch {batch}", flush=True)
            agree = agreement(record, per_item(results, tasks))
            (t_ours, c_ours), (t_theirs, c_theirs) = min(ours), min(theirs)
            figures[name] = {"tunegate_s": round(t_ours, 2), "lm_eval_s": round(t_theirs, 2),
                             "tunegate_cpu_s": round(c_ours, 2), "lm_eval_cpu_s": round(c_theirs, 2),
                             "speedup": round(t_theirs / t_ours, 2), "tunegate_cached_s": round(min(cached), 2),
                             "agreement": {k: {m: v for m, v in d.items() if m != "differing"} | (
                                 {"differing": d["differing"][:5]} if d.get("differing") else {})
                                 for k, d in agree.items()}}
        peak = peak_rss_gb()
    for name, fig in figures.items():
        what = f"{args.per_subject * len(subjects)} items" if name == "mmlu" else \
            f"{args.gsm8k_n} x {args.max_new_tokens} tokens"
        print(f"{name:<6} ({what}): tunegate {fig['tunegate_s']} s, lm-eval {fig['lm_eval_s']} s -> "
              f"{fig['speedup']}x; agreement {json.dumps(fig['agreement'])}")
    print(f"this process's peak RSS (both sides): {peak:.2f} GB")
    if args.rss_items:
        cmd = [sys.executable, __file__, "--rss-child", "--model", args.model, "--rss-items", str(args.rss_items),
               "--data", args.data] + (["--rss-longest", str(args.rss_longest)] if args.rss_longest else []) + (
            ["--batch-size", str(args.batch_size)] if args.batch_size else []) + (
            ["--threads", str(args.threads)] if args.threads else [])
        child = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1])
        label = f"its {args.rss_longest} longest" if args.rss_longest else "all"
        print(f"peak RSS, MMLU {args.rss_items} items ({label}: {child['items']} evaluated in {child['seconds']:.0f} s): "
              f"{child['peak_rss_gb']:.2f} GB")
        figures["rss"] = child
    print("figures: " + json.dumps(figures))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
