"""Name -> implementation registries for suites, backends and training methods.

A built-in entry is a ``"module:attribute"`` path, imported on first use (so a backend's heavy
library, vLLM say, loads only when that backend is chosen); code outside tunegate can add its own
with ``register``. Adding a suite, backend or method is one new file plus one line in its registry::

    BACKENDS = Registry("backend", {"hf": "tunegate.evals.backends.hf:HFBackend"})
    BACKENDS.get("hf")              # the HFBackend class
    BACKENDS.get("tgi")             # TunegateError: unknown backend 'tgi' (known: hf)

    @BACKENDS.register("mine")      # a user's own, from their code
    class MyBackend: ...
"""

from __future__ import annotations

import importlib
from typing import Callable, Generic, Mapping, TypeVar

from tunegate.core.errors import TunegateError

T = TypeVar("T")


class Registry(Generic[T]):
    """Named implementations of one kind; built-ins are imported lazily from ``module:attribute`` paths."""

    def __init__(self, kind: str, builtins: Mapping[str, str]) -> None:
        self.kind = kind
        self._paths = dict(builtins)
        self._loaded: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator: add ``obj`` under ``name`` (replacing a built-in of that name)."""

        def add(obj: T) -> T:
            self._loaded[name] = obj
            self._paths.pop(name, None)
            return obj

        return add

    def names(self) -> list[str]:
        return sorted(set(self._paths) | set(self._loaded))

    def get(self, name: str) -> T:
        """The implementation registered as ``name``; an unknown name is one TunegateError listing the known."""
        if name not in self._loaded:
            if name not in self._paths:
                raise TunegateError(f"unknown {self.kind} '{name}' (known: {', '.join(self.names())})")
            module, _, attribute = self._paths[name].partition(":")
            self._loaded[name] = getattr(importlib.import_module(module), attribute)
        return self._loaded[name]

    def __contains__(self, name: object) -> bool:
        return name in self._paths or name in self._loaded
