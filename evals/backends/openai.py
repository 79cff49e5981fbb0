"""The ``openai`` backend: a model served by any OpenAI-compatible server (vLLM, SGLang, TGI, llama.cpp,
``transformers serve``), over HTTP with the standard library (urllib + a thread pool; no SDK needed
for three JSON endpoints).

Generation of a chat suite goes to ``/chat/completions`` with the messages, so the server applies its
own chat template; raw prompts (completion-mode suites, ``--endpoint completions``) go to
``/completions``. Log-likelihood asks ``/completions`` to echo the prompt with its token log-probs
and sums those of the continuation's tokens; a server without them (``transformers serve``) makes an
MMLU-style suite stop with one line naming the missing capability. One exchange, as sent::

    POST http://127.0.0.1:8000/v1/chat/completions
    {"model": "/abs/path/organism/base", "messages": [{"role": "user", "content": "What is 47 + 25?"}],
     "max_tokens": 64, "temperature": 0.0}
    -> {"choices": [{"message": {"role": "assistant", "content": "72"}, ...}], ...}

Requests run ``concurrency`` at a time; 429, 5xx, timeouts and dropped connections are retried with
exponential backoff (``Retry-After`` honoured); an unreachable server is one line naming the endpoint,
and what finished before a failure is handed to the runner's cache (``BackendError.partial``). An answer
without text (``content: null``, no ``message``) is an error for its request, never an empty response
that the cache would keep; OpenAI's content-parts lists are joined when they are all text. The API
key comes from an environment variable (``--api-key-env``), never from an argument or the record.
"""

from __future__ import annotations

import functools
import hashlib
import http.client
import json
import os
import socket
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor, wait
from typing import Any, Callable, Mapping, Sequence, TypeVar

from tunegate.evals.backends._tokens import split_trailing_space
from tunegate.core.errors import BackendError, TunegateError
from tunegate.evals.models import fingerprint_dir, loading, local_model_dir
from tunegate.evals.requests import GenerationRequest, LoglikelihoodRequest, truncate_at_stop

T = TypeVar("T")
R = TypeVar("R")

ENDPOINTS = ("chat", "completions")
#: Prompt text of a chat rendered by the server (chat endpoint, no chat template here): a cache key, never sent.
SERVER_RENDERED = "[chat template applied by the server] "


