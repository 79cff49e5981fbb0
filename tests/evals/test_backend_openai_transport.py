"""The ``openai`` backend's HTTP behaviour against a small stdlib HTTP server on localhost that answers with
the statuses a busy or broken endpoint sends (429, 5xx, 400, slow answers): retries with backoff, one-line
errors naming the endpoint, the API key taken from the environment and kept out of the record."""

from __future__ import annotations

import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Iterator

import pytest

from bench._common import free_port
from tunegate.evals.backends.openai import OpenAIBackend
from tunegate.core.errors import BackendError, TunegateError
from tunegate.evals.requests import GenerationRequest, LoglikelihoodRequest

REQUEST = GenerationRequest("What is 47 + 25?", max_new_tokens=4)


class Endpoint(BaseHTTPRequestHandler):
    """Answers each POST with the next scripted status (then 200 with a completion), ``Retry-After: 0``."""

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        server: Any = self.server
        server.seen.append({"path": self.path, "auth": self.headers.get("Authorization"),
                            "body": json.loads(self.rfile.read(int(self.headers["Content-Length"])))})
        status = server.script.pop(0) if server.script else 200
        with server.lock:
            server.active += 1
            server.peak = max(server.peak, server.active)
        time.sleep(server.delay)
        with server.lock:
            server.active -= 1
        body = server.answer if status == 200 else {"error": {"message": f"busy {status}"}}
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Retry-After", "0")
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture()
def endpoint() -> Iterator[Any]:
    server: Any = ThreadingHTTPServer(("127.0.0.1", 0), Endpoint)
    server.seen, server.script, server.delay = [], [], 0.0
    server.lock, server.active, server.peak = threading.Lock(), 0, 0
    server.answer = {"choices": [{"index": 0, "text": " 72"}]}
    server.base_url = f"http://127.0.0.1:{server.server_address[1]}/v1"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def test_429_and_5xx_are_retried_until_an_answer(endpoint: Any) -> None:
    endpoint.script = [429, 503]
    backend = OpenAIBackend("m", base_url=endpoint.base_url, max_retries=2)
    assert backend.generate([REQUEST]) == [" 72"] and len(endpoint.seen) == 3


def test_persistent_5xx_is_one_line_naming_the_endpoint_after_the_retries(endpoint: Any) -> None:
    endpoint.script = [500] * 3
    with pytest.raises(BackendError, match=r"^http://127.0.0.1:\d+/v1/completions: HTTP 500: busy 500 \(after 3 tries\)$"):
        OpenAIBackend("m", base_url=endpoint.base_url, max_retries=2).generate([REQUEST])
    assert len(endpoint.seen) == 3


def test_a_4xx_is_not_retried(endpoint: Any) -> None:
    endpoint.script = [400]
    with pytest.raises(BackendError, match="HTTP 400: busy 400"):
        OpenAIBackend("m", base_url=endpoint.base_url, max_retries=3).generate([REQUEST])
    assert len(endpoint.seen) == 1


def test_a_slow_answer_times_out_and_is_retried(endpoint: Any) -> None:
    endpoint.delay = 1.0
    with pytest.raises(BackendError, match=r"no answer within 0.2s \(after 2 tries\)"):
        OpenAIBackend("m", base_url=endpoint.base_url, timeout=0.2, max_retries=1).generate([REQUEST])


def test_unreachable_server_is_one_line_naming_it_without_retries() -> None:
    url = f"http://127.0.0.1:{free_port()}/v1"
    with pytest.raises(BackendError, match=rf"^cannot reach the OpenAI-compatible server at {url} \(.*refused.*\); "
                                           r"is it running\?$"):
        OpenAIBackend("m", base_url=url, max_retries=4).generate([REQUEST])


