"""Time ``tunegate demo`` as a user runs it: a fresh process and cache; each phase, CPU time, memory, ``demo_seconds`` last.

    python bench/demo.py            # the README's demo command in a subprocess, fresh cache, no NLTK_DATA needed
    check inputs        0.3 s
    eval base          14.0 s
    data sft            0.1 s
    train sft         356.6 s
    eval sft           13.6 s
    data dpo            1.1 s
    train dpo          27.5 s
    eval dpo            5.4 s
    report             12.3 s
    other              75.6 s       (process start-up and imports, comparisons, summary)
    sft_vs_base: FAILED (knowledge.accuracy regressed, knowledge.accuracy_heldout regressed, ...)
    dpo_vs_sft: passed
    cpu_seconds: 65.3               (user + sys of the demo process and its children)
    peak_rss_mb: 811
    demo_seconds: 506.5             (wall, process start to exit)

(That run: one torch thread, on 2 cores that other processes kept ~6x oversubscribed, hence the wall times.)

Targets (issue 15): the whole demo in at most 60 s on 2 idle CPU cores, peak memory under 4 GB. On a
shared machine wall time is noisy; ``cpu_seconds`` is the steadier figure.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "run"
        env = {**os.environ, "TUNEGATE_CACHE": str(Path(tmp) / "cache")}
        start = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "tunegate", "demo", "--out", str(out), "--quiet"],
                              cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        seconds = time.perf_counter() - start
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        if proc.returncode != 0:
            print(proc.stderr[-3000:], file=sys.stderr)
            return proc.returncode
        summary = json.loads((out / "summary.json").read_text())
    for phase, took in summary["phases"].items():
        print(f"{phase:<18} {took:6.1f} s")
    print(f"{'other':<18} {seconds - sum(summary['phases'].values()):6.1f} s")
    for name, comp in summary["comparisons"].items():
        failed = [f"{k} {v['verdict']}" for k, v in comp["verdicts"].items() if v["gate"] == "fail"]
        print(f"{name}: {'passed' if comp['passed'] else 'FAILED'}" + (f" ({', '.join(failed)})" if failed else ""))
    print(f"cpu_seconds: {usage.ru_utime + usage.ru_stime:.1f}")
    print(f"peak_rss_mb: {usage.ru_maxrss / 1024:.0f}")
    print(f"demo_seconds: {seconds:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
