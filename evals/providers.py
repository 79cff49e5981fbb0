"""Named providers of models and datasets, found through the ``tunegate.providers`` entry points.

A provider is a module (or object) with ``model() -> Path`` and ``rows(dataset, **options) ->
list[dict]``. The embedded model organism is one (pyproject.toml registers
``organism = "tunegate.organism.provider"``), so every model argument takes ``organism`` and
every dataset argument takes ``organism:<dataset>``::

    resolve_spec("organism:sft")      # ("organism", "sft")
    get_provider("organism").rows("arithmetic", n=3, seed=0)
    # [{"question": "What is 47 + 25?", "answer": 72}, ...]

evals never imports a provider's package: the entry point names it, so another installed
package can add its own (``mycorp:evalset``) without touching tunegate.
"""

from __future__ import annotations

import functools
from importlib import metadata
from typing import Any

from tunegate.core.errors import TunegateError

GROUP = "tunegate.providers"


@functools.lru_cache(maxsize=None)
def provider_names() -> tuple[str, ...]:
    return tuple(sorted(ep.name for ep in metadata.entry_points(group=GROUP)))


@functools.lru_cache(maxsize=None)
def get_provider(name: str) -> Any:
    """The provider registered as ``name``; TunegateError when no installed package provides it."""
    for ep in metadata.entry_points(group=GROUP):
        if ep.name == name:
            return ep.load()
    known = ", ".join(provider_names()) or "none installed"
    raise TunegateError(f"unknown provider '{name}' (known: {known}; is tunegate installed with `pip install -e .`?)")


def resolve_spec(spec: str) -> tuple[str, str] | None:
    """``(provider, dataset)`` when ``spec`` names a provider's dataset (``organism:sft``), else None."""
    name, sep, dataset = str(spec).partition(":")
    if sep and name in provider_names() and dataset:
        return name, dataset
    return None


def provided_rows(spec: str, **options: Any) -> list[dict[str, Any]] | None:
    """The rows of a provider's dataset, or None when ``spec`` is not a provider spec."""
    found = resolve_spec(spec)
    if found is None:
        return None
    name, dataset = found
    try:
        return list(get_provider(name).rows(dataset, **options))
    except (KeyError, ValueError, TypeError) as exc:  # a provider knows nothing of tunegate's errors
        raise TunegateError(f"dataset '{spec}': {exc.args[0] if exc.args else exc}") from None


def provided_model(spec: str) -> Any:
    """The model directory a provider gives for the bare name ``spec`` (``organism``), or None."""
    if spec in provider_names():
        return get_provider(spec).model()
    return None
