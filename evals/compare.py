"""Compare two saved RunRecords item by item: paired deltas, CIs, p-values, flips; the gate decides.

Nothing here runs a model. Example (GSM8K's 1319 items after a DPO stage that trained only ``identity``;
``bench/calibration.py``'s generator, a true 5-point drop)::

    comp = compare_records(RunRecord.load("base.json"), RunRecord.load("dpo.json"),
                           GateConfig.from_yaml("configs/gate.yaml"), trains=("identity",))
    m = find_metric(comp, "math.exact_match")   # MetricComparison
    m.baseline, m.candidate, m.delta          # 0.435, 0.383, -0.052
    m.ci_low, m.ci_high, m.p_adjusted         # -0.073, -0.033, 5.5e-07 (Tango interval; one-sided McNemar, Holm over 3)
    m.flips_down, m.flips_up, m.mde           # 126, 57, 0.030
    m.verdict, m.gate                         # "regressed", "fail"

Units are matched by ``item_id`` within each suite (and by position inside a
tuple score, e.g. the instructions of one IFEval prompt), and an item pairs only
with the same question: the two records' ``asked`` hashes (``records.question_hash``)
must agree for every paired id, or the comparison stops (TunegateError, exit 2)
naming the first item that differs. A record written before items carried the hash
is paired on the prompt text and target it keeps, with a warning saying what went
unchecked. A trained suite whose scoring options differ (identity's target) has the
baseline's responses scored again under the candidate's (``rescore.retarget``), as the
pipeline does. The numbers of each
metric come from ``tunegate.evals.stats.paired_compare`` (exact one-sided McNemar
and Tango's score interval for binary metrics; cluster-robust t and a
design-effect-widened interval for clustered ones; paired t and a bootstrap
interval for continuous ones). The verdicts, the family-wise adjustment, the MDE
and the items needed all come from one function, ``tunegate.evals.gate.decide``.
Records whose suite versions differ, or whose items have none in common, cannot be
compared (TunegateError); records whose item sets only overlap (e.g. ``--limit 20``
against ``--limit 30``: seeded subsets are nested) are compared on their common items,
with a warning naming what was left out; different env (hardware, library versions)
or generation settings only add a warning.
"""

from __future__ import annotations

import zlib
from typing import Any, Mapping, Sequence

import numpy as np

from tunegate.core.errors import TunegateError
from tunegate.evals.gate import GateConfig, Measured, decide, missing_suite
from tunegate.evals.pairwise import PAIRWISE, baseline_side
from tunegate.evals.rescore import retarget
from tunegate.evals.stats import paired_compare
from tunegate.evals.records import (Comparison, ItemFlip, ItemScore, MetricComparison, NoiseFloor, RunRecord,
                                    SuiteResult, item_units)

#: Continuous metrics keep this many flips per direction (largest changes first); binary keep all.
MAX_CONTINUOUS_FLIPS = 25


def _without_unrun_suites(gate: GateConfig, ran: set[str], warnings: list[str]) -> GateConfig:
    """The gate without the rules of known suites that neither record ran, named in one warning line.

    A shipped gate covers identity, IFEval, math and knowledge; records of three of them are gated on those three.
    A rule of a name that is no suite at all (a typo) stays, and ``rules_for`` refuses it.
    """
    from tunegate.evals.suites import is_suite

    unrun = [r for r in gate.rules if r.suite not in ran and is_suite(r.suite)]
    if not unrun:
        return gate
    warnings.append(f"gate rules not applied, neither record ran their suite: {', '.join(r.metric for r in unrun)}")
    return gate.only(ran | {r.suite for r in gate.rules if r not in unrun})


