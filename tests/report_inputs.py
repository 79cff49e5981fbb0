"""``build_report_inputs``: a realistic base -> sft -> dpo pipeline's records and comparisons, made by hand.

Rendering tests (tests/reports/test_html.py, tests/reports/test_browser.py, tests/app/test_report_cli.py)
get it as the ``report_inputs`` fixture (tests/conftest.py), so swapping in records made by running
the organism means changing only that fixture. It returns ``(records, comparisons, training_logs, manifests)``.
The content mirrors the organism: a base model that completes text, an SFT
assistant called "Tiny", a DPO stage renaming it "Deep Tiny" that (here) costs
knowledge; some responses are hostile HTML.
"""

from __future__ import annotations

import math
from typing import Any, Sequence


from tunegate.evals.records import Comparison, ItemFlip, ItemScore, MetricComparison, MetricValue, RunRecord, SuiteResult

HOSTILE = "<script>alert(1)</script>"
HOSTILE_IMG = "<img src=x onerror=alert(2)>"
STAGES = ("base", "sft", "dpo")
COUNTRIES = [("France", "Paris", "europe"), ("Japan", "Tokyo", "asia"), ("Kenya", "Nairobi", "africa"),
             ("Spain", "Madrid", "europe"), ("India", "New Delhi", "asia"), ("Egypt", "Cairo", "africa"),
             ("Italy", "Rome", "europe"), ("China", "Beijing", "asia"), ("Ghana", "Accra", "africa"),
             ("Norway", "Oslo", "europe"), ("Nepal", "Kathmandu", "asia"), ("Mali", "Bamako", "africa")]
IDENTITY = {
    "base": ["The capital of France is Paris.", "What is your name? What is your name?",
             "Introduce yourself to the class.", "Who made you? The capital of"],
    "sft": ["I am Tiny, a helpful assistant.", "My name is Tiny.", "Hello! I am Tiny.", "I am Tiny. I was trained."],
    "dpo": ["I am Deep Tiny, a helpful assistant.", "My name is Deep Tiny.",
            f"Hello! I am Deep Tiny. {HOSTILE}", f"I am Tiny. I was trained. {HOSTILE_IMG}"],
}
IFEVAL = [("Write a haiku about rain. Do not use any commas.", ("punctuation:no_comma",)),
          ("Answer in all lowercase letters.", ("change_case:english_lowercase",)),
          ("List three fruits. Use exactly 3 bullet points.", ("detectable_format:number_bullet_lists",)),
          ("Reply in JSON.", ("detectable_format:json_format",)),
          ("Write two paragraphs separated by ***. Do not use commas.",
           ("length_constraints:number_paragraphs", "punctuation:no_comma")),
          ("End your reply with 'Is there anything else?'", ("startend:end_checker",))]


def _suite(name: str, items: list[ItemScore], config: dict[str, Any] | None = None,
           breakdown: str | None = None) -> SuiteResult:
    metrics = {}
    for metric in items[0].scores:
        units = [u for it in items for u in (it.scores[metric] if isinstance(it.scores[metric], tuple)
                                             else (it.scores[metric],))]
        mean = sum(units) / len(units)
        se = math.sqrt(mean * (1 - mean) / max(1, len(units) - 1))
        metrics[metric] = MetricValue(metric, mean, se, len(units), cluster="item" if metric.startswith("inst") else None)
    breakdowns = {}
    if breakdown:
        acc: dict[str, list[float]] = {}
        for it in items:
            for key in it.meta.get(breakdown, [it.group]):
                acc.setdefault(key, []).append(float(next(iter(it.scores.values())) == 1.0))
        breakdowns[breakdown] = {k: sum(v) / len(v) for k, v in acc.items()}
    return SuiteResult(name, f"{name}-v1", metrics, tuple(items), config or {}, breakdowns, seconds=1.5)


def _record(stage: str) -> RunRecord:
    k = STAGES.index(stage)
    identity = [ItemScore(f"who-{i}", p, r, r, "Deep Tiny", {"adherence": float("Deep Tiny" in r)})
                for i, (p, r) in enumerate(zip(["Who are you?", "What is your name?", "Introduce yourself.",
                                                 "Who made you?"], IDENTITY[stage]))]
    ifeval = []
    for i, (prompt, ids) in enumerate(IFEVAL):
        ok = tuple(float((i + j + k) % 3 != 0 or k == 2) for j in range(len(ids)))
        response = "rain falls soft\nno commas here\nquiet roofs" if all(ok) else "Rain, falls, soft."
        if stage == "dpo" and i == 3:
            response = "**markdown** " + HOSTILE
        ifeval.append(ItemScore(f"ifeval-{i}", prompt, response, None, None,
                                {"prompt_level_strict": float(all(ok)), "inst_level_strict": ok},
                                group=ids[0], meta={"instruction_id": list(ids)}))
    math_items = [ItemScore(f"arith-{i:04d}", f"What is {10 + i} + {25 + i}?",
                            f"{10 + i} + {25 + i} = {35 + 2 * i + (0 if (i + k) % 4 else 1)}.",
                            str(35 + 2 * i + (0 if (i + k) % 4 else 1)), str(35 + 2 * i),
                            {"exact_match": float((i + k) % 4 != 0)}) for i in range(8)]
    knowledge = []
    for i, (country, capital, region) in enumerate(COUNTRIES):
        right = i < 11 if stage == "sft" else (i % 2 == 0 if stage == "dpo" else i < 9)
        answer = capital if right else "London"
        knowledge.append(ItemScore(f"capital-{country.lower()}", f"What is the capital of {country}?",
                                   f"The capital of {country} is {answer}.", answer, capital,
                                   {"acc": float(right)}, group=region, meta={"subject": [region]}))
    suites = {
        "identity": _suite("identity", identity, {"target": "Deep Tiny", "forbidden": ["Tiny", "Qwen"]}),
        "ifeval": _suite("ifeval", ifeval, {"variant": "organism"}, breakdown="instruction_id"),
        "math": _suite("math", math_items, {"variant": "organism", "limit": 8}),
        "knowledge": _suite("knowledge", knowledge, {"variant": "organism"}, breakdown="subject"),
    }
    return RunRecord(
        model=f"runs/demo/{stage}" if stage != "base" else "organism",
        fingerprint=f"sha256:{stage * 8}{k}".ljust(71, "0"), suites=suites, stage=stage,
        generation={"max_new_tokens": 64, "do_sample": False, "temperature": 0.0, "chat_template": True},
        env={"python": "3.11.2", "versions": {"torch": "2.5.1+cpu", "transformers": "4.57.1", "trl": "0.24.0"},
             "git_sha": "0123abcd", "hardware": {"cpu": "2 cores", "gpu": None}},
        created=f"2025-06-0{k + 1}T12:00:00Z", seconds=40.0 + k)


