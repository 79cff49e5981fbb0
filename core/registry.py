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
from typing import Any, Callable, Generic, Mapping, TypeVar

from tunegate.core.errors import TunegateError

T = TypeVar("T")


def load_object(path: str) -> Any:
    """The object a ``"module:attribute"`` path names (``attribute`` may be dotted: ``"pkg.mod:Class.method"``)."""
    module, sep, attribute = path.partition(":")
    if not sep or not module or not attribute:
        raise TunegateError(f"'{path}': expected module:attribute")
    try:
        obj: Any = importlib.import_module(module)
        for part in attribute.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as exc:
        raise TunegateError(f"'{path}': cannot import ({exc})") from None
    return obj


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
            self._loaded[name] = load_object(self._paths[name])
        return self._loaded[name]

    def path(self, name: str) -> str:
        """``"module:attribute"`` of the entry ``name``: where another process imports it from."""
        if name in self._paths:
            return self._paths[name]
        obj = self.get(name)
        return f"{obj.__module__}:{obj.__qualname__}"

    def __contains__(self, name: object) -> bool:
        return name in self._paths or name in self._loaded
