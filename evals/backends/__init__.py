"""The backend registry: what answers the runner's batched requests.

    hf      transformers in this process (``tunegate.evals.backends.hf.HFBackend``)

A new backend (vLLM, an OpenAI-compatible server) is one module here implementing
``tunegate.evals.requests.Backend`` plus one line in ``BACKENDS``; it is imported only when chosen::

    backend = load_backend("organism")                 # HFBackend on the shipped organism
    backend = load_backend("Qwen/Qwen2.5-0.5B-Instruct", backend="hf", batch_size=16)
"""

from __future__ import annotations

from typing import Any

from tunegate.evals.registry import Registry
from tunegate.evals.requests import Backend

BACKENDS: Registry[Any] = Registry("backend", {
    "hf": "tunegate.evals.backends.hf:HFBackend",
})
DEFAULT_BACKEND = "hf"


def load_backend(model: str, backend: str = DEFAULT_BACKEND, **options: Any) -> Backend:
    """Load ``model`` (hub id, local path or ``organism``) behind the backend registered as ``backend``."""
    return BACKENDS.get(backend)(model, **options)
