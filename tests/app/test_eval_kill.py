"""``tunegate eval`` killed with SIGKILL midway resumes from its cache: nothing finished is recomputed.

The run is sized so that a kill lands inside it: two organism suites of 40 items each, generated one
prompt at a time (``--batch-size 1``); the cache commits a suite's responses when the suite's chunk is
done, so once it holds the first suite's 50 entries the second suite is running, and the test kills
the process then. The rerun reports per suite how many responses came from the cache
(``--log-format json``: ``task_end`` events with ``cached``).
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tunegate.evals.records import RunRecord

LIMIT = 40
ARGS = ["eval", "organism", "--suites", "math,ifeval", "--suite-option", "math.variant=organism",
        "--suite-option", "ifeval.variant=organism", "--limit", str(LIMIT), "--batch-size", "1", "--log-format", "json"]
#: One intra-op thread in every run, so the interrupted and the uninterrupted runs compute alike.
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def _tunegate(args: list[str], **kwargs: Any) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "tunegate", *args], env=ENV, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kwargs)


def _entries(cache: Path) -> dict[str, str]:
    path = cache / "responses.sqlite"
    if not path.exists():
        return {}
    try:
        with sqlite3.connect(path, timeout=1) as db:
            return dict(db.execute("SELECT key, value FROM responses"))
    except sqlite3.OperationalError:  # created but not yet holding the table
        return {}


def _comparable(record: RunRecord) -> dict[str, Any]:
    """The record without what differs between two runs of the same evaluation (times, dates)."""
    data = record.to_dict()
    for key in ("created", "seconds"):
        data.pop(key, None)
    for suite in data["suites"].values():
        suite.pop("seconds", None)
    return data


@pytest.mark.slow
def test_eval_killed_midway_resumes_without_recomputing_and_equals_an_uninterrupted_run(tmp_path: Path) -> None:
    cache, out = tmp_path / "cache", tmp_path / "resumed.json"
    reference = _tunegate([*ARGS, "--cache-dir", str(tmp_path / "fresh"), "--out", str(tmp_path / "reference.json")])
    victim = _tunegate([*ARGS, "--cache-dir", str(cache), "--out", str(out)])
    deadline = time.monotonic() + 600
    while len(_entries(cache)) < LIMIT:  # the first suite is done and committed: the second is running
        assert victim.poll() is None, f"the eval ended before it could be killed: {victim.communicate()[1][-2000:]}"
        assert time.monotonic() < deadline, "the cache never filled"
        time.sleep(0.05)
    victim.send_signal(signal.SIGKILL)
    victim.communicate()
    assert victim.returncode == -signal.SIGKILL and not out.exists()
    before = _entries(cache)
    assert LIMIT <= len(before) < 2 * LIMIT

    rerun = _tunegate([*ARGS, "--cache-dir", str(cache), "--out", str(out)])
    _, err = rerun.communicate(timeout=900)
    assert rerun.returncode == 0, err[-2000:]
    ends = {e["task"]: e for e in map(json.loads, err.splitlines()) if e["event"] == "task_end"}
    assert sum(e["cached"] for e in ends.values()) == len(before)  # every finished response came from the cache
    after = _entries(cache)
    assert {k: after[k] for k in before} == before and len(after) == 2 * LIMIT

    _, err = reference.communicate(timeout=900)  # the same evaluation, uninterrupted, started beside the victim
    assert reference.returncode == 0, err[-2000:]
    assert _comparable(RunRecord.load(out)) == _comparable(RunRecord.load(tmp_path / "reference.json"))
