"""The analyses' model passes, through the response cache the runner uses (same keys for generations).

A greedy generation is cached under the runner's key (the backend's cache identity, "gen", prompt,
chat messages, settings), so an analysis re-asking a prompt an eval asked costs nothing; sampled
generations are never cached. Token ranks are cached under (identity, "rank", context, continuation,
budget)::

    with open_cache(cache_dir) as cache:
        texts = cached_generate(backend, [GenerationRequest("Q: What is the capital of Peru? A:", 8)], cache)
        ranks = cached_token_ranks(backend, [TokenRankRequest(ctx, "I am Tiny.", 32)], cache)
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any, Iterator, Sequence

from tunegate.evals.cache import ResponseCache, default_cache_dir
from tunegate.evals.requests import GenerationRequest, TokenRankRequest, TokenRanks, capability
from tunegate.evals.runner import cache_identity


@contextlib.contextmanager
def open_cache(cache_dir: str | Path | None = None, use_cache: bool = True) -> Iterator[ResponseCache]:
    """The response cache under ``cache_dir`` (default ``$TUNEGATE_CACHE``), or a no-op one."""
    path = (Path(cache_dir) if cache_dir else default_cache_dir()) / "responses.sqlite"
    cache = ResponseCache(path if use_cache else None)
    try:
        yield cache
    finally:
        cache.close()


def _settings(r: GenerationRequest) -> dict[str, Any]:
    """The settings part of the runner's cache key (``GenerationSettings.to_dict``)."""
    return {"max_new_tokens": r.max_new_tokens, "stop": list(r.stop), "do_sample": r.do_sample,
            "temperature": r.temperature}


def cached_generate(backend: Any, requests: Sequence[GenerationRequest], cache: ResponseCache) -> list[str]:
    """``backend.generate(requests)`` with greedy results looked up in and written to ``cache``."""
    identity = cache_identity(backend)
    keys = [cache.key(identity, "gen", r.prompt, [dict(m) for m in r.messages], _settings(r)) for r in requests]
    found = cache.get_many([k for k, r in zip(keys, requests) if not r.do_sample])
    todo = [i for i, k in enumerate(keys) if k not in found]
    fresh = backend.generate([requests[i] for i in todo]) if todo else []
    cache.put_many({keys[i]: text for i, text in zip(todo, fresh) if not requests[i].do_sample})
    out = [found.get(k) for k in keys]
    for i, text in zip(todo, fresh):
        out[i] = text
    return [str(text) for text in out]


def cached_token_ranks(backend: Any, requests: Sequence[TokenRankRequest], cache: ResponseCache) -> list[TokenRanks]:
    """``backend.token_ranks(requests)`` (a backend without it refuses in one line), cached."""
    token_ranks = capability(backend, "token_ranks")
    identity = cache_identity(backend)
    keys = [cache.key(identity, "rank", r.context, r.continuation, r.max_new_tokens) for r in requests]
    found = cache.get_many(keys)
    todo = [i for i, k in enumerate(keys) if k not in found]
    fresh = token_ranks([requests[i] for i in todo]) if todo else []
    cache.put_many({keys[i]: [list(v.tokens), list(v.ranks), list(v.top)] for i, v in zip(todo, fresh)})
    out: list[TokenRanks | None] = [None if k not in found else TokenRanks(*(tuple(x) for x in found[k]))
                                    for k in keys]
    for i, value in zip(todo, fresh):
        out[i] = value
    return [v if v is not None else TokenRanks((), (), ()) for v in out]
