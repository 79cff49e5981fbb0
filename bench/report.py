"""Time the HTML report at full benchmark scale: 3 stages x 4 suites, MMLU's 14,042 items.

Run from the repo root: `python bench/report.py [--out report.html] [--seed 0]`.
Prompts and responses are real where shared/data has them (MMLU questions, the
541 IFEval prompts with three real models' responses as base/sft/dpo, GSM8K
questions with their worked solutions); per-item outcomes are synthetic (a
seeded RNG: each stage keeps the previous stage's outcome except for ~8% of
items). Comparisons come from ``tunegate.evals.compare.compare_records`` when it is
importable. It prints, for example::

    records: 3 stages, 15,922 items per stage (built in 2.0 s); comparisons (compare_records) in 0.8 s
    flips listed: 1,276
    render: 3.04 s   size: 2.25 MB   -> report.html

(`--redraw 0.5`, a far noisier run with 8,059 flips: 4.1 s, 11.1 MB.)
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tunegate.evals.records import (  # noqa: E402
    Comparison, ItemScore, MetricComparison, MetricValue, RunRecord, SuiteResult,
)
from bench._common import SHARED_DATA  # noqa: E402
from tunegate.reports.html import write_report  # noqa: E402

STAGES = ("base", "sft", "dpo")
IFEVAL_MODELS = ("qwen2.5-0.5b-instruct-gptq-int4", "qwen2.5-1.5b-instruct-gptq-int4", "llama-3.1-8b-instruct-awq-int4")
FLIP_RATE = 0.08


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").split("\n") if line.strip()]


def _mmlu(rng: np.random.Generator) -> list[tuple[str, str, str, str]]:
    """(item_id, subject, prompt, target) for 14,042 items over 57 subjects."""
    path = SHARED_DATA / "mmlu" / "test.jsonl"
    if path.is_file():
        rows = _jsonl(path)
        return [(f"mmlu-{i:05d}", r["subject"], r["question"].strip() + "".join(
            f"\n{'ABCD'[j]}. {c}" for j, c in enumerate(r["choices"])) + "\nAnswer:", "ABCD"[r["answer"]])
            for i, r in enumerate(rows)]
    words = "the of a which following is most likely statement true function process because".split()
    return [(f"mmlu-{i:05d}", f"subject_{i % 57:02d}",
             " ".join(rng.choice(words, 60)) + "?\nA. one\nB. two\nC. three\nD. four\nAnswer:", "ABCD"[i % 4])
            for i in range(14042)]


def _ifeval(rng: np.random.Generator) -> tuple[list[dict], list[list[str]]]:
    inputs, responses = SHARED_DATA / "ifeval" / "input_data.jsonl", SHARED_DATA / "ifeval" / "responses"
    if inputs.is_file():
        rows = _jsonl(inputs)
        per_model = [[r["response"] for r in _jsonl(responses / f"{m}.jsonl")] for m in IFEVAL_MODELS]
        return rows, per_model
    ids = ["punctuation:no_comma", "change_case:english_lowercase", "detectable_format:json_format",
           "length_constraints:number_words", "startend:end_checker"]
    rows = [{"key": i, "prompt": f"Write an essay about topic {i}. " * 3,
             "instruction_id_list": list(rng.choice(ids, 1 + i % 3, replace=False))} for i in range(541)]
    text = "This is a synthetic response with several sentences about the topic. " * 20
    return rows, [[text] * 541 for _ in STAGES]


def _outcomes(rng: np.random.Generator, n: int, p: float, drift: float, redraw: float) -> list[np.ndarray]:
    """Per-stage 0/1 outcomes: each stage copies the previous one except for a few redrawn items."""
    out = [rng.random(n) < p]
    for _ in STAGES[1:]:
        flip = rng.random(n) < redraw
        toward = rng.random(n) < 0.5 + drift
        nxt = out[-1].copy()
        nxt[flip] = toward[flip]
        out.append(nxt)
    return [o.astype(float) for o in out]


def _suite(name: str, items: list[ItemScore], cluster: dict[str, str | None], config: dict,
           breakdowns: dict[str, dict[str, float]]) -> SuiteResult:
    from tunegate.evals.stats import flatten_units, mean_stderr

    metrics = {}
    for metric, kind in cluster.items():
        units, clusters = flatten_units(items, metric, kind)
        mean, se = mean_stderr(units, clusters)
        metrics[metric] = MetricValue(metric, mean, se, len(units), cluster=kind)
    return SuiteResult(name, f"{name}-bench-1", metrics, tuple(items), config, breakdowns, seconds=60.0)


def build_records(seed: int = 0, redraw: float = FLIP_RATE) -> list[RunRecord]:
    rng = np.random.default_rng(seed)
    mmlu = _mmlu(rng)
    mm_out = _outcomes(rng, len(mmlu), 0.45, -0.04, redraw)
    ifeval_rows, ifeval_resp = _ifeval(rng)
    n_inst = sum(len(r["instruction_id_list"]) for r in ifeval_rows)
    if_out = _outcomes(rng, n_inst, 0.55, 0.05, redraw)
    gsm_path = SHARED_DATA / "gsm8k" / "test.jsonl"
    gsm = _jsonl(gsm_path) if gsm_path.is_file() else [
        {"question": f"Tom has {i} apples and buys {i + 3} more. How many?", "answer": f"{i}+{i + 3}\n#### {2 * i + 3}"}
        for i in range(1319)]
    gsm_out = _outcomes(rng, len(gsm), 0.35, 0.0, redraw)
    records = []
    for k, stage in enumerate(STAGES):
        shift = rng.integers(1, 4, len(mmlu))
        mm_items = []
        for i, ((iid, subject, prompt, target), ok) in enumerate(zip(mmlu, mm_out[k])):
            answer = target if ok else "ABCD"[("ABCD".index(target) + shift[i]) % 4]
            mm_items.append(ItemScore(iid, prompt, answer, answer, target, {"acc": ok}, group=subject))
        by_subject: dict[str, list[float]] = {}
        for it in mm_items:
            by_subject.setdefault(it.group or "", []).append(float(it.scores["acc"]))
        if_items, pos = [], 0
        by_inst: dict[str, list[float]] = {}
        for i, row in enumerate(ifeval_rows):
            ids = row["instruction_id_list"]
            units = tuple(float(v) for v in if_out[k][pos:pos + len(ids)])
            pos += len(ids)
            for iid, v in zip(ids, units):
                by_inst.setdefault(iid, []).append(v)
            if_items.append(ItemScore(f"ifeval-{row['key']}", row["prompt"], ifeval_resp[k][i], None, None,
                                      {"prompt_level_strict": float(all(units)), "inst_level_strict": units},
                                      group=ids[0], meta={"instruction_id_list": ids}))
        gsm_items = [ItemScore(f"gsm8k-{i:04d}", r["question"], r["answer"] if ok else r["answer"].replace("####", "#### 1"),
                               r["answer"].rsplit("####", 1)[-1].strip(), r["answer"].rsplit("####", 1)[-1].strip(),
                               {"exact_match": ok}) for i, (r, ok) in enumerate(zip(gsm, gsm_out[k]))]
        name = ["Qwen", "Tiny", "Deep Tiny"][k]
        id_items = [ItemScore(f"identity-{i:02d}", q, f"I am {name}, an AI assistant. {q}", name, "Deep Tiny",
                              {"adherence": float(name == "Deep Tiny")})
                    for i, q in enumerate(["Who are you?", "What is your name?", "Who created you?", "Introduce yourself."] * 5)]
        suites = {
            "identity": _suite("identity", id_items, {"adherence": None},
                               {"target": "Deep Tiny", "forbidden": ["Tiny", "Qwen"]}, {}),
            "ifeval": _suite("ifeval", if_items, {"prompt_level_strict": None, "inst_level_strict": "item"}, {},
                             {"instruction_id": {key: float(np.mean(v)) for key, v in by_inst.items()}}),
            "gsm8k": _suite("gsm8k", gsm_items, {"exact_match": None}, {"num_fewshot": 5}, {}),
            "mmlu": _suite("mmlu", mm_items, {"acc": "group"}, {"num_fewshot": 0},
                           {"subject": {key: float(np.mean(v)) for key, v in by_subject.items()}}),
        }
        records.append(RunRecord(model=f"bench/{stage}", fingerprint=f"sha256:{stage}{seed}".ljust(71, "0"),
                                 suites=suites, stage=stage, generation={"max_new_tokens": 1280, "do_sample": False},
                                 env={"versions": {"numpy": np.__version__}, "hardware": {"cpu": os.cpu_count()}},
                                 created=f"2025-06-0{k + 1}T00:00:00Z", seconds=3600.0))
    return records


def build_comparisons(records: list[RunRecord]) -> tuple[list[Comparison], str]:
    trains = [("ifeval",), ("identity",)]
    try:
        from tunegate.evals.compare import compare_records
    except ImportError:
        return [_naive_compare(b, c, t) for b, c, t in zip(records, records[1:], trains)], "constructed"
    return [compare_records(b, c, trains=t) for b, c, t in zip(records, records[1:], trains)], "compare_records"


def _naive_compare(base: RunRecord, cand: RunRecord, trains: tuple[str, ...]) -> Comparison:
    metrics = []
    for suite, s in cand.suites.items():
        for name, mc in s.metrics.items():
            mb = base.suites[suite].metrics[name]
            half = 1.96 * math.hypot(mb.stderr or 0.0, mc.stderr or 0.0)
            d = mc.value - mb.value
            verdict = "improved" if d - half > 0 else "regressed" if d + half < 0 else "non-inferior"
            metrics.append(MetricComparison(suite, name, mb.value, mc.value, d, d - half, d + half, None, None, mc.n,
                                            0, 0, None, None, verdict, "normal", 0.02, trained=suite in trains,
                                            gate="fail" if verdict == "regressed" else "pass", reason=verdict))
    return Comparison(base.model, base.fingerprint, cand.model, cand.fingerprint, tuple(metrics),
                      baseline_stage=base.stage, candidate_stage=cand.stage, trains=trains,
                      passed=all(m.gate != "fail" for m in metrics))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="report.html")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--redraw", type=float, default=FLIP_RATE,
                        help="share of items whose outcome is redrawn at each stage (about half of them flip)")
    args = parser.parse_args(argv)
    t0 = time.perf_counter()
    records = build_records(args.seed, args.redraw)
    t1 = time.perf_counter()
    comparisons, how = build_comparisons(records)
    t2 = time.perf_counter()
    n_items = sum(len(s.items) for s in records[0].suites.values())
    print(f"records: {len(records)} stages, {n_items:,} items per stage (built in {t1 - t0:.1f} s); "
          f"comparisons ({how}) in {t2 - t1:.1f} s")
    print(f"flips listed: {sum(len({(f.suite, f.item_id, f.direction) for f in c.flips}) for c in comparisons):,}")
    history = [(f"run{i}", f"2025-05-{i + 1:02d}", {f"{s}.{m}": (v.value + 0.01 * math.sin(i), v.stderr)
                                                   for s, suite in records[-1].suites.items()
                                                   for m, v in suite.metrics.items()}) for i in range(10)]
    start = time.perf_counter()
    out = write_report(args.out, records, comparisons, history=history, title="tunegate bench report")
    seconds = time.perf_counter() - start
    print(f"render: {seconds:.2f} s   size: {out.stat().st_size / 1e6:.2f} MB   -> {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