def compare_records(
    baseline: RunRecord,
    candidate: RunRecord,
    gate: GateConfig | None = None,
    trains: Sequence[str] = (),
    noise: NoiseFloor | None = None,
) -> Comparison:
    """Paired comparison of every headline metric of every suite the candidate ran, judged by ``decide``.

    ``noise`` is the A/A noise floor shown beside each CI (and required by a gate with ``noise_floor:
    true``); by default the baseline's (``tunegate noise`` writes it), else the candidate's.
    """
    gate = gate or GateConfig()
    noise = noise or baseline.noise or candidate.noise
    trains = tuple(trains)
    baseline, rescored = retarget(baseline, candidate)
    warnings = rescored + comparability_warnings(baseline, candidate)
    suites = _common_suites(baseline, candidate, warnings)
    gate = _without_unrun_suites(gate, set(baseline.suites) | set(candidate.suites), warnings)
    missing = [s for s in baseline.suites if s not in candidate.suites]  # no evidence: the gate says what it means
    gate.rules_for([f"{s}.{m}" for s in suites for m in candidate.suites[s].metrics]
                   + [f"{s}.{m}" for s in missing for m in baseline.suites[s].metrics])  # bad gate: error first
    for t in trains:
        if t not in suites:
            warnings.append(f"trained suite '{t}' is not in the compared records")

    measured: list[Measured] = []
    flips: list[ItemFlip] = []
    for suite in suites:
        b_suite, c_suite = baseline.suites[suite], candidate.suites[suite]
        if c_suite.config.get(PAIRWISE):  # judged against the baseline's answers: the baseline side is a tie
            b_suite = baseline_side(b_suite, c_suite)
        pairs, note = pair_items(b_suite, c_suite)
        warnings.extend(n for n in (same_questions(suite, pairs), note) if n)
        for name, spec in c_suite.metrics.items():
            base, cand, clusters = paired_units(pairs, name, spec.cluster, where=f"suite '{suite}' metric '{name}'")
            seed = zlib.crc32(f"{suite}.{name}".encode()) ^ gate.seed
            res = paired_compare(base, cand, clusters, binary=spec.binary,
                                 alternative="less" if spec.higher_is_better else "greater",
                                 confidence=gate.confidence, n_resamples=gate.n_resamples, seed=seed)
            n_items = sum(1 for b, _ in pairs if name in b.scores)
            measured.append(Measured(suite, name, res, spec.higher_is_better, n_items))
            flips.extend(item_flips(suite, name, pairs, spec.higher_is_better, spec.binary))

    metrics, family = decide(measured, gate.only(suites), trains, noise.floors() if noise else None)
    for s in missing:
        metrics += missing_suite(s, baseline.suites[s].metrics.values(), gate, trains)
    return Comparison(
        baseline_model=baseline.model, baseline_fingerprint=baseline.fingerprint,
        candidate_model=candidate.model, candidate_fingerprint=candidate.fingerprint,
        metrics=tuple(metrics), flips=tuple(flips), warnings=tuple(warnings),
        passed=all(m.gate != "fail" for m in metrics), confidence=gate.confidence,
        correction=gate.correction, baseline_stage=baseline.stage, candidate_stage=candidate.stage,
        trains=trains, family=family,
    )


def comparability_warnings(baseline: RunRecord, candidate: RunRecord) -> list[str]:
    """Differences that do not stop a comparison but deserve a line in the report."""
    out = []
    if baseline.fingerprint and baseline.fingerprint == candidate.fingerprint:
        out.append(f"baseline and candidate have the same fingerprint {baseline.fingerprint[:12]}")
    for label, b, c in (("env", baseline.env, candidate.env), ("generation", baseline.generation, candidate.generation)):
        for key in sorted(set(b) | set(c)):
            if key in ("git_sha", "created", "hostname"):
                continue
            if b.get(key) != c.get(key):
                out.append(f"{label} '{key}' differs: baseline {b.get(key)!r}, candidate {c.get(key)!r}")
    return out


