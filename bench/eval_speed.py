"""tunegate's evaluation against lm-eval's ``simple_evaluate`` (HF backend) on real weights, side by side.

The real configs' workloads (bench/_speed_workloads.py), each on the same checkpoint, items, dtype (float32),
device (CPU), torch threads and batch size on both sides, through lm-eval's own task YAMLs:

- ``ifeval``: IFEval through the chat template at the configs' budget (1280 new tokens), the first ``--ifeval-n``;
- ``gsm8k``: GSM8K 5-shot with the shots as chat turns (lm-eval's ``--apply_chat_template --fewshot_as_multiturn``,
  the same five shots), 256 new tokens, the first ``--gsm8k-n`` test questions;
- ``mmlu0`` / ``mmlu5``: MMLU by log-likelihood of " A".." D", 0-shot and 5-shot (each subject's dev rows).

Per workload: tunegate on a fresh cache, tunegate again with every response cached (re-evaluation), then lm-eval;
CPU seconds of this process for each. Agreement: generation counts identical responses and, for those that
differ, how many change in lm-eval's own answer when the item is decoded alone (batch 1: the A/A noise floor);
MMLU counts identical choices and the largest log-likelihood difference. A generation workload also prints the
ceiling of what refilling finished rows can save on its own answers (``decode_steps``: decode steps and row-steps of
lm-eval's static batches against continuous batching). ``--model`` takes the real
SmolLM2-135M-Instruct (``smollm2-135m-instruct``, fetched by ``tunegate models fetch``) and the full-size
Qwen2.5-0.5B twin (``tunegate twin Qwen/Qwen2.5-0.5B-Instruct --out twins/qwen2.5``; random weights). The
speed table of docs/speed.md gives the figures and the commands that measured them.

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

from bench._common import SHARED_DATA, cpu_seconds, peak_rss_gb  # noqa: E402
from bench._speed_workloads import BUILDERS, Workload, agreement, responses, run_lm_eval  # noqa: E402


def warm_up(model_dir: str) -> None:
    """Import both stacks and run one forward pass, so one-time costs land on neither timer."""
    import lm_eval  # noqa: F401
    import lm_eval.models.huggingface  # noqa: F401
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    import tunegate.evals.backends.hf  # noqa: F401
    import tunegate.evals.runner  # noqa: F401
    import tunegate.evals.stats  # noqa: F401  (scipy)
    from tunegate.evals.suites.ifeval import instruction_registry

    instruction_registry()  # IFEval's checks (nltk, langdetect) for both sides' scoring
    tok = AutoTokenizer.from_pretrained(model_dir, trust_remote_code=False)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32, trust_remote_code=False)
    with torch.inference_mode():
        model(**tok(["The capital of France is"], return_tensors="pt"))
    del model


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


def noise_floor(model_dir: str, workload: Workload, ids: list[str], theirs: dict[str, str], threads: int | None
                ) -> int:
    """Of the items ``ids`` the two sides answered differently, how many lm-eval's own batch-N answer changes on
    when the item is decoded alone (batch 1, ``model.generate``): those are inside the A/A noise floor."""
    from tunegate.evals.backends.hf import HFBackend
    from tunegate.evals.requests import GenerationRequest

    backend = HFBackend(model_dir, batch_size=1, threads=threads)
    backend.continuous = False
    items, settings = {it.id: it for it in workload.suite.items()}, workload.suite.generation()
    requests = [GenerationRequest(prompt=backend.render(items[i].messages), max_new_tokens=settings.max_new_tokens,
                                  stop=settings.stop) for i in ids]
    return sum(alone != theirs[i] for alone, i in zip(backend.generate(requests), ids))


def profiled(fn: Callable[[], Any], enabled: bool, label: str) -> Any:
    """``fn()``; with ``enabled``, under torch's profiler, printing its ops by CPU time (what sets the floor)."""
    if not enabled:
        return fn()
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        out = fn()
    print(f"--- profile: {label}\n" + prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=12),
          flush=True)
    return out


