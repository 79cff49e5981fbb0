"""One torch thread against two for a model on the CPU: CPU seconds and wall seconds of the same evaluation work.

``SMALL_MODEL_PARAMS`` (evals/backends/hf.py) pins a model below it to one torch thread. This script measures, for
one model, what a second thread buys: the same greedy generation (``--prompts`` GSM8K questions, zero-shot chat,
``--tokens`` new tokens, one batch) and the same log-likelihood pass (MMLU 0-shot, ``--mmlu`` items) through
tunegate's HF backend at ``--threads`` 1 and 2, alternating, each in a fresh backend. With ``--busy`` a spinning
process keeps one core busy meanwhile (the shared machine at its quietest still has other jobs: the load average is
printed beside the figures).

    python bench/threads.py --model smollm2-135m-instruct [--busy]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import SHARED_DATA, cpu_seconds  # noqa: E402


def measure(model: str, threads: int, prompts: int, tokens: int, mmlu: int) -> dict[str, float]:
    from tunegate.core.files import read_jsonl
    from tunegate.evals.backends.hf import HFBackend
    from tunegate.evals.requests import GenerationRequest, LoglikelihoodRequest

    backend = HFBackend(model, threads=threads, batch_size=max(prompts, 1))
    backend.model  # noqa: B018  (loaded before the clock starts)
    gsm = read_jsonl(SHARED_DATA / "gsm8k" / "test.jsonl")[:prompts]
    gen = [GenerationRequest(prompt=backend.render([{"role": "user", "content": r["question"]}]),
                             max_new_tokens=tokens, stop=()) for r in gsm]
    rows = read_jsonl(SHARED_DATA / "mmlu" / "test.jsonl")[:mmlu]
    ll = [LoglikelihoodRequest(context=f"{r['question']}\nAnswer:", continuation=f" {c}")
          for r in rows for c in "ABCD"]
    out = {}
    work = {"generate": lambda: backend.generate(gen), "loglikelihood": lambda: backend.loglikelihood(ll)}
    for name, run in work.items():
        wall, cpu = time.perf_counter(), cpu_seconds()
        run()
        out[name] = (time.perf_counter() - wall, cpu_seconds() - cpu)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--prompts", type=int, default=8)
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--mmlu", type=int, default=32)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--busy", action="store_true", help="keep one core busy with a spinning process meanwhile")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if args.busy else None
    try:
        best: dict[tuple[int, str], tuple[float, float]] = {}
        for _ in range(args.repeat):
            for threads in (1, 2):
                for name, (wall, cpu) in measure(args.model, threads, args.prompts, args.tokens, args.mmlu).items():
                    key = (threads, name)
                    best[key] = min(best.get(key, (wall, cpu)), (wall, cpu), key=lambda t: t[1])
    finally:
        if spinner:
            spinner.kill()
            spinner.wait()
    print(f"{args.model}: {args.prompts} prompts x {args.tokens} tokens, {args.mmlu} MMLU items; "
          f"{'one core kept busy; ' if args.busy else ''}load average {os.getloadavg()[0]:.1f} on "
          f"{os.cpu_count()} cores; best of {args.repeat} by CPU time")
    print(f"{'work':<14} {'threads':>7} {'wall s':>8} {'CPU s':>8}")
    for (threads, name), (wall, cpu) in sorted(best.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        print(f"{name:<14} {threads:>7} {wall:8.1f} {cpu:8.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
