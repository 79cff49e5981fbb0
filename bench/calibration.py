"""Calibrate the gate: family-wise false alarms and power, through ``tunegate compare``, on records whose truth is known.

Run from the repo root::

    python bench/calibration.py --gate configs/gate.yaml --trains identity --sims 200 --workers 2

Every simulated pair is two RunRecord JSON files written by this script's own generator (it imports nothing
from tunegate's statistics) and judged by ``tunegate compare BASE CAND --gate G --trains T --out C.json``
(``tunegate.cli.main``, the function the console script calls). A pair is *caught* when the command exits 1;
a *false alarm* is exit 1 when nothing changed. It prints, for example::

    | n per suite | false alarms (no change, family-wise) | 2-pt drop caught (math / ifeval / knowledge) | 5-pt drop caught | ...
    | 500 | 0.060 | 0.15 / 0.14 / 0.26 | 0.75 / 0.74 / 0.92 | ...

The generator (``Generator``): every unit's outcome is ``latent > threshold`` with a standard-normal latent
made of a part shared by both runs (the item's difficulty, plus its cluster's) and a part drawn afresh per
run (plus a per-run shock shared by the cluster): two checkpoints agree on most items, and units of one
IFEval prompt or one MMLU subject change together. A drop of d points moves the candidate's threshold so
that the gated metric's expected accuracy falls by exactly d (closed form for math and knowledge; bisection
on a fixed 400,000-prompt sample for IFEval's all-instructions-followed prompt score).

- math: GSM8K-like, independent items, accuracy 0.45; ``exact_match`` and a laxer ``flexible_match``
- ifeval: 1-3 instructions per prompt (60/30/10 %), instruction accuracy 0.65; ``prompt_strict``
  and ``inst_strict`` (units clustered by prompt)
- knowledge: MMLU-like, 57 subjects, accuracy 0.5; ``accuracy`` clustered by subject
- identity: 100 probes, the trained suite: the candidate answers with the new name on all of them

``--grid`` adds drops of 3, 4 and 6 points at n=500 and prints, per suite, the drop caught 80% of the
time (interpolated) beside the median MDE ``tunegate compare`` printed for that metric.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import math
import os
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.stats import norm

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

SUITES = ("math", "ifeval", "knowledge")
GATED = {"math": "exact_match", "ifeval": "prompt_strict", "knowledge": "accuracy"}
SUBJECTS = 57
IDENTITY_PROBES = 100


@dataclass(frozen=True)
class Process:
    """One suite's generating process (variances are shares of the unit latent's total of 1)."""

    accuracy: float  # expected unit accuracy of the baseline (instruction-level for ifeval)
    shared: float  # share of the latent both runs share (item + cluster difficulty)
    cluster: float = 0.0  # part of ``shared`` common to the cluster (prompt or subject difficulty)
    shock: float = 0.0  # per-run shock common to the cluster: units of a cluster change together


PROCESSES = {
    "math": Process(accuracy=0.45, shared=0.90),
    "ifeval": Process(accuracy=0.65, shared=0.88, cluster=0.30, shock=0.04),
    "knowledge": Process(accuracy=0.50, shared=0.95, cluster=0.10, shock=0.005),
}
FLEXIBLE_OFFSET = 0.25  # flexible_match: the same latent over a lower threshold (it accepts more answers)
INSTRUCTIONS = (np.array([1, 2, 3]), np.array([0.6, 0.3, 0.1]))


class Generator:
    """Paired runs of the three suites (plus identity) at ``n`` items per suite, from the processes above."""

    def __init__(self, processes: dict[str, Process] = PROCESSES) -> None:
        self.processes = processes
        self._ifeval_mc = np.random.default_rng(12345)  # the fixed sample that sizes IFEval's threshold
        self._ifeval_sample = self._ifeval_latents(self._ifeval_mc, 400_000)
        self._ifeval_cache: dict[float, float] = {}

    # --- thresholds ------------------------------------------------------------------------

    def threshold(self, suite: str, drop: float) -> float:
        """The candidate's threshold for an expected drop of ``drop`` in the suite's gated metric."""
        p = self.processes[suite].accuracy
        if suite != "ifeval":
            return float(norm.ppf(1 - (p - drop)))
        base_t = float(norm.ppf(1 - p))
        if drop == 0:
            return base_t
        if drop not in self._ifeval_cache:
            target = self._prompt_accuracy(base_t) - drop
            lo, hi = base_t, base_t + 3.0
            for _ in range(60):
                mid = (lo + hi) / 2
                lo, hi = (mid, hi) if self._prompt_accuracy(mid) > target else (lo, mid)
            self._ifeval_cache[drop] = (lo + hi) / 2
        return self._ifeval_cache[drop]

    def _prompt_accuracy(self, t: float) -> float:
        latents, prompt = self._ifeval_sample
        ok = np.ones(prompt.max() + 1, bool)
        np.logical_and.at(ok, prompt, latents > t)
        return float(ok.mean())

    def _ifeval_latents(self, rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
        """Latents of one run over ``n`` fresh prompts (both parts drawn: the marginal distribution)."""
        k = rng.choice(INSTRUCTIONS[0], size=n, p=INSTRUCTIONS[1])
        prompt = np.repeat(np.arange(n), k)
        pr = self.processes["ifeval"]
        shared = math.sqrt(pr.cluster) * rng.standard_normal(n)[prompt] + math.sqrt(pr.shared - pr.cluster) * rng.standard_normal(len(prompt))
        own = math.sqrt(pr.shock) * rng.standard_normal(n)[prompt] + math.sqrt(1 - pr.shared - pr.shock) * rng.standard_normal(len(prompt))
        return shared + own, prompt

    # --- one pair --------------------------------------------------------------------------

    def pair(self, rng: np.random.Generator, sizes: tuple[int, ...], drop_suite: str | None = None,
             drop: float = 0.0) -> tuple[dict, dict]:
        """(baseline, candidate) RunRecord dicts with ``sizes`` items of math, ifeval, knowledge;
        ``drop_suite`` drops by ``drop`` in expectation."""
        base_suites, cand_suites = {}, {}
        for suite, n in zip(SUITES, sizes):
            pr = self.processes[suite]
            if suite == "ifeval":
                k = rng.choice(INSTRUCTIONS[0], size=n, p=INSTRUCTIONS[1])
                cluster = np.repeat(np.arange(n), k)
                n_clusters = n
            else:
                cluster = np.arange(n) % SUBJECTS if suite == "knowledge" else np.arange(n)
                n_clusters = SUBJECTS if suite == "knowledge" else n
            units = len(cluster)
            shared = (math.sqrt(pr.cluster) * rng.standard_normal(n_clusters)[cluster]
                      + math.sqrt(pr.shared - pr.cluster) * rng.standard_normal(units))

            def run() -> np.ndarray:
                return shared + (math.sqrt(pr.shock) * rng.standard_normal(n_clusters)[cluster]
                                 + math.sqrt(1 - pr.shared - pr.shock) * rng.standard_normal(units))

            t0 = self.threshold(suite, 0.0)
            t1 = self.threshold(suite, drop if suite == drop_suite else 0.0)
            lat0, lat1 = run(), run()
            base_suites[suite] = _suite(suite, n, cluster, lat0, t0)
            cand_suites[suite] = _suite(suite, n, cluster, lat1, t1)
        m = min(min(sizes), IDENTITY_PROBES)
        base_suites["identity"] = _identity(m, adherent=False)
        cand_suites["identity"] = _identity(m, adherent=True)
        return _record("base", base_suites), _record("candidate", cand_suites)


def _suite(suite: str, n: int, cluster: np.ndarray, latent: np.ndarray, t: float) -> dict:
    items = []
    if suite == "math":
        exact, flex = (latent > t).astype(float), (latent > t - FLEXIBLE_OFFSET).astype(float)
        items = [_item(f"math-{i}", {"exact_match": exact[i], "flexible_match": flex[i]}) for i in range(n)]
        specs = [("exact_match", None), ("flexible_match", None)]
    elif suite == "knowledge":
        acc = (latent > t).astype(float)
        items = [_item(f"mmlu-{i}", {"accuracy": acc[i]}, group=f"subject-{cluster[i]:02d}") for i in range(n)]
        specs = [("accuracy", "group")]
    else:
        ok = (latent > t).astype(float)
        starts = np.searchsorted(cluster, np.arange(n))
        ends = np.append(starts[1:], len(cluster))
        for i in range(n):
            inst = tuple(float(x) for x in ok[starts[i]:ends[i]])
            items.append(_item(f"ifeval-{i}", {"prompt_strict": float(min(inst)), "inst_strict": inst}))
        specs = [("prompt_strict", None), ("inst_strict", "item")]
    return _suite_dict(suite, items, specs)


def _identity(n: int, adherent: bool) -> dict:
    items = [_item(f"probe-{i}", {"adherence": float(adherent), "leak_rate": float(not adherent)}) for i in range(n)]
    return _suite_dict("identity", items, [("adherence", None), ("leak_rate", None)], lower_better={"leak_rate"})


def _item(item_id: str, scores: dict, group: str | None = None) -> dict:
    return {"item_id": item_id, "prompt": "", "response": "", "answer": None, "target": None,
            "scores": {k: list(v) if isinstance(v, tuple) else float(v) for k, v in scores.items()},
            "group": group, "meta": {}}


def _suite_dict(suite: str, items: list[dict], specs: list, lower_better: set[str] = frozenset()) -> dict:
    metrics = {}
    for name, cluster in specs:
        values = [v for it in items for v in np.atleast_1d(it["scores"][name])]
        metrics[name] = {"name": name, "value": float(np.mean(values)), "stderr": None, "n": len(values),
                         "higher_is_better": name not in lower_better, "binary": True, "cluster": cluster}
    return {"suite": suite, "version": "calibration-1", "metrics": metrics, "items": items, "config": {},
            "breakdowns": {}, "seconds": 0.0}


def _record(model: str, suites: dict) -> dict:
    return {"schema_version": 1, "kind": "run_record", "model": model, "fingerprint": f"calibration-{model}",
            "stage": model, "created": "", "seconds": 0.0, "generation": {}, "env": {}, "suites": suites}


# --- through `tunegate compare` --------------------------------------------------------------


def compare(base: dict, cand: dict, gate: str, trains: str, workdir: Path) -> tuple[int, dict]:
    """Write both records and run ``tunegate compare`` on them: (exit code, the Comparison JSON it wrote)."""
    from tunegate.cli import main

    paths = [workdir / "base.json", workdir / "cand.json"]
    for path, data in zip(paths, (base, cand)):
        path.write_text(json.dumps(data))
    out = workdir / "comparison.json"
    out.unlink(missing_ok=True)
    argv = ["compare", str(paths[0]), str(paths[1]), "--gate", gate, "--out", str(out)]
    if trains:
        argv += ["--trains", trains]
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        rc = main(argv)
    return rc, json.loads(out.read_text()) if out.exists() else {}


@dataclass(frozen=True)
class Cell:
    n: tuple[int, ...]  # items of math, ifeval, knowledge
    drop_suite: str | None
    drop: float
    sims: int
    seed: int


def run_cell(cell: Cell, gate: str, trains: str) -> dict:
    """Simulate one cell: exit codes, which gated metrics failed, the MDEs printed, the discordance seen."""
    gen = Generator()
    rng = np.random.default_rng(cell.seed)
    failed_exit = 0
    metric_failed = {s: 0 for s in SUITES}
    mdes: dict[str, list[float]] = {s: [] for s in SUITES}
    discordant: dict[str, list[float]] = {s: [] for s in SUITES}
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(cell.sims):
            base, cand = gen.pair(rng, cell.n, cell.drop_suite, cell.drop)
            rc, comp = compare(base, cand, gate, trains, Path(tmp))
            if rc not in (0, 1):
                raise SystemExit(f"tunegate compare exited {rc}")
            failed_exit += rc == 1
            for m in comp["metrics"]:
                if m["metric"] == GATED.get(m["suite"]):
                    metric_failed[m["suite"]] += m["gate"] == "fail"
                    if m["mde"] is not None:
                        mdes[m["suite"]].append(m["mde"])
                    discordant[m["suite"]].append((m["flips_up"] + m["flips_down"]) / m["n"])
    return {"cell": cell, "exit1": failed_exit / cell.sims,
            "metric_failed": {s: v / cell.sims for s, v in metric_failed.items()},
            "mde": {s: float(np.median(v)) if v else math.nan for s, v in mdes.items()},
            "discordance": {s: float(np.mean(v)) if v else math.nan for s, v in discordant.items()}}


def cells(ns: list[tuple[int, ...]], sims: int, grid: bool) -> list[Cell]:
    """No change (2 x ``sims`` pairs: false alarms are rare), drops of 2 and 5 points in each suite, and
    with ``grid`` drops of 3, 4, 6 points at n=500 (``sims // 2`` pairs)."""
    out, seed = [], 0
    for n in ns:
        drops: list[tuple[str | None, float, int]] = [(None, 0.0, 2 * sims)]
        drops += [(s, d, sims) for d in (0.02, 0.05) for s in SUITES]
        if grid and n == (500,) * 3:
            drops += [(s, d, max(1, sims // 2)) for d in (0.03, 0.04, 0.06) for s in SUITES]
        for suite, d, k in drops:
            seed += 1
            out.append(Cell(n, suite, d, k, seed))
    return out


def power_at_80(points: list[tuple[float, float]]) -> float:
    """The drop caught 80% of the time, interpolated linearly between the grid points around it."""
    points = sorted(points)
    for (d0, p0), (d1, p1) in zip(points, points[1:]):
        if p0 < 0.8 <= p1:
            return d0 + (0.8 - p0) * (d1 - d0) / (p1 - p0)
    return math.nan


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--gate", default="configs/gate.yaml")
    ap.add_argument("--trains", default="identity")
    ap.add_argument("--sims", type=int, default=200)
    ap.add_argument("--n", default="100,500,2000",
                    help="items per suite, comma-separated rows; a row may give math/ifeval/knowledge, e.g. 1319/541/2000")
    ap.add_argument("--grid", action="store_true", help="also drops of 3, 4, 6 points at n=500: MDE vs observed")
    ap.add_argument("--workers", type=int, default=min(4, os.cpu_count() or 1))
    args = ap.parse_args()
    rows = [tuple(int(v) for v in x.split("/")) * (3 if "/" not in x else 1) for x in args.n.split(",")]
    todo = cells(rows, args.sims, args.grid)
    t0, c0 = time.time(), time.process_time()
    with ProcessPoolExecutor(args.workers) as pool:
        results = list(pool.map(run_cell, todo, [args.gate] * len(todo), [args.trains] * len(todo)))
    wall = time.time() - t0
    by = {(r["cell"].n, r["cell"].drop_suite, r["cell"].drop): r for r in results}
    print(f"gate {args.gate}, trains {args.trains or '-'}; {2 * args.sims} pairs without change, {args.sims} per drop; "
          f"caught = `tunegate compare` exits 1")
    print("| n per suite | false alarms (no change, family-wise) | 2-pt drop caught (math / ifeval / knowledge) "
          "| 5-pt drop caught | printed MDE (median, no change) | discordant units |")
    print("|---|---|---|---|---|---|")
    for n in dict.fromkeys(r["cell"].n for r in results):
        null = by[(n, None, 0.0)]
        two = " / ".join(f"{by[(n, s, 0.02)]['exit1']:.2f}" for s in SUITES)
        five = " / ".join(f"{by[(n, s, 0.05)]['exit1']:.2f}" for s in SUITES)
        mde = " / ".join(f"{null['mde'][s]:.3f}" for s in SUITES)
        disc = " / ".join(f"{null['discordance'][s]:.3f}" for s in SUITES)
        print(f"| {n[0] if len(set(n)) == 1 else '/'.join(map(str, n))} | {null['exit1']:.3f} | {two} | {five} | {mde} | {disc} |")
    n500 = (500,) * 3
    if args.grid and (n500, None, 0.0) in by:
        print("\nn=500: drop caught 80% of the time (that metric fails; interpolated) vs the MDE printed")
        for s in SUITES:
            pts = [(d, by[(n500, s, d)]["metric_failed"][s]) for d in (0.02, 0.03, 0.04, 0.05, 0.06)]
            obs, printed = power_at_80(pts), by[(n500, None, 0.0)]["mde"][s]
            grid = ", ".join(f"{d:.2f}: {p:.2f}" for d, p in pts)
            print(f"  {s}.{GATED[s]}: observed {obs:.3f}, printed {printed:.3f} (diff {printed - obs:+.3f}); {grid}")
    cpu = time.process_time() - c0
    print(f"\n{len(todo)} cells, {sum(c.sims for c in todo)} pairs in {wall:.0f} s wall ({args.workers} workers; "
          f"this process {cpu:.0f} s CPU)", file=sys.stderr)


if __name__ == "__main__":
    main()