def _common_suites(baseline: RunRecord, candidate: RunRecord, warnings: list[str]) -> list[str]:
    missing = [s for s in candidate.suites if s not in baseline.suites]
    if missing:
        raise TunegateError(f"suite(s) {missing} of the candidate are missing from the baseline "
                            f"(baseline has {sorted(baseline.suites)})")
    for s in candidate.suites:
        bv, cv = baseline.suites[s].version, candidate.suites[s].version
        if bv != cv:
            raise TunegateError(f"suite '{s}': version differs (baseline {bv!r}, candidate {cv!r}); "
                                f"re-evaluate the baseline with the same suite version")
        changed = config_changes(baseline.suites[s].config, candidate.suites[s].config)
        if changed:
            warnings.append(f"suite '{s}': config differs (baseline -> candidate): {changed}")
    return list(candidate.suites)


def config_changes(baseline: Mapping[str, Any], candidate: Mapping[str, Any], prefix: str = "") -> str:
    """The keys whose values differ, nested keys dotted: ``limit None -> 500, generation.max_new_tokens 256 -> 128``."""
    out = []
    for key in [*baseline, *(k for k in candidate if k not in baseline)]:
        b, c = baseline.get(key, _ABSENT), candidate.get(key, _ABSENT)
        if isinstance(b, Mapping) and isinstance(c, Mapping):
            inner = config_changes(b, c, f"{prefix}{key}.")
            out += [inner] if inner else []
        elif b != c:
            out.append(f"{prefix}{key} {b!r} -> {c!r}")
    return ", ".join(out)


class _Absent:
    def __repr__(self) -> str:
        return "(absent)"


_ABSENT = _Absent()


def pair_items(b: SuiteResult, c: SuiteResult) -> tuple[list[tuple[ItemScore, ItemScore]], str | None]:
    """The (baseline, candidate) pairs of the items both records hold, and a note when that is not all of them.

    Records made with different ``--limit`` values overlap (seeded subsets are nested), so they are
    compared on their common items; records with no item in common cannot be compared.
    """
    b_ids = {i.item_id: i for i in b.items}
    c_ids = {i.item_id: i for i in c.items}
    for label, res, ids in (("baseline", b, b_ids), ("candidate", c, c_ids)):
        if len(ids) != len(res.items):
            raise TunegateError(f"suite '{res.suite}': {label} has duplicate item ids")
    only_b, only_c = sorted(set(b_ids) - set(c_ids)), sorted(set(c_ids) - set(b_ids))
    pairs = [(b_ids[i.item_id], i) for i in c.items if i.item_id in b_ids]
    if not pairs:
        raise TunegateError(
            f"suite '{c.suite}': no item in common ({len(b_ids)} baseline items e.g. {sorted(b_ids)[:3]}, "
            f"{len(c_ids)} candidate items e.g. {sorted(c_ids)[:3]}); evaluate both on the same suite source "
            "with the same --subset-seed")
    if not (only_b or only_c):
        return pairs, None
    return pairs, (f"suite '{c.suite}': compared on the {len(pairs)} items both records hold (baseline has "
                   f"{len(b_ids)}, candidate {len(c_ids)}); left out {len(only_b)} only in the baseline "
                   f"e.g. {only_b[:3]}, {len(only_c)} only in the candidate e.g. {only_c[:3]}")


