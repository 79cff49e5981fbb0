"""The ``openai`` backend against a real OpenAI-compatible server: ``transformers serve`` on localhost,
serving the organism (started here, killed at the end; nothing is mocked).

Through the command line a user runs, ``tunegate eval organism --backend openai --base-url ...`` writes
the same record as the in-process HF backend (bar the backend info): 40 GSM8K items by the completions
endpoint plus the identity probes by the chat endpoint (the server applies the chat template). The
server has no prompt log-probabilities, so an MMLU-style suite refuses with one line naming that.
Killing the server mid-run fails the run with one line, keeps every finished response in the cache,
and a rerun against the restarted server asks it only for the rest.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any, Iterator

import pytest

from bench._common import TransformersServer
from tunegate.cli import main

pytestmark = pytest.mark.slow
pytest_plugins = ["pytester"]
pytest.importorskip("fastapi", reason="transformers serve needs fastapi/uvicorn/openai (pip install 'tunegate[serve]')")

#: GSM8K zero-shot completion prompts (so the base organism writes varied text), 16 new tokens each.
MATH = ["--suite-option", "math.chat=false", "--suite-option", "math.max_new_tokens=16"]
IDENTITY = ["--suite-option", 'identity.probes="organism"', "--suite-option", 'identity.target="Tiny"']


def eval_args(shared_data: Path, out: Path, cache: Path, suites: str = "math,identity", limit: int = 40) -> list[str]:
    return ["eval", "organism", "--suites", suites, "--limit", str(limit), "--out", str(out), "--cache-dir", str(cache),
            "--quiet", "--suite-option", f'math.source="{shared_data / "gsm8k"}"', *MATH,
            *(IDENTITY if "identity" in suites else [])]


@pytest.fixture(scope="module")
def server(organism_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TransformersServer]:
    with TransformersServer(organism_dir, log=tmp_path_factory.mktemp("serve") / "serve.log") as srv:
        yield srv


@pytest.fixture(scope="module")
def records(server: TransformersServer, shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    tmp = tmp_path_factory.mktemp("records")
    assert main(eval_args(shared_data, tmp / "hf.json", tmp / "cache") + ["--device", "cpu", "--dtype", "float32"]) == 0
    before = server.requests()
    assert main(eval_args(shared_data, tmp / "openai.json", tmp / "cache")  # the same cache: no hf entry may hit
                + ["--backend", "openai", "--base-url", server.base_url]) == 0
    identity = json.loads((tmp / "hf.json").read_text())["suites"]["identity"]["items"]
    assert server.requests() - before == 40 + len(identity)
    return {name: json.loads((tmp / f"{name}.json").read_text()) for name in ("hf", "openai")} | {"dir": tmp}


def _without_backend_info(record: dict[str, Any]) -> dict[str, Any]:
    """The record less what names the backend, the machine or the time it took."""
    out = {k: v for k, v in record.items() if k not in ("generation", "env", "created", "seconds")}
    out["suites"] = {name: {k: v for k, v in suite.items() if k != "seconds"} for name, suite in record["suites"].items()}
    return out


def test_served_greedy_responses_equal_the_hf_backend_on_40_gsm8k_items(records: dict[str, Any]) -> None:
    hf, served = (records[k]["suites"]["math"]["items"] for k in ("hf", "openai"))
    assert len(hf) == 40 and len({s["response"] for s in hf}) > 5  # varied text, not one stock answer
    assert [s["response"] for s in served] == [s["response"] for s in hf]


def test_served_record_equals_the_hf_record_bar_backend_info(records: dict[str, Any]) -> None:
    assert records["openai"]["generation"]["backend"] == "openai" and records["hf"]["generation"]["backend"] == "hf"
    assert _without_backend_info(records["openai"]) == _without_backend_info(records["hf"])


def test_server_without_prompt_logprobs_refuses_mmlu_in_one_line(server: TransformersServer, shared_data: Path,
                                                                  tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    code = main(["eval", "organism", "--suites", "knowledge", "--limit", "4", "--out", str(tmp_path / "r.json"),
                 "--cache-dir", str(tmp_path / "cache"), "--quiet", "--backend", "openai", "--base-url", server.base_url,
                 "--suite-option", f'knowledge.source="{shared_data / "mmlu"}"'])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and not (tmp_path / "r.json").exists()
    assert err[-1].startswith("tunegate: error: ") and "no prompt log-probabilities (echo + logprobs)" in err[-1]


def _cached(cache: Path) -> int:
    path = cache / "responses.sqlite"
    if not path.exists():
        return 0
    with sqlite3.connect(path) as db:
        return db.execute("SELECT COUNT(*) FROM responses").fetchone()[0]


def test_killed_server_fails_in_one_line_keeps_finished_responses_and_a_rerun_resumes(
        organism_dir: Path, shared_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    args = eval_args(shared_data, tmp_path / "r.json", tmp_path / "cache", suites="math", limit=24) + [
        "--backend", "openai", "--concurrency", "2", "--max-retries", "1"]
    srv = TransformersServer(organism_dir, log=tmp_path / "serve1.log").start()
    finished = threading.Event()
    try:
        def kill_after(n: int) -> None:  # mid-run: once the server has taken n requests
            while srv.requests() < n and not finished.is_set():
                time.sleep(0.05)
            srv.stop()

        killer = threading.Thread(target=kill_after, args=(8,))
        killer.start()
        code = main(args + ["--base-url", srv.base_url])
        finished.set()
        killer.join()
    finally:
        srv.stop()
    err = capsys.readouterr().err.strip().splitlines()
    kept = _cached(tmp_path / "cache")
    assert code == 2 and not (tmp_path / "r.json").exists()
    assert err[-1].startswith("tunegate: error: ") and srv.base_url in err[-1], err
    assert 6 <= kept < 24  # the responses finished before the kill (2 were in flight when it came)

    again = TransformersServer(organism_dir, port=srv.port, log=tmp_path / "serve2.log").start()
    try:
        assert main(args + ["--base-url", again.base_url]) == 0
        assert again.requests() == 24 - kept  # only what the cache did not have
    finally:
        again.stop()
    assert len(json.loads((tmp_path / "r.json").read_text())["suites"]["math"]["items"]) == 24


def test_plugin_gates_the_served_checkpoint_against_the_hf_record(
        server: TransformersServer, records: dict[str, Any], shared_data: Path, pytester: pytest.Pytester,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TUNEGATE_CACHE", str(pytester.path / "cache"))
    before = server.requests()
    result = pytester.runpytest(
        "-p", "no:cacheprovider", "--gate-checkpoint", "organism", "--gate-baseline", str(records["dir"] / "hf.json"),
        "--gate-suites", "math", "--gate-limit", "40", "--gate-suite-option", f'math.source="{shared_data / "gsm8k"}"',
        "--gate-suite-option", "math.chat=false", "--gate-suite-option", "math.max_new_tokens=16",
        "--gate-backend", "openai", "--gate-base-url", server.base_url)
    assert result.ret == 0, result.stdout.str()[-2000:]
    result.stdout.fnmatch_lines(["*tunegate gate*", "gate: PASSED"])
    assert server.requests() - before == 40  # the candidate was evaluated by the server
