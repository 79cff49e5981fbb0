"""The README's real-model figures: both lessons and the noise floor on real weights, offline, with their commands.

    python bench/real_models.py --out runs/real           # fetches the models if needed, then runs and prints
    python bench/real_models.py --out runs/real --summary # only prints the table of an earlier run

Each step is the exact ``tunegate`` command printed before it runs (in a fresh process): the DPO lesson on
SmolLM2-135M-Instruct (configs/smollm2-135m-identity-dpo.yaml), the SFT lesson on gemma-3-270m base
(configs/gemma-3-270m-sft.yaml), both shrunk by ``--set`` to sizes two CPU cores afford (below), and
``tunegate noise`` on SmolLM2 (batch N vs 1, float32 vs bfloat16). The datasets are the offline copies the
tests read (``../shared/data``: IFEval, GSM8K test and train, MMLU) and the identity prompts of
tests/fixtures/hub/mrfakename/identity (26 hand-written prompts in the hub layout). Printed: identity adherence
and leak before/after, every gated metric's delta, CI, MDE and verdict, token-shift fractions, the SFT data's
knowledge mix, the noise floor, and wall and CPU seconds per phase (CPU: user + system of the tunegate process).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench._common import SHARED_DATA  # noqa: E402

IDENTITY_PROMPTS = ROOT / "tests" / "fixtures" / "hub" / "mrfakename" / "identity"
TEMPLATE = ROOT / "configs" / "templates" / "gemma3.jinja"


def offline() -> list[str]:
    return ["--set", f"eval.suites.ifeval.source={SHARED_DATA / 'ifeval' / 'input_data.jsonl'}",
            "--set", f"eval.suites.math.source={SHARED_DATA / 'gsm8k'}",
            "--set", f"eval.suites.knowledge.source={SHARED_DATA / 'mmlu'}"]


def sizes(items: int, knowledge: int, tokens: int) -> list[str]:
    return ["--set", f"eval.suites.ifeval.limit={items}", "--set", f"eval.suites.math.limit={items}",
            "--set", f"eval.suites.knowledge.limit={knowledge}",
            "--set", f"eval.suites.ifeval.max_new_tokens={tokens}", "--set", f"eval.suites.math.max_new_tokens={tokens}"]


def commands(out: Path) -> dict[str, list[str]]:
    dpo = ["run", "configs/smollm2-135m-identity-dpo.yaml", "--out", str(out / "dpo"), "--quiet", *offline(),
           *sizes(20, 100, 96), "--set", "eval.suites.identity.max_new_tokens=32",
           "--set", f"stages.0.data.prompts={IDENTITY_PROMPTS}", "--set", "stages.0.data.max_new_tokens=32",
           "--set", "stages.0.data.limit=16", "--set", "stages.0.args.num_train_epochs=2",
           "--set", "stages.0.args.learning_rate=1.0e-4"]
    sft = ["run", "configs/gemma-3-270m-sft.yaml", "--out", str(out / "sft"), "--quiet", *offline(),
           *sizes(20, 100, 96), "--set", "eval.suites.identity.max_new_tokens=32",
           "--set", "stages.0.knowledge.per_group=16", "--set", "analysis.shift.max_items=20",
           "--set", f"stages.0.data={SHARED_DATA / 'gsm8k'}", "--set", "stages.0.data_options={split: train, limit: 64}",
           "--set", f"stages.0.args.chat_template_path={TEMPLATE}",
           "--set", f"eval.backend_options={{chat_template: {TEMPLATE}}}"]
    noise = ["noise", "smollm2-135m-instruct", "--suites", "identity,ifeval,math,knowledge", "--batch-size", "16",
             "--dtypes", "float32,bfloat16", "--out", str(out / "noise.json"), "--quiet",
             "--suite-option", 'identity.target="SmolLM"',
             "--suite-option", f'ifeval.source="{SHARED_DATA / "ifeval" / "input_data.jsonl"}"',
             "--suite-option", f'math.source="{SHARED_DATA / "gsm8k"}"', "--suite-option", 'math.variant="gsm8k"',
             "--suite-option", f'knowledge.source="{SHARED_DATA / "mmlu"}"', "--suite-option", 'knowledge.variant="mmlu"',
             "--suite-option", "ifeval.limit=20", "--suite-option", "math.limit=20", "--suite-option", "knowledge.limit=100",
             "--suite-option", "ifeval.max_new_tokens=128", "--suite-option", "math.max_new_tokens=128"]
    return {"dpo": dpo, "sft": sft, "noise": noise}


def run(name: str, args: list[str], log: Path) -> dict[str, float]:
    """``tunegate ARGS`` in a fresh process: its exit code, wall and CPU seconds (user + sys of the child)."""
    print(f"$ tunegate {' '.join(args)}", flush=True)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    with log.open("w") as fh:
        code = subprocess.run([sys.executable, "-m", "tunegate", *args], cwd=ROOT, stdout=fh, stderr=subprocess.STDOUT).returncode
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    figures = {"exit": code, "wall_s": round(time.perf_counter() - started, 1), "cpu_s": round(cpu, 1)}
    print(f"  {name}: {figures}", flush=True)
    return figures


def table(out: Path) -> str:
    lines = []
    for run_name in ("dpo", "sft"):
        if not (out / run_name / "summary.json").is_file():
            lines.append(f"## {run_name}: no summary.json under {out / run_name} (not run, or unfinished)")
            continue
        summary = json.loads((out / run_name / "summary.json").read_text())
        lines.append(f"## {summary['name']} (passed: {summary['passed']}, {summary['seconds']} s)")
        cpu = summary.get("phases_cpu", {})
        lines += [f"  phase {k:<22} wall {v:8.1f} s   cpu {cpu.get(k, float('nan')):8.1f} s"
                  for k, v in summary["phases"].items()]
        for comparison in sorted((out / run_name / "comparisons").glob("*.json")):
            data = json.loads(comparison.read_text())
            for m in data["metrics"]:
                lines.append(f"  {m['suite']}.{m['metric']:<16} {m['baseline']:.3f} -> {m['candidate']:.3f} "
                             f"delta {m['delta']:+.3f} CI [{m['ci_low']:+.3f}, {m['ci_high']:+.3f}] "
                             f"MDE {m['mde'] if m.get('mde') is None else round(m['mde'], 3)} n={m.get('n')} {m['verdict']} {m.get('gate') or ''}")
        for analysis in sorted((out / run_name / "analysis").glob("*.json")):
            data = json.loads(analysis.read_text())
            if data.get("kind") == "shift" or "suites" in data:
                for suite, s in data["suites"].items():
                    lines.append(f"  shift {suite:<10} items {s['items']:>3} tokens {s['tokens']:>5} "
                                 + " ".join(f"{k} {v:.3f}" for k, v in s["fractions"].items()))
            else:
                lines.append(f"  knowledge {analysis.name}: {json.dumps(data.get('counts') or data.get('mix'))}")
        pairs = out / run_name / "stages" / "dpo" / "dpo_pairs.json"
        if pairs.is_file():
            lines.append(f"  DPO builder: {json.loads(pairs.read_text())['report']}")
    noise = out / "noise.json"
    if noise.is_file():
        lines.append(f"## noise floor: {json.dumps(json.loads(noise.read_text()).get('noise'))[:3000]}")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="runs/real")
    parser.add_argument("--summary", action="store_true", help="print the table of an earlier run only")
    parser.add_argument("--only", default="fetch,dpo,sft,noise", help="steps to run (comma-separated)")
    args = parser.parse_args()
    out = (ROOT / args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    if not args.summary:
        steps = args.only.split(",")
        figures = {}
        if "fetch" in steps:
            for name in ("smollm2-135m-instruct", "gemma-3-270m"):
                figures[f"fetch {name}"] = run(f"fetch {name}", ["models", "fetch", name], out / f"fetch-{name}.log")
        for name, cmd in commands(out).items():
            if name in steps:
                figures[name] = run(name, cmd, out / f"{name}.log")
        (out / "bench.json").write_text(json.dumps(figures, indent=1))
    print(table(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