def decode_steps(record: Any, model_dir: str, batch: int, budget: int) -> dict[str, Any]:
    """What refilling finished rows can save at most, from the answers themselves (tokens + the end token).

    A static batch (lm-eval's order: longest prompt first) decodes until its longest answer ends; continuous
    batching gives a finished row's slot the next prompt at once. If a decode step cost the same however many
    rows it holds, the saving would be the ratio of steps; if it cost only per row, the ratio of row-steps.
    A SmolLM2 step holds both (62 / 162 CPU ms for 1 / 8 rows at 300 tokens), so the measured gain lies between.
    """
    import heapq

    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_dir)
    items = sorted((it for suite in record.suites.values() for it in suite.items), key=lambda it: -len(it.prompt))
    lengths = [min(len(tok(it.response, add_special_tokens=False).input_ids) + 1, budget) for it in items]
    batches = [lengths[i:i + batch] for i in range(0, len(lengths), batch)]
    static_steps = sum(max(b) for b in batches)
    slots: list[int] = []
    for n in lengths:  # each slot's finishing step; a new prompt takes the slot that frees first
        heapq.heappush(slots, n if len(slots) < batch else heapq.heappop(slots) + n)
    continuous_steps = max(slots)
    static_rows = sum(len(b) * max(b) for b in batches)
    return {"answer_tokens": sum(lengths), "longest": max(lengths), "static_steps": static_steps,
            "continuous_steps": continuous_steps, "steps_ratio": round(static_steps / continuous_steps, 2),
            "static_row_steps": static_rows, "row_steps_ratio": round(static_rows / sum(lengths), 2)}


def compare(model: str, workload: Workload, work: Path, args: argparse.Namespace) -> dict[str, Any]:
    """tunegate (fresh cache), tunegate again (every response cached), then lm-eval, on one workload."""
    from tunegate.evals.backends import BackendOptions
    from tunegate.evals.models import resolve_model_dir
    from tunegate.evals.runner import evaluate
    from tunegate.evals.spec import eval_spec

    model_dir = str(resolve_model_dir(model))
    options = BackendOptions(device="cpu", dtype="float32", batch_size=args.batch_size, threads=args.threads)
    spec = eval_spec([workload.suite], cache_dir=work / f"cache-{workload.name}-{Path(model_dir).name}",
                     backend_options=options)
    run = lambda: evaluate(model, spec, progress=False)  # noqa: E731
    record, wall, cpu = timed(lambda: profiled(run, args.profile, f"tunegate {workload.name}"))
    _, cached_wall, cached_cpu = timed(run)
    theirs_raw, lm_wall, lm_cpu = timed(lambda: profiled(
        lambda: run_lm_eval(model_dir, workload, work / "tasks", batch_size=args.batch_size),
        args.profile, f"lm-eval {workload.name}"))
    theirs = responses(theirs_raw, workload)
    agree = agreement(record, workload, theirs)
    if agree.get("differing"):
        agree["noise_floor"] = noise_floor(model_dir, workload, agree["differing"][:args.noise_max], theirs,
                                           args.threads)
        agree["noise_checked"] = min(len(agree["differing"]), args.noise_max)
    return {"tunegate_s": round(wall, 1), "tunegate_cpu_s": round(cpu, 1), "lm_eval_s": round(lm_wall, 1),
            "lm_eval_cpu_s": round(lm_cpu, 1), "cached_s": round(cached_wall, 2), "cached_cpu_s": round(cached_cpu, 2),
            "speedup_cpu": round(lm_cpu / cpu, 2), "cached_speedup_cpu": round(lm_cpu / cached_cpu, 1),
            "agreement": agree,
            **({"decode": decode_steps(record, model_dir, args.batch_size, workload.suite.generation().max_new_tokens)}
               if workload.kind == "generate" else {})}


def agreement_text(agree: dict[str, Any]) -> str:
    if "max_abs_logprob_diff" in agree:
        return f"{agree['same']}/{agree['n']} same choice, max |dlogp| {agree['max_abs_logprob_diff']:.1e}"
    text = f"{agree['same']}/{agree['n']} same response"
    if "noise_floor" in agree:
        text += f" ({agree['noise_floor']} of {agree['noise_checked']} differing: lm-eval's answer changes at batch 1)"
    return text


