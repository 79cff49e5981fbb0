"""The A/A noise floor: one checkpoint evaluated twice under settings that should not matter.

Greedy decoding is deterministic in exact arithmetic, but a different generation batch
size (other padding, other kernels) or another dtype rounds differently and can tip an
item whose top two tokens are close. ``noise_floor`` compares a reference record with
each variant item by item; ``measure_noise`` runs the passes (no response cache: the cache
key holds the dtype but not the batch size, so a cached pass would compare a run with itself)::

    record = measure_noise("organism", eval_spec(["math"], {"math": {"variant": "organism"}}))
    record.noise.metrics[0]
    # NoiseMetric(suite="math", metric="exact_match", setting="batch_size 32 -> 1", n=100, flipped=0, delta=0.0)
    record.noise.floor("math.exact_match")      # 0.0: the largest |delta| over the settings

Each pass is the caller's EvalSpec varied in one setting (``spec.varied(batch_size=1)``, ``dtype=...``),
so the device, chat template variables, completion mode and threads of every pass are the reference's.
The returned record is the reference pass with ``noise`` set, so a baseline written by
``tunegate noise`` carries its floor into ``tunegate compare`` (gate key ``noise_floor``).
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import time
from typing import Sequence

from tunegate.core.errors import TunegateError
from tunegate.evals.compare import pair_items
from tunegate.evals.records import NoiseFloor, NoiseMetric, RunRecord, item_units
from tunegate.evals.spec import EvalSpec


def noise_metrics(reference: RunRecord, variant: RunRecord, setting: str) -> list[NoiseMetric]:
    """Per metric of every suite of ``reference``: the items whose score changed in ``variant`` and the
    metric's change (variant - reference)."""
    out = []
    for name, ref in reference.suites.items():
        if name not in variant.suites:
            raise TunegateError(f"noise: suite '{name}' is missing from the '{setting}' pass")
        pairs, _ = pair_items(ref, variant.suites[name])
        for metric, value in ref.metrics.items():
            scored = [(a, b) for a, b in pairs if metric in a.scores and metric in b.scores]
            flipped = sum(1 for a, b in scored if item_units(a.scores[metric]) != item_units(b.scores[metric]))
            other = variant.suites[name].metrics[metric].value
            out.append(NoiseMetric(suite=name, metric=metric, setting=setting, n=len(scored), flipped=flipped,
                                   delta=round(float(other - value.value), 12)))
    return out


def noise_floor(reference: RunRecord, variants: Sequence[tuple[str, RunRecord]], seconds: float = 0.0) -> NoiseFloor:
    """The NoiseFloor of ``reference`` against each ``(setting, variant record)`` of the same checkpoint."""
    for setting, rec in variants:
        if rec.fingerprint != reference.fingerprint:
            raise TunegateError(f"noise: the '{setting}' pass evaluated another checkpoint "
                                f"({rec.fingerprint[:12]} vs {reference.fingerprint[:12]})")
    metrics = [m for setting, rec in variants for m in noise_metrics(reference, rec, setting)]
    return NoiseFloor(
        model=reference.model, fingerprint=reference.fingerprint, reference=dict(reference.generation),
        settings=tuple(s for s, _ in variants), metrics=tuple(metrics),
        device=str(reference.generation.get("device", "")), seconds=round(seconds, 3),
        created=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"))


DTYPES = ("bfloat16", "float16", "float32")


def default_dtypes(device: str) -> tuple[str, ...]:
    """The dtypes a noise pass compares: bfloat16 vs float16 on CUDA, float32 alone elsewhere."""
    return ("bfloat16", "float16") if device.startswith("cuda") else ("float32",)


def measure_noise(model: str, spec: EvalSpec, *, dtypes: Sequence[str] | None = None,
                  progress: bool = True) -> RunRecord:
    """Evaluate ``model`` as ``spec`` says (batch size N: its ``batch_size`` or the backend's default) and
    again at batch size 1, and in each further dtype at N, without the response cache; return the
    reference record (first dtype, batch N) with its ``noise`` floor."""
    from tunegate.evals.backends.hf import default_device
    from tunegate.evals.runner import evaluate

    if spec.backend != "hf":
        raise TunegateError(f"noise: varies the batch size and dtype of the hf backend; this evaluation runs on "
                            f"'{spec.backend}' (--backend hf)")
    batch_size = spec.backend_options.batch_size
    if batch_size is not None and batch_size < 2:
        raise TunegateError(f"--batch-size: the reference batch size must be at least 2 to compare with 1, got {batch_size}")
    device = spec.backend_options.device or default_device()
    dtypes = tuple(dtypes or default_dtypes(device))
    unknown = [d for d in dtypes if d not in DTYPES]
    if unknown or len(set(dtypes)) != len(dtypes):
        raise TunegateError(f"--dtypes: expected distinct names from {list(DTYPES)}, got {list(dtypes)}")
    started = time.perf_counter()
    reference_spec = dataclasses.replace(spec, use_cache=False).varied(device=device, dtype=dtypes[0])
    backend = reference_spec.load_backend(model)
    reference = evaluate(backend, reference_spec, progress=progress)
    n = int(backend.batch_size)
    backend.batch_size = 1  # reference_spec.varied(batch_size=1) on the loaded weights: the model loads once
    variants = [(f"batch_size {n} -> 1", evaluate(backend, reference_spec.varied(batch_size=1), progress=progress))]
    for dtype in dtypes[1:]:
        variants.append((f"dtype {dtypes[0]} -> {dtype}",
                         evaluate(model, reference_spec.varied(dtype=dtype, batch_size=n), progress=progress)))
    floor = noise_floor(reference, variants, seconds=time.perf_counter() - started)
    return dataclasses.replace(reference, noise=floor)


def format_noise(floor: NoiseFloor) -> str:
    """The table ``tunegate noise`` prints: per metric and setting, items flipped and the metric's change."""
    rows = [("metric", "setting", "flipped", "share", "delta", "floor")]
    for m in floor.metrics:
        rows.append((m.key, m.setting, f"{m.flipped}/{m.n}", f"{m.flip_share:.3f}", f"{m.delta:+.4f}",
                     f"{floor.floor(m.key):.4f}"))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    head = f"{floor.model} ({floor.fingerprint[:12]}) on {floor.device or '?'}: A/A noise over {', '.join(floor.settings)}"
    return "\n".join([head] + ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows])
