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

#: Requests per backend call (and per cache commit).
CHUNK = 128


@contextlib.contextmanager
def open_cache(cache_dir: str | Path | None = None, use_cache: bool = True) -> Iterator[ResponseCache]:
    """The response cache under ``cache_dir`` (default ``$TUNEGATE_CACHE``), or a no-op one."""
    path = (Path(cache_dir) if cache_dir else default_cache_dir()) / "responses.sqlite"
    cache = ResponseCache(path if use_cache else None)
    try:
        yield cache
    finally:
        cache.close()


def cached_generate(backend: Any, requests: Sequence[GenerationRequest], cache: ResponseCache) -> list[str]:
    """``backend.generate(requests)`` through the runner's cache and keys; sampled requests are not cached."""
    from tunegate.evals.runner import generate_cached  # torch: at the first pass

    return generate_cached(backend, requests, cache, "generate", progress=False, chunk=CHUNK)


def cached_token_ranks(backend: Any, requests: Sequence[TokenRankRequest], cache: ResponseCache) -> list[TokenRanks]:
    """``backend.token_ranks(requests)`` (a backend without it refuses in one line), cached as
    ``[tokens, ranks, top]`` lists."""
    from tunegate.evals.runner import cache_identity, cached_calls

    token_ranks = capability(backend, "token_ranks")
    identity = cache_identity(backend)
    keys = [cache.key(identity, "rank", r.context, r.continuation, r.max_new_tokens) for r in requests]
    rows = cached_calls(cache, keys, list(requests), True,
                        lambda rs: [[list(v.tokens), list(v.ranks), list(v.top)] for v in token_ranks(rs)],
                        CHUNK, "token ranks", False)
    return [TokenRanks(*(tuple(x) for x in row)) for row in rows]