def print_table(model: str, rows: dict[str, tuple[Workload, dict[str, Any]]]) -> None:
    print(f"\n{model}: CPU seconds, one torch thread per side")
    print(f"{'workload':<52} {'tunegate':>9} {'lm-eval':>9} {'ratio':>7} {'cached':>7} {'ratio':>7}  agreement")
    for name, (w, f) in rows.items():
        print(f"{name + ' (' + w.what + ')':<52} {f['tunegate_cpu_s']:9.1f} {f['lm_eval_cpu_s']:9.1f} "
              f"{f['speedup_cpu']:6.2f}x {f['cached_cpu_s']:7.2f} {f['cached_speedup_cpu']:6.0f}x  "
              f"{agreement_text(f['agreement'])}", flush=True)
        if "decode" in f:
            d = f["decode"]
            print(f"{'':<52} decode steps static {d['static_steps']} / continuous {d['continuous_steps']} "
                  f"({d['steps_ratio']}x), row-steps {d['row_steps_ratio']}x: the refill's ceiling", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", action="append", default=None,
                        help="a model name, checkpoint directory or `tunegate twin` folder; repeat for several "
                             "(default: smollm2-135m-instruct, fetched by `tunegate models fetch`)")
    parser.add_argument("--workloads", default="ifeval,gsm8k,mmlu0,mmlu5",
                        help="comma-separated: ifeval, gsm8k (5-shot chat), mmlu0, mmlu5")
    parser.add_argument("--batch-size", type=int, default=32, help="batch size of both sides (default 32)")
    parser.add_argument("--ifeval-n", type=int, default=16, help="IFEval prompts (the first N)")
    parser.add_argument("--ifeval-tokens", type=int, default=1280, help="IFEval budget (the configs': 1280)")
    parser.add_argument("--gsm8k-n", type=int, default=32, help="GSM8K test questions (the first N)")
    parser.add_argument("--gsm8k-tokens", type=int, default=256, help="GSM8K budget (the configs': 256)")
    parser.add_argument("--per-subject", type=int, default=50, help="MMLU 0-shot rows per subject (4 subjects)")
    parser.add_argument("--mmlu5-per-subject", type=int, default=25, help="MMLU 5-shot rows per subject")
    parser.add_argument("--noise-max", type=int, default=4,
                        help="differing answers decoded again alone to see if they are A/A noise (at most N)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads of both sides (default 1)")
    parser.add_argument("--profile", action="store_true", help="print torch profiler's top ops for every side")
    parser.add_argument("--rss-items", type=int, default=0, help="MMLU items of a peak-RSS run (0: none)")
    parser.add_argument("--rss-longest", type=int, default=None,
                        help="run only this many of the RSS set's longest prompts (its heaviest batches)")
    parser.add_argument("--rss-child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--data", default=str(SHARED_DATA), help="folder with ifeval/, gsm8k/ and mmlu/")
    parser.add_argument("--backend", choices=["hf", "openai"], default="hf",
                        help="openai: throughput against a localhost `transformers serve` at --concurrency levels, "
                             "beside the in-process hf backend (instead of the lm-eval comparison)")
    parser.add_argument("--max-new-tokens", type=int, default=16, help="with --backend openai")
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

    torch.set_num_threads(args.threads)
    models = args.model or ["smollm2-135m-instruct"]
    if args.rss_child:
        args.model = models[0]
        return rss_child(args)
    if args.backend == "openai":
        args.model = models[0]
        return main_served(args)
    return main_compare(models, args)


def main_compare(models: list[str], args: argparse.Namespace) -> int:
    """The side-by-side table of every model and workload, then the figures as JSON."""
    from tunegate.evals.models import resolve_model_dir

    figures: dict[str, Any] = {}
    print(f"torch threads {args.threads} per side; batch {args.batch_size}; load average {os.getloadavg()[0]:.1f} "
          f"on {os.cpu_count()} cores", flush=True)
    for model in models:
        warm_up(str(resolve_model_dir(model)))
        rows: dict[str, tuple[Workload, dict[str, Any]]] = {}
        with tempfile.TemporaryDirectory(prefix="tunegate-bench-") as tmp:
            for name in args.workloads.split(","):
                workload = BUILDERS[name](Path(tmp), Path(args.data), args)
                rows[name] = (workload, compare(model, workload, Path(tmp), args))
                print(f"[{model} {name}] {json.dumps(rows[name][1])}", flush=True)
        print_table(model, rows)
        figures[model] = {name: f for name, (_, f) in rows.items()}
        if args.rss_items:
            figures[model]["rss"] = rss_of(model, args)
    print(f"load average {os.getloadavg()[0]:.1f} at the end")
    print("figures: " + json.dumps(figures))
    return 0


def rss_of(model: str, args: argparse.Namespace) -> dict[str, Any]:
    """The peak RSS of a fresh process evaluating ``--rss-items`` MMLU items (``--rss-child``)."""
    cmd = [sys.executable, __file__, "--rss-child", "--model", model, "--rss-items", str(args.rss_items),
           "--data", args.data, "--batch-size", str(args.batch_size), "--threads", str(args.threads)] + (
        ["--rss-longest", str(args.rss_longest)] if args.rss_longest else [])
    child = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1])
    label = f"its {args.rss_longest} longest" if args.rss_longest else "all"
    print(f"peak RSS, MMLU {args.rss_items} items ({label}: {child['items']} evaluated in {child['seconds']:.0f} s): "
          f"{child['peak_rss_gb']:.2f} GB")
    return child


if __name__ == "__main__":
    raise SystemExit(main())
