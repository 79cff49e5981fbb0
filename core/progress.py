"""Progress for people and for CI logs: the one mechanism every phase, training stage and eval suite reports through.

Three modes, chosen once at the command line (``--quiet``, ``--log-format json``) and kept in the
environment variable ``TUNEGATE_PROGRESS``, so processes started under ``accelerate launch`` report the
same way. Everything goes to stderr; stdout is for results.

    text   (default) a tqdm bar per training stage and per eval suite, a line per phase:
           [tunegate] train sft ...
           train sft: 100%|██████████| 62/62 [00:21<00:00,  2.9step/s, loss=0.412]
           [tunegate] train sft done in 21.4s
    json   one JSON object per line (a real run's lines):
           {"event": "phase_start", "phase": "train sft", "t": 3.1}
           {"event": "progress", "task": "train sft", "n": 31, "total": 62, "elapsed_s": 10.2, "eta_s": 10.1, "loss": 0.61, "t": 13.3}
           {"event": "task_end", "task": "train sft", "n": 62, "total": 62, "elapsed_s": 21.3, "loss": 0.41, "t": 24.4}
           {"event": "phase_end", "phase": "train sft", "seconds": 21.4, "t": 24.5}
    quiet  nothing but warnings and errors.

The bars are tqdm's own; in json mode a tqdm subclass turns each refresh (at most one per
``JSON_INTERVAL_S``) into a ``progress`` line instead of drawing.
"""

from __future__ import annotations

import io
import json
import math
import os
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Iterable, Iterator

from tqdm.auto import tqdm

MODES = ("text", "json", "quiet")
ENV = "TUNEGATE_PROGRESS"
#: Seconds between two ``progress`` lines of one task in json mode (tqdm's ``mininterval``).
JSON_INTERVAL_S = 2.0
_T0 = time.monotonic()


def configure(mode: str) -> None:
    """Set the mode for this process and the processes it starts."""
    if mode not in MODES:
        raise ValueError(f"progress mode must be one of {MODES}, got {mode!r}")
    os.environ[ENV] = mode


def mode() -> str:
    """The current mode: ``TUNEGATE_PROGRESS`` when it names one, else ``text``."""
    value = os.environ.get(ENV, "text")
    return value if value in MODES else "text"


def _number(value: Any) -> Any:
    """JSON-safe scalars: numpy/torch numbers become floats, non-finite floats become None."""
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def emit(event: str, **fields: Any) -> None:
    """One JSON line on stderr (json mode only): ``{"event": ..., **fields, "t": seconds since start}``."""
    if mode() != "json":
        return
    body = {"event": event, **{k: _number(v) for k, v in fields.items()}, "t": round(time.monotonic() - _T0, 3)}
    sys.stderr.write(json.dumps(body, default=str) + "\n")
    sys.stderr.flush()


def log(message: str) -> None:
    """A progress line: ``[tunegate] message`` in text mode, a ``log`` event in json mode, nothing when quiet."""
    current = mode()
    if current == "text":
        print(f"[tunegate] {message}", file=sys.stderr, flush=True)
    elif current == "json":
        emit("log", message=message)


def warn(message: str) -> None:
    """A warning, shown in every mode."""
    if mode() == "json":
        emit("warning", message=message)
    else:
        print(f"[tunegate] warning: {message}", file=sys.stderr, flush=True)


@dataclass
class Phase:
    name: str
    seconds: float = 0.0
    cpu_seconds: float = 0.0  # this process's CPU time (user + system, all its threads) over the phase


@contextmanager
def phase(name: str) -> Iterator[Phase]:
    """Time a phase of a run, announcing its start and end; ``.seconds`` is set on exit."""
    current = Phase(name)
    if mode() == "json":
        emit("phase_start", phase=name)
    else:
        log(f"{name} ...")
    start, cpu = time.perf_counter(), time.process_time()
    try:
        yield current
    finally:
        current.seconds = round(time.perf_counter() - start, 2)
        current.cpu_seconds = round(time.process_time() - cpu, 2)
    if mode() == "json":
        emit("phase_end", phase=name, seconds=current.seconds)
    else:
        log(f"{name} done in {current.seconds:.1f}s")


class _Bar(tqdm):  # type: ignore[misc]
    """tqdm whose ``set_postfix`` adds to the shown fields (loss, cached, ...) instead of replacing them."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.fields: dict[str, Any] = dict(kwargs.get("postfix") or {})
        super().__init__(*args, **kwargs)

    def set_postfix(self, ordered_dict: Any = None, refresh: bool = False, **kwargs: Any) -> None:
        self.fields.update(dict(ordered_dict or {}), **kwargs)
        super().set_postfix(self.fields, refresh=refresh)


class _JsonBar(_Bar):
    """tqdm that writes a ``progress`` JSON line on each refresh and a ``task_end`` line on close."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.update(file=io.StringIO(), mininterval=JSON_INTERVAL_S, delay=0, dynamic_ncols=False)
        super().__init__(*args, **kwargs)

    def _state(self) -> dict[str, Any]:
        d = self.format_dict
        state = {"task": self.desc, "n": self.n, "total": self.total, "elapsed_s": round(d["elapsed"], 2)}
        rate = d.get("rate") or ((self.n - self.initial) / d["elapsed"] if d["elapsed"] > 0 else None)
        if rate and self.total:
            state["eta_s"] = round((self.total - self.n) / rate, 1)
        return {**state, **self.fields}

    def display(self, msg: str | None = None, pos: int | None = None) -> bool:
        if not self.disable:
            emit("progress", **self._state())
        return True

    def close(self) -> None:
        if not getattr(self, "disable", True):
            state = self._state()
            state.pop("eta_s", None)
            self.disable = True
            self._decr_instances(self)
            emit("task_end", **state)
        super().close()


def bar(total: int | Iterable[Any] | None, desc: str, *, unit: str = "it", enabled: bool = True,
        initial: int = 0, **fields: Any) -> _Bar:
    """A progress bar for one task (a training stage, an eval suite): tqdm, drawn or reported per the mode.

    ``total`` is a count (then call ``update``) or a sized iterable to wrap. ``enabled=False`` (or quiet
    mode) gives a disabled bar that draws nothing. ``fields`` are shown after the bar and included in
    every json line (e.g. ``cached=120``).
    """
    iterable = None if total is None or isinstance(total, int) else total
    count = len(iterable) if iterable is not None and hasattr(iterable, "__len__") else total  # type: ignore[arg-type]
    current = mode()
    if not enabled or current == "quiet":
        return _Bar(iterable, total=count, disable=True)
    if current == "json":
        return _JsonBar(iterable, total=count, desc=desc, unit=unit, initial=initial, postfix=fields or None)
    tty = sys.stderr.isatty()
    return _Bar(iterable, total=count, desc=desc, unit=unit, initial=initial, postfix=fields or None,
                file=sys.stderr, leave=True, dynamic_ncols=tty, mininterval=0.1 if tty else 10.0)