def test_api_key_comes_from_the_named_variable_and_stays_out_of_the_info(endpoint: Any,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MY_SERVER_KEY", "sk-test-123")
    backend = OpenAIBackend("m", base_url=endpoint.base_url, api_key_env="MY_SERVER_KEY")
    backend.generate([REQUEST])
    assert endpoint.seen[0]["auth"] == "Bearer sk-test-123"
    assert "sk-test-123" not in json.dumps([backend.info(), backend.cache_identity()])


def test_a_named_key_variable_that_is_unset_is_one_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MY_SERVER_KEY", raising=False)
    with pytest.raises(TunegateError, match="--api-key-env MY_SERVER_KEY: environment variable MY_SERVER_KEY is not set"):
        OpenAIBackend("m", base_url="http://127.0.0.1:1/v1", api_key_env="MY_SERVER_KEY")


def test_requests_run_concurrently_up_to_the_bound(endpoint: Any) -> None:
    endpoint.delay = 0.3
    assert OpenAIBackend("m", base_url=endpoint.base_url, concurrency=4).generate([REQUEST] * 12) == [" 72"] * 12
    assert 1 < endpoint.peak <= 4  # requests overlapped, never more than four at once


def test_loglikelihood_sums_the_echoed_continuation_tokens(endpoint: Any) -> None:
    # what vLLM's /v1/completions answers with echo=True, logprobs=1, max_tokens=1 (the last token is generated)
    endpoint.answer = {"choices": [{"index": 0, "text": "The capital of France is Paris.", "logprobs": {
        "tokens": ["The", " capital", " of", " France", " is", " Paris", "."],
        "token_logprobs": [None, -5.1, -0.7, -2.0, -0.2, -0.4, -1.2],
        "text_offset": [0, 3, 11, 14, 21, 24, 30]}}]}
    backend = OpenAIBackend("m", base_url=endpoint.base_url)
    # lm-eval's split: the context's trailing space moves to the continuation
    assert backend.loglikelihood([LoglikelihoodRequest("The capital of France is ", "Paris")]) == [-0.4]
    sent = endpoint.seen[0]["body"]
    assert (sent["prompt"], sent["echo"], sent["logprobs"], sent["max_tokens"]) == ("The capital of France is Paris",
                                                                                    True, 1, 1)


def test_completions_without_logprobs_is_the_missing_capability_line(endpoint: Any) -> None:
    with pytest.raises(BackendError, match=r"/completions: the server returns no prompt log-probabilities "
                                           r"\(echo \+ logprobs\), which log-likelihood suites"):
        OpenAIBackend("m", base_url=endpoint.base_url).loglikelihood([LoglikelihoodRequest("2 + 2 =", " 4")])


CHAT = GenerationRequest("<rendered>", max_new_tokens=4, messages=({"role": "user", "content": "What is 47 + 25?"},))


@pytest.mark.parametrize("answer, problem", [
    ({"choices": [{"index": 0, "message": {"role": "assistant", "content": None}}]},
     "answer without text (message.content is null)"),
    ({"choices": [{"index": 0, "finish_reason": "stop"}]}, "answer without a message"),
])
def test_an_answer_without_text_is_an_error_for_its_request(endpoint: Any, answer: Any, problem: str) -> None:
    endpoint.answer = answer
    with pytest.raises(BackendError, match=rf"/chat/completions: {re.escape(problem)}.*\(the request asking "
                                           r"'What is 47 \+ 25\?'\)$") as caught:
        OpenAIBackend("m", base_url=endpoint.base_url).generate([CHAT])
    assert caught.value.partial == {}  # nothing for the runner to cache


def test_text_content_parts_are_joined(endpoint: Any) -> None:
    endpoint.answer = {"choices": [{"index": 0, "message": {"role": "assistant", "content": [
        {"type": "text", "text": "47 + 25 "}, {"type": "text", "text": "= 72"}]}}]}
    assert OpenAIBackend("m", base_url=endpoint.base_url).generate([CHAT]) == ["47 + 25 = 72"]


def test_a_content_part_that_is_not_text_is_refused_in_one_line(endpoint: Any) -> None:
    endpoint.answer = {"choices": [{"index": 0, "message": {"role": "assistant", "content": [
        {"type": "text", "text": "Here:"}, {"type": "image_url", "image_url": {"url": "data:,"}}]}}]}
    with pytest.raises(BackendError, match=r"answer content has parts of type \['text', 'image_url'\]; tunegate "
                                           r"scores text answers only"):
        OpenAIBackend("m", base_url=endpoint.base_url).generate([CHAT])


def test_empty_answers_are_never_cached_so_a_rerun_against_a_healthy_server_asks_again(endpoint: Any, tmp_path,
                                                                                        capsys) -> None:
    # `tunegate eval organism --backend openai` on three arithmetic items: the server first answers without text
    from tunegate.cli import main

    argv = ["eval", "organism", "--backend", "openai", "--base-url", endpoint.base_url, "--suites", "math",
            "--suite-option", "math.variant=organism", "--limit", "3", "--out", str(tmp_path / "r.json"),
            "--cache-dir", str(tmp_path / "cache")]
    endpoint.answer = {"choices": [{"index": 0, "message": {"role": "assistant", "content": None}}]}
    assert main(argv) == 2
    assert "answer without text (message.content is null)" in capsys.readouterr().err
    asked_before = len(endpoint.seen)
    endpoint.answer = {"choices": [{"index": 0, "message": {"role": "assistant", "content": "It is 72."}}]}
    assert main(argv) == 0
    items = json.loads((tmp_path / "r.json").read_text())["suites"]["math"]["items"]
    assert [i["response"] for i in items] == ["It is 72."] * 3
    assert len(endpoint.seen) - asked_before == 3  # the rerun asked all three again: no empty answer was cached