def same_questions(suite: str, pairs: Sequence[tuple[ItemScore, ItemScore]]) -> str | None:
    """Refuse (TunegateError naming the first item) when a paired id asked different questions; a note when
    a record has no question hashes (written before them) and only its prompt text and target were checked."""
    unhashed = {"baseline": 0, "candidate": 0}
    for b, c in pairs:
        if b.asked is not None and c.asked is not None:
            if b.asked != c.asked:
                raise TunegateError(
                    f"suite '{suite}': item '{c.item_id}' asks a different question in the baseline and the "
                    f"candidate (question hash {b.asked} vs {c.asked}: prompt, chat turns, target or choices "
                    f"differ), so the records cannot be paired; evaluate both on the same suite data and options")
            continue
        unhashed["baseline"] += b.asked is None
        unhashed["candidate"] += c.asked is None
        if (b.prompt, b.target) != (c.prompt, c.target):
            what = "prompt" if b.prompt != c.prompt else f"target ({b.target!r} vs {c.target!r})"
            raise TunegateError(f"suite '{suite}': item '{c.item_id}' has a different {what} in the baseline "
                                f"and the candidate, so the records cannot be paired; evaluate both on the same "
                                f"suite data and options")
    sides = [side for side, n in unhashed.items() if n]
    if not sides:
        return None
    carry = "records carry" if len(sides) > 1 else "record carries"
    return (f"suite '{suite}': the {' and the '.join(sides)} {carry} no question hashes (written before tunegate "
            f"kept them): items were paired by id, prompt text and target only, their chat turns and choices "
            f"unchecked; re-evaluate to check them")


def paired_units(
    pairs: Sequence[tuple[ItemScore, ItemScore]], metric: str, cluster: str | None, where: str = "metric"
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Per-unit baseline and candidate values of one metric, and cluster indices (None if independent)."""
    base: list[float] = []
    cand: list[float] = []
    keys: list[str] = []
    for b, c in pairs:
        has_b, has_c = metric in b.scores, metric in c.scores
        if has_b != has_c:
            raise TunegateError(f"{where}: item '{c.item_id}' is scored in only one record")
        if not has_b:
            continue
        bu, cu = item_units(b.scores[metric]), item_units(c.scores[metric])
        if len(bu) != len(cu):
            raise TunegateError(f"{where}: item '{c.item_id}' has {len(bu)} units in the baseline, {len(cu)} in the candidate")
        base.extend(bu)
        cand.extend(cu)
        if cluster == "item":
            keys.extend([c.item_id] * len(cu))
        elif cluster == "group":
            keys.extend([c.group or c.item_id] * len(cu))
    clusters = None
    if cluster is not None:
        _, clusters = np.unique(np.asarray(keys, dtype=str), return_inverse=True)
    return np.asarray(base, float), np.asarray(cand, float), clusters


def item_flips(
    suite: str, metric: str, pairs: Sequence[tuple[ItemScore, ItemScore]], higher_is_better: bool, binary: bool
) -> list[ItemFlip]:
    """Items whose score changed; ``direction`` is "down" when the item got worse (in the good direction)."""
    s = 1.0 if higher_is_better else -1.0
    changed = []
    for b, c in pairs:
        if metric not in b.scores or metric not in c.scores:
            continue
        bv, cv = _unit_mean(b.scores[metric]), _unit_mean(c.scores[metric])
        if bv != cv:
            changed.append((s * (cv - bv), b, c, bv, cv))
    if not binary:
        down = sorted((x for x in changed if x[0] < 0), key=lambda x: x[0])[:MAX_CONTINUOUS_FLIPS]
        up = sorted((x for x in changed if x[0] > 0), key=lambda x: -x[0])[:MAX_CONTINUOUS_FLIPS]
        changed = down + up
    return [
        ItemFlip(suite=suite, item_id=c.item_id, metric=metric, direction="up" if g > 0 else "down",
                 baseline_score=bv, candidate_score=cv, prompt=c.prompt or b.prompt,
                 baseline_response=b.response, candidate_response=c.response, group=c.group)
        for g, b, c, bv, cv in changed
    ]


def find_metric(comparison: Comparison, key: str) -> MetricComparison:
    """The MetricComparison named ``suite.metric``; TunegateError naming the known ones if absent."""
    for m in comparison.metrics:
        if f"{m.suite}.{m.metric}" == key:
            return m
    known = ", ".join(f"{m.suite}.{m.metric}" for m in comparison.metrics)
    raise TunegateError(f"no metric '{key}' in the comparison (known: {known})")



def _unit_mean(value: float | tuple[float, ...]) -> float:
    units = item_units(value)
    return float(sum(units) / len(units))
