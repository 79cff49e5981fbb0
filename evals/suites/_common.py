"""Helpers shared by the built-in suites: data loading with suite errors, thinking blocks, breakdowns.

    strip_thinking("<think>2+2 is 4</think>The answer is 4.")   # -> "The answer is 4."
"""

from __future__ import annotations

import re
from collections import defaultdict
from typing import Any, Callable, Mapping, Sequence

from tunegate.core.errors import SuiteError, TunegateError
from tunegate.core.files import Required
from tunegate.evals.records import ItemScore, item_units
from tunegate.evals.sources import Benchmark, data_dir, load_rows

_THINK = re.compile(r"<think>.*?(?:</think>|$)", re.DOTALL)


def suite_rows(suite: str, source: str, *, split: str, name: str | None = None, required: Required | None = None,
               options: Mapping[str, Any] | None = None, option: str = "source",
               benchmark: Benchmark | None = None) -> list[dict[str, Any]]:
    """``tunegate.evals.sources.load_rows`` with failures turned into a one-line SuiteError naming the suite and
    the option that chooses its data (``option``), as a flag and as a pipeline config field, and for a
    ``benchmark`` the command that writes its default copy (``tunegate data fetch NAME``)."""
    try:
        return load_rows(source, split=split, name=name, required=required, options=options)
    except TunegateError as exc:
        fetch = (f"`tunegate data fetch {benchmark.name}` writes the default copy ({data_dir() / benchmark.name}), "
                 "or give " if benchmark else "")
        raise SuiteError(f"suite '{suite}': {exc} [the data is the option '{option}': {fetch}--suite-option "
                         f"{suite}.{option}=PATH, or eval.suites.{suite}.{option} in a pipeline config]") from None


def strip_thinking(text: str) -> str:
    """Remove ``<think>...</think>`` blocks (an unclosed one runs to the end) and a stray ``</think>`` prefix."""
    if "</think>" in text and "<think>" not in text:  # templates that open the block in the prompt
        text = text.split("</think>", 1)[1]
    return _THINK.sub("", text).strip()


def mean_by(scores: Sequence[ItemScore], metric: str,
            key: Callable[[ItemScore], Sequence[tuple[str, float]]] | None = None) -> dict[str, float]:
    """Mean of ``metric`` per key: by ``group`` by default, or by the (key, value) pairs ``key`` yields."""
    sums: dict[str, float] = defaultdict(float)
    counts: dict[str, int] = defaultdict(int)
    for s in scores:
        if metric not in s.scores:
            continue
        pairs = key(s) if key else [(s.group or "", v) for v in item_units(s.scores[metric])]
        for k, v in pairs:
            sums[k] += float(v)
            counts[k] += 1
    return {k: sums[k] / counts[k] for k in sorted(sums)}
