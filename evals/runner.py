"""evaluate(model, spec) -> RunRecord: one model load serves all suites; responses are cached.

The cache is keyed by the backend's ``cache_identity()`` (model content, dtype,
device type, backend and library versions) + rendered prompt + generation
settings, so an unchanged checkpoint is never evaluated twice, a changed one
never hits a stale entry, and an interrupted run resumes where it stopped
(responses are committed chunk by chunk, and a failing backend's finished ones
too). Sampled generations are not cached.

    spec = eval_spec(["identity", "math"], {"identity": {"target": "Tiny", "probes": "organism"},
                                            "math": {"variant": "organism"}})       # tunegate.evals.spec
    record = evaluate("runs/demo/stages/sft/model", spec)
    record.suites["math"].metrics["exact_match"].value   # e.g. 0.62

Every suite's data is read and validated (``EvalSpec.check``) before the model loads, so a missing
dataset fails in seconds, not after the suites before it have run.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import time
from collections import Counter
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence

from tunegate.evals import distributed
from tunegate.evals.cache import ResponseCache, default_cache_dir, warn_if_unpinned
from tunegate.core.env import environment
from tunegate.core.errors import BackendError
from tunegate.core.progress import bar as progress_bar
from tunegate.core.progress import emit
from tunegate.evals.records import EvalItem, ItemScore, RunRecord, SuiteResult
from tunegate.evals.requests import Backend, GenerationRequest, LoglikelihoodRequest
from tunegate.evals.rescore import suite_config
from tunegate.evals.spec import EvalSpec
from tunegate.evals.suites import Suite
from tunegate.evals.suites.base import GenerationSettings


def _chunks(n: int, size: int) -> Iterator[range]:
    for start in range(0, n, size):
        yield range(start, min(n, start + size))


def cached_calls(cache: ResponseCache, keys: list[str], requests: list[Any], cacheable: bool,
                  compute: Callable[[list[Any]], list[Any]], chunk: int, desc: str, progress: bool,
                  item_of: Sequence[int] | None = None) -> list[Any]:
    """Results for ``requests``: cached ones looked up, the rest computed in chunks and committed.

    The bar counts items, as the record's ``n`` does: ``item_of[i]`` is the item request ``i`` belongs to
    (an MMLU question asks one log-likelihood per choice); without it each request is an item.
    """
    results: list[Any] = [None] * len(requests)
    # rank 0 owns the cache: it looks up, every rank computes its shard of the rest, rank 0 writes
    found = distributed.broadcast_from_main(cache.get_many(keys) if cacheable else {})
    todo = [i for i, k in enumerate(keys) if k not in found]
    for i, k in enumerate(keys):
        if k in found:
            results[i] = found[k]
    owner = list(item_of) if item_of is not None else list(range(len(requests)))
    pending = Counter(owner[i] for i in todo)  # requests still to compute, per item
    items, done = len(set(owner)), len(set(owner)) - len(pending)
    with progress_bar(items, desc, unit="item", enabled=progress, initial=done, cached=done) as bar:
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
            touched = {owner[i] for i in batch}
            pending.subtract(owner[i] for i in batch)
            bar.update(sum(pending[k] == 0 for k in touched))
    return results


def generation_key(cache: ResponseCache, identity: Mapping[str, Any], request: GenerationRequest) -> str:
    """A generation's cache key: the backend's identity, "gen", the prompt, its chat messages and its settings."""
    settings = GenerationSettings(request.max_new_tokens, tuple(request.stop), request.do_sample, request.temperature)
    return cache.key(identity, "gen", request.prompt, [dict(m) for m in request.messages], settings.to_dict())


def generate_cached(backend: Backend, requests: Sequence[GenerationRequest], cache: ResponseCache, desc: str, *,
                    progress: bool = True, chunk: int = 128, item_of: Sequence[int] | None = None) -> list[str]:
    """``backend.generate(requests)`` through the cache (sampled requests are never cached), with a bar."""
    identity = cache_identity(backend)
    keys = [generation_key(cache, identity, r) for r in requests]
    cacheable = not any(r.do_sample for r in requests)
    return [str(t) for t in cached_calls(cache, keys, list(requests), cacheable, backend.generate, chunk, desc,
                                         progress, item_of=item_of)]


def loglikelihood_cached(backend: Backend, requests: Sequence[LoglikelihoodRequest], cache: ResponseCache, desc: str,
                         *, progress: bool = True, chunk: int = 512,
                         item_of: Sequence[int] | None = None) -> list[float]:
    """``backend.loglikelihood(requests)`` through the cache, with a bar counting items."""
    identity = cache_identity(backend)
    keys = [cache.key(identity, "ll", r.context, r.continuation) for r in requests]
    return cached_calls(cache, keys, list(requests), True, backend.loglikelihood, chunk, desc, progress,
                        item_of=item_of)


@dataclasses.dataclass
class RunnerCalls:
    """The runner's side of ``tunegate.evals.requests.Calls``: what a suite asks, cached, on ``backend`` (the
    evaluated model) unless a call names another."""

    backend: Backend
    cache: ResponseCache
    progress: bool = True
    chunk: int = 128

    @property
    def completion_mode(self) -> bool:
        return bool(getattr(self.backend, "completion_mode", False))

    def render(self, messages: Sequence[Mapping[str, str]], backend: Backend | None = None) -> str:
        return (backend or self.backend).render(messages)

    def generate(self, requests: Sequence[GenerationRequest], desc: str, *, item_of: Sequence[int] | None = None,
                 backend: Backend | None = None) -> list[str]:
        return generate_cached(backend or self.backend, requests, self.cache, desc, progress=self.progress,
                               chunk=self.chunk, item_of=item_of)

    def answer(self, items: Sequence[EvalItem], settings: GenerationSettings, desc: str, *,
               chat: bool = True) -> list[str]:
        """Each item's response as a generation suite asks it: its chat through the chat template (the messages
        too, for a server that renders them), or its raw prompt in completion mode or with ``chat`` false."""
        chat = chat and not self.completion_mode
        requests = [GenerationRequest(
            prompt=self.render(it.messages) if chat else it.prompt,
            max_new_tokens=settings.max_new_tokens, stop=settings.stop,
            do_sample=settings.do_sample, temperature=settings.temperature,
            messages=tuple(it.messages) if chat else ()) for it in items]
        return self.generate(requests, desc)

    def loglikelihood(self, requests: Sequence[LoglikelihoodRequest], desc: str, *,
                      item_of: Sequence[int] | None = None, backend: Backend | None = None) -> list[float]:
        return loglikelihood_cached(backend or self.backend, requests, self.cache, desc, progress=self.progress,
                                    chunk=self.chunk * 4, item_of=item_of)


def run_suite(backend: Backend, suite: Suite, cache: ResponseCache, *, progress: bool = True,
              chunk: int = 128) -> SuiteResult:
    """Run one suite on a loaded backend and score every item."""
    start = time.perf_counter()
    calls = RunnerCalls(backend, cache, progress, chunk)
    if suite.kind == "custom":
        scores = [score.asking(item) for item, score in zip(suite.items(), suite.run(calls))]
    elif suite.kind == "generate":
        scores = _generate_suite(calls, suite)
    else:
        scores = _loglikelihood_suite(calls, suite)
    result = SuiteResult(
        suite=suite.name, version=suite.version, metrics=suite.metrics(scores), items=tuple(scores),
        config=suite_config(suite), breakdowns=suite.breakdowns(scores), seconds=round(time.perf_counter() - start, 3))
    if progress:
        emit("metrics", model=backend.name, suite=suite.name, items=len(scores), seconds=result.seconds,
             metrics={m: v.value for m, v in result.metrics.items()})
    return result


def _generate_suite(calls: RunnerCalls, suite: Suite) -> list[ItemScore]:
    items = suite.items()
    responses = calls.answer(items, suite.generation(), suite.name, chat=suite.chat)
    return [suite.score(it, resp).asking(it) for it, resp in zip(items, responses)]


def _loglikelihood_suite(calls: RunnerCalls, suite: Suite) -> list[ItemScore]:
    items = suite.items()
    contexts = [suite.choice_context(it) or
                (calls.render(it.messages) if not calls.completion_mode else it.prompt) for it in items]
    requests = [LoglikelihoodRequest(ctx, choice) for it, ctx in zip(items, contexts) for choice in it.choices]
    values = calls.loglikelihood(requests, suite.name, item_of=[k for k, it in enumerate(items) for _ in it.choices])
    scores, k = [], 0
    for it in items:
        scores.append(suite.score_choices(it, values[k:k + len(it.choices)]).asking(it))
        k += len(it.choices)
    return scores


def cache_identity(backend: Backend) -> dict[str, Any]:
    """The backend's ``cache_identity()``; a backend registered from outside without one is known by its
    fingerprint alone."""
    if hasattr(backend, "cache_identity"):
        return backend.cache_identity()
    return {"model": backend.fingerprint}


#: Backend ``info()`` fields a RunRecord keeps under ``generation`` (besides ``completion_mode``).
RECORD_INFO = ("backend", "device", "dtype", "batch_size", "base_url", "served_model", "revision", "endpoint",
               "tensor_parallel_size", "data_parallel_size", "chat_template_kwargs", "trust_remote_code", "chat_template")


def evaluate(model: str | Backend, spec: EvalSpec, *, out: str | Path | None = None, stage: str | None = None,
             progress: bool = True) -> RunRecord:
    """Evaluate ``model`` (hub id, local path, or a loaded backend) as ``spec`` says; write ``out`` if given.

    A loaded backend runs as it was loaded (``spec``'s backend options are for loading one); the suites
    and the cache settings are ``spec``'s either way."""
    started = time.perf_counter()
    suites = spec.check()  # every suite's data, before the model loads
    distributed.init_from_env()  # under accelerate launch / torchrun: split items across the processes
    progress = progress and distributed.is_main()
    backend = spec.load_backend(model) if isinstance(model, str) else model
    cache_path = (Path(spec.cache_dir) if spec.cache_dir else default_cache_dir()) / "responses.sqlite"
    cache = ResponseCache(cache_path if spec.use_cache and distributed.is_main() else None)
    if spec.use_cache:
        warn_if_unpinned(cache_identity(backend))
    try:
        results = {suite.name: run_suite(backend, suite, cache, progress=progress) for suite in suites}
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