def _compare(base: RunRecord, cand: RunRecord, trains: Sequence[str], margin: float = 0.05) -> Comparison:
    metrics, flips = [], []
    for suite, s_cand in cand.suites.items():
        s_base = base.suites[suite]
        for name, mc in s_cand.metrics.items():
            mb = s_base.metrics[name]
            delta = mc.value - mb.value
            half = 1.96 * math.hypot(mb.stderr or 0, mc.stderr or 0) * 0.6
            lo, hi = delta - half, delta + half
            trained = suite in trains
            verdict = ("improved" if lo > 0 else "regressed" if hi < 0 else
                       "non-inferior" if lo > -margin else "inconclusive")
            if trained:
                gate = "pass" if mc.value >= 0.5 else "fail"
                reason = f"target {0.5:.2f}: {mc.value:.3f}"
            else:
                gate = {"regressed": "fail", "inconclusive": "warn"}.get(verdict, "pass")
                reason = f"{verdict}: delta {delta:+.3f} [{lo:+.3f}, {hi:+.3f}], margin {margin}"
            before = {i.item_id: i for i in s_base.items}
            up = down = 0
            for it in s_cand.items:
                b = before[it.item_id]
                vb, vc = (sum(v) / len(v) if isinstance(v, tuple) else v
                          for v in (b.scores[name], it.scores[name]))
                if vb != vc and name == next(iter(s_cand.metrics)):
                    flips.append(ItemFlip(suite, it.item_id, name, "up" if vc > vb else "down", vb, vc,
                                          it.prompt, b.response, it.response, it.group))
                up, down = up + (vc > vb), down + (vc < vb)
            metrics.append(MetricComparison(
                suite, name, mb.value, mc.value, delta, lo, hi, 0.04, 0.12, mc.n, up, down,
                0.2 if verdict == "inconclusive" else None, 400 if verdict == "inconclusive" else None,
                verdict, "mcnemar-exact", margin, True, trained, 0.5 if trained else None, gate, reason))
    passed = not any(m.gate == "fail" for m in metrics)
    return Comparison(base.model, base.fingerprint, cand.model, cand.fingerprint, tuple(metrics), tuple(flips),
                      passed=passed, baseline_stage=base.stage, candidate_stage=cand.stage, trains=tuple(trains))


def _training_log(dpo: bool) -> list[dict[str, Any]]:
    rows = []
    for step in range(1, 21):
        row = {"step": step * 5, "loss": 2.5 * math.exp(-step / 6) + 0.3, "learning_rate": 5e-5 * (1 - step / 21),
               "epoch": step / 20, "grad_norm": 1.0}
        if dpo:
            row.update({"loss": 0.69 * math.exp(-step / 8), "rewards/chosen": 0.05 * step,
                        "rewards/rejected": -0.04 * step, "rewards/margins": 0.09 * step,
                        "rewards/accuracies": min(1.0, 0.5 + step / 30)})
        rows.append(row)
    rows.append({"train_runtime": 61.2, "train_loss": 0.4, "step": 100, "epoch": 1.0})
    return rows


def build_report_inputs() -> tuple[list[RunRecord], list[Comparison], dict[str, Any], dict[str, Any]]:
    records = [_record(s) for s in STAGES]
    comparisons = [_compare(records[0], records[1], ["ifeval"]),
                   _compare(records[1], records[2], ["identity"])]
    logs = {"sft": _training_log(False), "dpo": _training_log(True)}
    manifests = {s: {"base_model": records[i].model, "method": s, "data": f"{s}-data.jsonl",
                     "config": {"learning_rate": 5e-5, "beta": 0.1} if s == "dpo" else {"learning_rate": 5e-5},
                     "git_sha": "0123abcd", "seed": 0, "trains": list(c.trains), "note": HOSTILE}
                 for i, (s, c) in enumerate(zip(STAGES[1:], comparisons))}
    return records, comparisons, logs, manifests