class ServerRejected(TunegateError):
    """The server answered a request with a 4xx status (not 429): retrying will not help."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class OpenAIBackend:
    """A served model behind the batched request interface; ``model`` names it (and, when it is a local
    checkpoint or ``organism``, gives its weights for the fingerprint and its chat template)."""

    def __init__(self, model: str, *, base_url: str | None = None, api_key_env: str | None = None,
                 served_model: str | None = None, revision: str | None = None, endpoint: str | None = None,
                 concurrency: int | None = None, timeout: float | None = None, max_retries: int | None = None,
                 completion_mode: bool = False, trust_remote_code: bool = False) -> None:
        self.name = model
        self.trust_remote_code = bool(trust_remote_code)  # for the local checkpoint's tokenizer only
        base = base_url or os.environ.get("OPENAI_BASE_URL")
        if not base:
            raise TunegateError("backend 'openai' needs --base-url (the server's API root, e.g. "
                                "http://127.0.0.1:8000/v1) or $OPENAI_BASE_URL")
        if not base.startswith(("http://", "https://")):
            raise TunegateError(f"--base-url must start with http:// or https://, got '{base}'")
        self.base_url = base.rstrip("/")
        self.endpoint = endpoint or "chat"
        if self.endpoint not in ENDPOINTS:
            raise TunegateError(f"--endpoint must be one of {', '.join(ENDPOINTS)}, got '{self.endpoint}'")
        self.concurrency = 8 if concurrency is None else int(concurrency)
        self.timeout = 120.0 if timeout is None else float(timeout)
        self.max_retries = 4 if max_retries is None else int(max_retries)
        if self.concurrency < 1 or self.timeout <= 0 or self.max_retries < 0:
            raise TunegateError("--concurrency must be at least 1, --timeout above 0 and --max-retries at least 0")
        self.completion_mode = completion_mode
        self.local_dir = local_model_dir(model)
        self.served_model = served_model or (str(self.local_dir.resolve()) if self.local_dir else model)
        self.revision = revision
        self.weights = fingerprint_dir(self.local_dir) if self.local_dir else None
        self._headers = {"Content-Type": "application/json", **api_key_header(api_key_env)}

    # -- identity -------------------------------------------------------------------------------
    @property
    def fingerprint(self) -> str:
        """The weights' hash for a local checkpoint (as the hf backend's); else the served id + revision."""
        if self.weights:
            return self.weights
        name = json.dumps({"served_model": self.served_model, "revision": self.revision})
        return hashlib.sha256(name.encode()).hexdigest()[:16]

    def cache_identity(self) -> dict[str, Any]:
        """``{"backend": "openai", "served": True, "model": "Qwen/Qwen2.5-0.5B-Instruct", "revision": "7ae557",
        "weights": None, "endpoint": "chat"}``: the server's model id and the revision the user gave
        (or the weights' hash for a local checkpoint). The server's engine and version are not visible
        through the API; a served model without either is warned about once (``cache.warn_if_unpinned``)."""
        return {"backend": "openai", "served": True, "model": self.served_model, "revision": self.revision,
                "weights": self.weights, "endpoint": self.endpoint}

    def info(self) -> dict[str, Any]:
        return {"backend": "openai", "model": self.name, "base_url": self.base_url, "served_model": self.served_model,
                "revision": self.revision, "endpoint": self.endpoint, "concurrency": self.concurrency,
                "fingerprint": self.fingerprint, "trust_remote_code": self.trust_remote_code}

    # -- chat template --------------------------------------------------------------------------
    @functools.cached_property
    def tokenizer(self) -> Any:
        """The local checkpoint's tokenizer (for its chat template), or None for a model served by name."""
        if self.local_dir is None:
            return None
        from transformers import AutoTokenizer

        with loading(self.name):
            return AutoTokenizer.from_pretrained(self.local_dir, trust_remote_code=self.trust_remote_code)

    def has_chat_template(self) -> bool:
        if self.endpoint == "chat":
            return True  # the server applies its own
        return bool(getattr(self.tokenizer, "chat_template", None))

    def render(self, messages: Sequence[Mapping[str, str]]) -> str:
        """The chat as text: rendered here with the local checkpoint's template when there is one (the
        completions endpoint and log-likelihood contexts need it), else a stand-in for the cache key
        (the chat endpoint renders on the server)."""
        if getattr(self.tokenizer, "chat_template", None):
            return self.tokenizer.apply_chat_template(list(messages), tokenize=False, add_generation_prompt=True)
        if self.endpoint == "chat":
            return SERVER_RENDERED + json.dumps([dict(m) for m in messages], ensure_ascii=False)
        raise TunegateError(f"model '{self.name}': --endpoint completions needs the chat template here, and the model "
                            f"is served by name (no local checkpoint); use --endpoint chat, or --completion-mode")

    # -- requests -------------------------------------------------------------------------------
    def generate(self, requests: Sequence[GenerationRequest]) -> list[str]:
        """Greedy (or sampled) continuations, in request order, ``concurrency`` requests at a time."""
        return self._map(self._generate_one, requests)

    def _generate_one(self, request: GenerationRequest) -> str:
        chat = bool(request.messages) and self.endpoint == "chat" and not self.completion_mode
        path, body = generation_body(request, self.served_model, chat)
        choice = first_choice(self._post(path, body), self.base_url + path)
        return truncate_at_stop(answer_text(choice, self.base_url + path, chat, request), request.stop)

    def loglikelihood(self, requests: Sequence[LoglikelihoodRequest]) -> list[float]:
        """Sum of the continuation tokens' log-probabilities, from ``/completions`` with ``echo`` + ``logprobs``."""
        return self._map(self._loglikelihood_one, requests)

    def _loglikelihood_one(self, request: LoglikelihoodRequest) -> float:
        if request.context.startswith(SERVER_RENDERED):
            raise TunegateError(f"model '{self.name}': log-likelihood of a chat prompt needs its chat template here; "
                                f"give the local checkpoint as the model (with --served-model NAME), or --completion-mode")
        context, continuation = split_trailing_space(request.context, request.continuation)
        url = f"{self.base_url}/completions"
        body = {"model": self.served_model, "prompt": context + continuation, "max_tokens": 1, "echo": True,
                "logprobs": 1, "temperature": 0.0}
        try:
            answer = self._post("/completions", body)
        except ServerRejected as exc:
            raise TunegateError(f"{missing_logprobs(url)} (it rejected echo + logprobs: {exc})") from None
        logprobs = first_choice(answer, url).get("logprobs")
        return continuation_logprob(logprobs, len(context), len(context + continuation), url)

    # -- transport ------------------------------------------------------------------------------
    def _map(self, fn: Callable[[T], R], items: Sequence[T]) -> list[R]:
        """``fn`` over ``items`` on ``concurrency`` threads, in order; on the first failure the rest is
        cancelled and a BackendError carries every result that did finish."""
        if not items:
            return []
        pool = ThreadPoolExecutor(max_workers=min(self.concurrency, len(items)), thread_name_prefix="tunegate-openai")
        futures = [pool.submit(fn, item) for item in items]
        try:
            wait(futures, return_when="FIRST_EXCEPTION")
            failed = next((f for f in futures if f.done() and f.exception() is not None), None)
            if failed is None:
                return [f.result() for f in futures]
            pool.shutdown(wait=True, cancel_futures=True)
            partial = {i: f.result() for i, f in enumerate(futures)
                       if f.done() and not f.cancelled() and f.exception() is None}
            exc = failed.exception()
            message = str(exc) if isinstance(exc, TunegateError) else f"{self.base_url}: {type(exc).__name__}: {exc}"
            raise BackendError(message, partial=partial) from None
        finally:
            pool.shutdown(wait=False, cancel_futures=True)

    def _post(self, path: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """POST ``body`` as JSON; retries 429/5xx/timeouts/dropped connections with backoff."""
        url = self.base_url + path
        data = json.dumps(body).encode()
        for attempt in range(self.max_retries + 1):
            retry_after: float | None = None
            try:
                request = urllib.request.Request(url, data=data, headers=self._headers, method="POST")
                with urllib.request.urlopen(request, timeout=self.timeout) as response:
                    raw = response.read()
                try:
                    return json.loads(raw)
                except ValueError:
                    raise TunegateError(f"{url}: the answer is not JSON ({raw[:120]!r})") from None
            except urllib.error.HTTPError as exc:
                detail = error_detail(exc)
                if exc.code != 429 and exc.code < 500:
                    raise ServerRejected(exc.code, f"{url}: HTTP {exc.code}: {detail}") from None
                problem, retry_after = f"HTTP {exc.code}: {detail}", parse_retry_after(exc.headers.get("Retry-After"))
            except urllib.error.URLError as exc:
                reason = exc.reason
                if isinstance(reason, (ConnectionRefusedError, socket.gaierror, FileNotFoundError)):
                    raise TunegateError(f"cannot reach the OpenAI-compatible server at {self.base_url} "
                                        f"({_reason(reason)}); is it running?") from None
                problem = _reason(reason)
            except (TimeoutError, socket.timeout):
                problem = f"no answer within {self.timeout:g}s"
            except (ConnectionError, http.client.HTTPException) as exc:
                problem = f"connection dropped ({_reason(exc)})"
            if attempt == self.max_retries:
                raise TunegateError(f"{url}: {problem} (after {attempt + 1} tries)")
            time.sleep(retry_after if retry_after is not None else backoff(attempt))
        raise AssertionError("unreachable")


def api_key_header(api_key_env: str | None) -> dict[str, str]:
    """``{"Authorization": "Bearer ..."}`` from ``$api_key_env`` (default OPENAI_API_KEY, optional);
    a named variable that is not set is one clear error."""
    name = api_key_env or "OPENAI_API_KEY"
    key = os.environ.get(name)
    if not key:
        if api_key_env:
            raise TunegateError(f"--api-key-env {name}: environment variable {name} is not set")
        return {}
    return {"Authorization": f"Bearer {key}"}


def generation_body(request: GenerationRequest, served_model: str, chat: bool) -> tuple[str, dict[str, Any]]:
    """The endpoint and JSON body of one generation request: greedy is temperature 0, stop strings as given.

    >>> generation_body(GenerationRequest("Q: 2+2?\\nA:", max_new_tokens=8, stop=("\\n",)), "m", chat=False)
    ('/completions', {'model': 'm', 'prompt': 'Q: 2+2?\\nA:', 'max_tokens': 8, 'temperature': 0.0, 'stop': ['\\n']})
    """
    body: dict[str, Any] = {"model": served_model}
    if chat:
        path, body["messages"] = "/chat/completions", [dict(m) for m in request.messages]
    else:
        path, body["prompt"] = "/completions", request.prompt
    body["max_tokens"] = request.max_new_tokens
    body["temperature"] = float(request.temperature or 1.0) if request.do_sample else 0.0
    if request.stop:
        body["stop"] = list(request.stop)
    return path, body


def first_choice(answer: Mapping[str, Any], url: str) -> Mapping[str, Any]:
    choices = answer.get("choices") if isinstance(answer, Mapping) else None
    if not choices or not isinstance(choices[0], Mapping):
        raise TunegateError(f"{url}: answer without choices ({json.dumps(answer)[:160]})")
    return choices[0]


def answer_text(choice: Mapping[str, Any], url: str, chat: bool, request: GenerationRequest) -> str:
    """The text of a served answer: ``message.content`` (chat) or ``text``; a content-parts list is joined when
    every part is text. An answer without text is an error for its request, never an empty response: the
    runner caches only answers, so a rerun asks again::

        answer_text({"message": {"content": [{"type": "text", "text": "7"}, {"type": "text", "text": "2"}]}},
                    url, True, request)                                     # -> "72"
        answer_text({"message": {"content": None}}, url, True, request)     # TunegateError: ... without text
    """
    asked = (request.messages[-1].get("content") if request.messages else request.prompt) or ""
    about = f" (the request asking {asked[:60]!r})"
    message = choice.get("message") if chat else choice
    if not isinstance(message, Mapping):
        raise TunegateError(f"{url}: answer without a message ({json.dumps(choice)[:160]}){about}")
    content = message.get("content") if chat else message.get("text")
    if isinstance(content, list):
        kinds = [part.get("type") if isinstance(part, Mapping) else type(part).__name__ for part in content]
        if any(kind != "text" or not isinstance(part.get("text"), str) for kind, part in zip(kinds, content)):
            raise TunegateError(f"{url}: answer content has parts of type {kinds}; tunegate scores text answers "
                                f"only{about}")
        return "".join(part["text"] for part in content)
    if not isinstance(content, str):
        field = "message.content" if chat else "text"
        raise TunegateError(f"{url}: answer without text ({field} is {json.dumps(content)}){about}")
    return content


def missing_logprobs(url: str) -> str:
    return (f"{url}: the server returns no prompt log-probabilities (echo + logprobs), which log-likelihood "
            f"suites (knowledge/MMLU) need; serve the model with vLLM or llama.cpp, or evaluate with --backend hf")


def continuation_logprob(logprobs: Any, start: int, end: int, url: str) -> float:
    """Sum of the log-probs of the echoed tokens that start in ``[start, end)`` of the prompt's text.

    ``logprobs`` is the OpenAI completions ``logprobs`` object (``tokens``, ``token_logprobs``,
    ``text_offset``); with ``max_tokens`` 1, the generated token starts at ``end`` and is left out::

        continuation_logprob({"tokens": ["The", " capital", " is", " Paris", "."],
                              "token_logprobs": [None, -5.1, -0.7, -0.4, -1.2],
                              "text_offset": [0, 3, 11, 14, 20]}, 14, 20, url)   # -> -0.4
    """
    if not isinstance(logprobs, Mapping) or not isinstance(logprobs.get("token_logprobs"), list) \
            or not isinstance(logprobs.get("text_offset"), list):
        raise TunegateError(missing_logprobs(url))
    values = [lp for lp, offset in zip(logprobs["token_logprobs"], logprobs["text_offset"]) if start <= offset < end]
    if not values or any(v is None for v in values):
        raise TunegateError(f"{url}: no log-probability for the continuation's tokens (echo returned "
                            f"{len(logprobs['token_logprobs'])} tokens)")
    return float(sum(values))


def error_detail(exc: urllib.error.HTTPError) -> str:
    """The first line of an error answer's message (OpenAI style ``{"error": {"message": ...}}`` or ``detail``)."""
    try:
        raw = exc.read().decode(errors="replace")
    except OSError:
        return exc.reason or ""
    try:
        data = json.loads(raw)
        err = data.get("error", data.get("detail", raw)) if isinstance(data, Mapping) else raw
        text = err.get("message", json.dumps(err)) if isinstance(err, Mapping) else str(err)
    except ValueError:
        text = raw
    return (text.strip().splitlines() or [str(exc.reason)])[0][:300]


def parse_retry_after(value: str | None) -> float | None:
    try:
        return min(60.0, max(0.0, float(value))) if value else None
    except ValueError:
        return None


def backoff(attempt: int) -> float:
    """Seconds before retry ``attempt + 1``: 0.5, 1, 2, 4 ... capped at 30."""
    return min(30.0, 0.5 * 2 ** attempt)


def _reason(exc: BaseException | str) -> str:
    if isinstance(exc, BaseException):
        return getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    return str(exc)
