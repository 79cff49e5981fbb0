"""Wall time of tunegate's evaluation against lm-eval's on the same model and items, and of a cached re-run.

The same items go through three runs in one process: tunegate's ``evaluate`` with a fresh cache,
``lm_eval.simple_evaluate`` with its HF backend (same dtype, device and batch size), then tunegate
again on the now full cache. Items: MMLU 0-shot by log-likelihood (3 subjects x 20, one of them past
the organism's 512-token context) and GSM8K zero-shot completion with lm-eval's stop strings.
Imports and a warm-up forward pass happen before any timer starts, so neither side pays them.

    HF_HUB_OFFLINE=1 python bench/eval_speed.py [--model DIR] [--threads 1] [--repeat 3]

The sides alternate ``--repeat`` times and each keeps its best time. By default each tool runs as it
would for a user: lm-eval keeps torch's thread count; tunegate does too, except that it puts a model under
10M parameters on one thread while other processes keep the cores busy (``tunegate.evals.backends.auto_threads``).
``--threads N`` gives both N threads. Real output on the organism, 2 idle CPU cores::

    best of 3: tunegate 1.48 s, lm-eval 2.32 s, tunegate cached 0.065 s; tunegate peak RSS 0.61 GB
    agreement: {"knowledge": {"n": 60, "same_choice": 60, "max_abs_logprob_diff": 8.6e-06}, "math": {...}}
    speedup_vs_lm_eval: 1.57
    cached_speedup: 22.82

Three such runs gave speedups 1.57, 1.42 and 1.85 (cached 22.8, 34.3, 27.0); ``--threads 1``: 1.38;
with two other processes spinning on the two cores: 1.50.

``--backend openai`` instead times the same 40 GSM8K items through the ``openai`` backend against a real
``transformers serve`` started on localhost, at ``--concurrency 1 4 16``, beside the in-process HF
backend, and counts the responses equal to HF's (``served_throughput``)::

    HF_HUB_OFFLINE=1 python bench/eval_speed.py --backend openai [--concurrency 1 4 16] [--serve-arg=--continuous-batching]

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
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import SHARED_DATA, peak_rss_gb  # noqa: E402


def warm_up(model_dir: str) -> None:
    """Import both stacks and run one forward pass, so one-time costs land on neither timer."""
    import lm_eval  # noqa: F401
    import lm_eval.models.huggingface  # noqa: F401
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    import tunegate.evals.backends  # noqa: F401
    import tunegate.evals.runner  # noqa: F401
    import tunegate.evals.stats  # noqa: F401  (scipy)
    import tunegate.evals.suites  # noqa: F401

    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    with torch.inference_mode():
        model.generate(**tok(["The capital of France is"], return_tensors="pt"), max_new_tokens=4,
                       do_sample=False, pad_token_id=tok.pad_token_id)
    del model


def served_throughput(model_dir: str, data: Path, *, n: int, max_new_tokens: int, concurrencies: list[int],
                      serve_args: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    """``--backend openai``: tunegate's evaluation of the same GSM8K items (zero-shot completion, greedy) by the
    in-process HF backend and by the openai backend against ``transformers serve`` on localhost at each
    concurrency; every run on a fresh cache. Returns one row per run (seconds, items/s, same responses as hf)."""
    from bench._common import TransformersServer
    from tunegate.evals.runner import evaluate
    from tunegate.evals.suites.math import GSM8KSuite

    def run(**backend: Any) -> tuple[float, list[str]]:
        suite = GSM8KSuite(source=str(data / "gsm8k"), chat=False, max_new_tokens=max_new_tokens, limit=n)
        start = time.perf_counter()
        record = evaluate(model_dir, [suite], use_cache=False, progress=False, **backend)
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
    rows = served_throughput(args.model, Path(args.data), n=args.gsm8k_n, max_new_tokens=args.max_new_tokens or 16,
                             concurrencies=args.concurrency, serve_args=tuple(args.serve_arg))
    print(f"model {args.model}; {args.gsm8k_n} GSM8K items, {args.max_new_tokens or 16} new tokens, greedy; "
          f"torch threads {_threads()}")
    print(f"{'backend':<28} {'concurrency':>11} {'seconds':>8} {'items/s':>8} {'same as hf':>10}")
    for r in rows:
        print(f"{r['backend']:<28} {r['concurrency']!s:>11} {r['seconds']:8.2f} {r['items_per_s']:8.2f} "
              f"{r['same_as_hf']:>7}/{args.gsm8k_n}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="checkpoint directory (default: the shipped organism)")
    parser.add_argument("--batch-size", type=int, default=None,
                        help="batch size for both (default: tunegate's own default, also given to lm-eval)")
    parser.add_argument("--per-subject", type=int, default=20)
    parser.add_argument("--gsm8k-n", type=int, default=40)
    parser.add_argument("--max-new-tokens", type=int, default=None,
                        help="GSM8K generation budget (default: the checkpoint's generation_config "
                             "max_new_tokens, which lm-eval's HF backend cannot override, else 64)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads for both sides (default: each tool's own; tunegate runs a model "
                             "under 10M parameters on one thread when other processes keep the cores busy)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per side; the best time counts")
    parser.add_argument("--data", default=str(SHARED_DATA), help="folder with mmlu/test.jsonl and gsm8k/test.jsonl")
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
    if args.model is None:
        from tunegate.organism import base_checkpoint

        args.model = str(base_checkpoint())
    if args.backend == "openai":
        return main_served(args)
    from tunegate.evals.lm_eval_fidelity import agreement, build_mirror, lm_eval_max_new_tokens, per_item, run_lm_eval
    from tunegate.evals.runner import evaluate

    max_new = args.max_new_tokens or lm_eval_max_new_tokens(args.model)
    warm_up(args.model)
    with tempfile.TemporaryDirectory(prefix="tunegate-bench-") as tmp:
        mirror = build_mirror(tmp, mmlu_test=Path(args.data) / "mmlu" / "test.jsonl",
                              gsm8k_test=Path(args.data) / "gsm8k" / "test.jsonl",
                              per_subject=args.per_subject, gsm8k_n=args.gsm8k_n, max_new_tokens=max_new)
        backend_kwargs = {"device": "cpu", "dtype": "float32"}
        if args.batch_size:
            backend_kwargs["batch_size"] = args.batch_size
        if args.threads:
            import torch

            torch.set_num_threads(args.threads)
            backend_kwargs["threads"] = args.threads
        n_items = sum(len(s.items()) for s in mirror.suites)
        print(f"model {args.model}; {n_items} items (MMLU {args.per_subject}/subject x 3, "
              f"GSM8K {args.gsm8k_n}, max_new_tokens {max_new}); torch threads {_threads()}", flush=True)

        fresh, lm_eval_times, cached, rss_tunegate = [], [], [], 0.0
        for rep in range(args.repeat):  # alternate the sides; each keeps its best time (timeit's rule)
            cache_dir = Path(tmp) / f"cache{rep}"
            start = time.perf_counter()
            record = evaluate(args.model, list(mirror.suites), cache_dir=cache_dir, progress=False,
                              **backend_kwargs)
            fresh.append(time.perf_counter() - start)
            rss_tunegate = peak_rss_gb() if rep == 0 else rss_tunegate  # before lm-eval ever ran
            batch = record.generation.get("batch_size") or args.batch_size or 32
            print(f"[{rep}] tunegate (fresh cache, batch {batch}): {fresh[-1]:.2f} s   "
                  f"[{', '.join(f'{k} {v.seconds:.2f} s' for k, v in record.suites.items())}]   "
                  f"peak RSS {rss_tunegate:.2f} GB", flush=True)

            start = time.perf_counter()
            results = run_lm_eval(args.model, mirror.tasks, mirror.task_dir, batch_size=batch)
            lm_eval_times.append(time.perf_counter() - start)
            print(f"[{rep}] lm-eval simple_evaluate (hf, batch {batch}, torch threads {_threads()}): "
                  f"{lm_eval_times[-1]:.2f} s   peak RSS (process) {peak_rss_gb():.2f} GB", flush=True)

            start = time.perf_counter()
            evaluate(args.model, list(mirror.suites), cache_dir=cache_dir, progress=False, **backend_kwargs)
            cached.append(time.perf_counter() - start)
            print(f"[{rep}] tunegate (cached): {cached[-1]:.2f} s", flush=True)
        t_tunegate, t_lm_eval, t_cached = min(fresh), min(lm_eval_times), min(cached)
        print(f"best of {args.repeat}: tunegate {t_tunegate:.2f} s, lm-eval {t_lm_eval:.2f} s, "
              f"tunegate cached {t_cached:.3f} s; tunegate peak RSS {rss_tunegate:.2f} GB")

        agree = agreement(record, per_item(results, mirror.tasks))
        print("agreement: " + json.dumps({k: {m: v for m, v in d.items() if m != "differing"}
                                          for k, d in agree.items()}))
    print(f"speedup_vs_lm_eval: {t_lm_eval / t_tunegate:.2f}")
    print(f"cached_speedup: {t_tunegate / t_cached:.2f}")
    return 0


def _threads() -> int:
    import torch

    return torch.get_num_threads()


if __name__ == "__main__":
    raise SystemExit(main())
