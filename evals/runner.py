"""evaluate(model, suites) -> RunRecord: one model load serves all suites; responses are cached.

The cache is keyed by the backend's ``cache_identity()`` (model content, dtype,
device type, backend and library versions) + rendered prompt + generation
settings, so an unchanged checkpoint is never evaluated twice, a changed one
never hits a stale entry, and an interrupted run resumes where it stopped
(responses are committed chunk by chunk, and a failing backend's finished ones
too). Sampled generations are not cached.

    record = evaluate("runs/demo/stages/sft/model", ["identity", "math"],
                      suite_options={"identity": {"target": "Tiny", "probes": "organism"}})
    record.suites["math"].metrics["exact_match"].value   # e.g. 0.62
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import time
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence

from tunegate.evals import distributed
from tunegate.evals.backends import load_backend
from tunegate.evals.cache import ResponseCache, default_cache_dir, warn_if_unpinned
from tunegate.core.env import environment
from tunegate.core.errors import BackendError
from tunegate.core.progress import bar as progress_bar
from tunegate.core.progress import emit
from tunegate.evals.records import RunRecord, SuiteResult
from tunegate.evals.requests import Backend, GenerationRequest, LoglikelihoodRequest
from tunegate.evals.suites import Suite, get_suite
from tunegate.evals.suites.base import GenerationSettings


def _chunks(n: int, size: int) -> Iterator[range]:
    for start in range(0, n, size):
        yield range(start, min(n, start + size))


def cached_calls(cache: ResponseCache, keys: list[str], requests: list[Any], cacheable: bool,
                  compute: Callable[[list[Any]], list[Any]], chunk: int, desc: str, progress: bool) -> list[Any]:
    """Results for ``requests``: cached ones looked up, the rest computed in chunks and committed."""
    results: list[Any] = [None] * len(requests)
    # rank 0 owns the cache: it looks up, every rank computes its shard of the rest, rank 0 writes
    found = distributed.broadcast_from_main(cache.get_many(keys) if cacheable else {})
    todo = [i for i, k in enumerate(keys) if k not in found]
    for i, k in enumerate(keys):
        if k in found:
            results[i] = found[k]
    with progress_bar(len(requests), desc, unit="req", enabled=progress, initial=len(requests) - len(todo),
                      cached=len(requests) - len(todo)) as bar:
        for idx in _chunks(len(todo), chunk):
            batch = [todo[j] for j in idx]
            try:
                values = distributed.map_sharded(compute, [requests[i] for i in batch])
            except BackendError as exc:  # keep what the backend finished before it failed (single process)
                if cacheable and not distributed.is_active():
                    cache.put_many({keys[batch[j]]: v for j, v in exc.partial.items()})
                raise
            for i, v in zip(batch, values):
                results[i] = v
            if cacheable:
                cache.put_many({keys[i]: v for i, v in zip(batch, values)})
            bar.update(len(batch))
    return results


def generation_key(cache: ResponseCache, identity: Mapping[str, Any], request: GenerationRequest) -> str:
    """A generation's cache key: the backend's identity, "gen", the prompt, its chat messages and its settings."""
    settings = GenerationSettings(request.max_new_tokens, tuple(request.stop), request.do_sample, request.temperature)
    return cache.key(identity, "gen", request.prompt, [dict(m) for m in request.messages], settings.to_dict())


def run_suite(backend: Backend, suite: Suite, cache: ResponseCache, *, progress: bool = True,
              chunk: int = 128) -> SuiteResult:
    """Run one suite on a loaded backend and score every item."""
    start = time.perf_counter()
    items = suite.items()
    completion = bool(getattr(backend, "completion_mode", False))
    identity = cache_identity(backend)
    if suite.kind == "generate":
        settings = suite.generation()
        chat = suite.chat and not completion
        requests = [GenerationRequest(
            prompt=backend.render(it.messages) if chat else it.prompt,
            max_new_tokens=settings.max_new_tokens, stop=settings.stop,
            do_sample=settings.do_sample, temperature=settings.temperature,
            messages=tuple(it.messages) if chat else ()) for it in items]
        keys = [generation_key(cache, identity, r) for r in requests]
        responses = cached_calls(cache, keys, requests, not settings.do_sample, backend.generate, chunk,
                                 suite.name, progress)
        scores = [suite.score(it, resp) for it, resp in zip(items, responses)]
    else:
        contexts = [suite.choice_context(it) or
                    (backend.render(it.messages) if not completion else it.prompt) for it in items]
        requests = [LoglikelihoodRequest(ctx, choice) for it, ctx in zip(items, contexts) for choice in it.choices]
        keys = [cache.key(identity, "ll", r.context, r.continuation) for r in requests]
        values = cached_calls(cache, keys, requests, True, backend.loglikelihood, chunk * 4,
                              suite.name, progress)
        scores, k = [], 0
        for it in items:
            scores.append(suite.score_choices(it, values[k:k + len(it.choices)]))
            k += len(it.choices)
    result = SuiteResult(
        suite=suite.name, version=suite.version, metrics=suite.metrics(scores), items=tuple(scores),
        config={**suite.config(), **({"generation": suite.generation().to_dict()} if suite.kind == "generate" else {})},
        breakdowns=suite.breakdowns(scores), seconds=round(time.perf_counter() - start, 3))
    if progress:
        emit("metrics", model=backend.name, suite=suite.name, items=len(scores), seconds=result.seconds,
             metrics={m: v.value for m, v in result.metrics.items()})
    return result


def cache_identity(backend: Backend) -> dict[str, Any]:
    """The backend's ``cache_identity()``; a backend registered from outside without one is known by its
    fingerprint alone."""
    if hasattr(backend, "cache_identity"):
        return backend.cache_identity()
    return {"model": backend.fingerprint}


#: Backend ``info()`` fields a RunRecord keeps under ``generation`` (besides ``completion_mode``).
RECORD_INFO = ("backend", "device", "dtype", "batch_size", "base_url", "served_model", "revision", "endpoint",
               "tensor_parallel_size", "data_parallel_size", "chat_template_kwargs", "chat_template")


def resolve_suites(suites: Sequence[str | Suite], options: Mapping[str, Mapping[str, Any]] | None = None) -> list[Suite]:
    options = options or {}
    return [s if isinstance(s, Suite) else get_suite(s, **dict(options.get(s, {}))) for s in suites]


def evaluate(model: str | Backend, suites: Sequence[str | Suite], *, out: str | Path | None = None,
             suite_options: Mapping[str, Mapping[str, Any]] | None = None, cache_dir: str | Path | None = None,
             use_cache: bool = True, stage: str | None = None, progress: bool = True,
             **backend_kwargs: Any) -> RunRecord:
    """Evaluate ``model`` (hub id, local path, or a loaded backend) on ``suites``; write ``out`` if given."""
    started = time.perf_counter()
    resolved = resolve_suites(suites, suite_options)  # bad suite names fail before the model loads
    distributed.init_from_env()  # under accelerate launch / torchrun: split items across the processes
    progress = progress and distributed.is_main()
    backend = load_backend(model, **backend_kwargs) if isinstance(model, str) else model
    cache_path = (Path(cache_dir) if cache_dir else default_cache_dir()) / "responses.sqlite"
    cache = ResponseCache(cache_path if use_cache and distributed.is_main() else None)
    if use_cache:
        warn_if_unpinned(cache_identity(backend))
    try:
        results = {}
        for suite in resolved:
            results[suite.name] = run_suite(backend, suite, cache, progress=progress)
    finally:
        cache.close()
    info = backend.info() if hasattr(backend, "info") else {}
    if isinstance(model, str) and hasattr(backend, "close"):
        backend.close()  # an engine this call started (vLLM) gives its GPU memory back
    record = RunRecord(
        model=backend.name, fingerprint=backend.fingerprint, suites=results,
        generation={k: info[k] for k in RECORD_INFO if info.get(k) is not None}
        | {"completion_mode": bool(getattr(backend, "completion_mode", False))},
        env=environment(), stage=stage,
        created=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        seconds=round(time.perf_counter() - started, 3))
    if out is not None and distributed.is_main():
        record.save(out)
    distributed.barrier()
    return record


def rescore(record: RunRecord, suite_options: Mapping[str, Mapping[str, Any]]) -> RunRecord:
    """``record`` with its generation suites scored again under other options (e.g. a new identity target).

    No model runs: the stored responses are scored by the suite built with the new options. Returns
    ``record`` itself when no suite's config changes.
    """
    changed = {}
    for name, result in record.suites.items():
        suite = get_suite(name, **dict(suite_options.get(name, {})))
        config = {**suite.config(), **({"generation": suite.generation().to_dict()} if suite.kind == "generate" else {})}
        if suite.kind != "generate" or config == result.config:
            continue
        responses = {s.item_id: s.response for s in result.items}
        items = [it for it in suite.items() if it.id in responses]
        scores = [suite.score(it, responses[it.id]) for it in items]
        changed[name] = dataclasses.replace(result, metrics=suite.metrics(scores), items=tuple(scores),
                                            config=config, breakdowns=suite.breakdowns(scores))
    if not changed:
        return record
    return dataclasses.replace(record, suites={**record.suites, **changed})
