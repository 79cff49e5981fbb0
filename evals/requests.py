"""The batched model interface (lm-eval style): requests in, results out, in order.

A backend implements ``generate`` and ``loglikelihood`` over lists of requests
so it can sort, batch and cache them. Example::

    backend.generate([GenerationRequest(prompt="<|im_start|>user\\nWho are you?<|im_end|>\\n"
                                        "<|im_start|>assistant\\n", max_new_tokens=32)])
    # -> ["I am Tiny, a small assistant."]
    backend.loglikelihood([LoglikelihoodRequest(context="The capital of France is", continuation=" Paris")])
    # -> [-0.21]
    backend.cache_identity()
    # -> {"backend": "hf", "model": "3f2a9c1b0d4e5f67", "dtype": "float32", "device": "cpu", ...}

Optional capabilities are further methods a backend may have; ``capability(backend, "token_ranks")``
returns the method or refuses in one line. ``token_ranks`` teacher-forces a continuation (another
model's response) and ranks each of its tokens under this model (Lin et al. 2023's token shift)::

    backend.token_ranks([TokenRankRequest(context="<|im_start|>user\nWho are you?<|im_end|>\n"
                                                  "<|im_start|>assistant\n", continuation="I am Tiny.",
                                          max_new_tokens=32)])
    # -> [TokenRanks(tokens=("I", " am", " Tiny", ".", "<|im_end|>"), ranks=(1, 1, 57, 2, 1),
    #                top=("I", " am", " a", ".", "<|im_end|>"))]
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping, Protocol, Sequence

from tunegate.core.errors import TunegateError


@dataclass(frozen=True)
class GenerationRequest:
    prompt: str  # fully rendered text (chat template applied where the suite is chat-mode)
    max_new_tokens: int = 128
    stop: tuple[str, ...] = ()
    do_sample: bool = False
    temperature: float = 0.0
    #: the chat the prompt was rendered from (empty for raw prompts): a server with a chat endpoint
    #: renders these itself (``openai`` backend), the in-process backends use ``prompt``
    messages: tuple[Mapping[str, str], ...] = ()


@dataclass(frozen=True)
class LoglikelihoodRequest:
    context: str
    continuation: str


@dataclass(frozen=True)
class TokenRankRequest:
    """Teacher-force ``continuation`` after ``context``; rank each of its tokens under the model.

    ``max_new_tokens`` is the budget the continuation was generated with: a continuation with fewer
    tokens stopped on its end-of-turn token, which is then ranked too (as its last position).
    """

    context: str
    continuation: str
    max_new_tokens: int | None = None


@dataclass(frozen=True)
class TokenRanks:
    """Per token of a continuation: its text, its rank under the model (1 = the model's greedy choice)
    and the model's own greedy token there."""

    tokens: tuple[str, ...]
    ranks: tuple[int, ...]
    top: tuple[str, ...]


def capability(backend: Any, name: str) -> Callable[..., Any]:
    """The optional method ``name`` of ``backend`` (e.g. ``token_ranks``), or one clear error."""
    method = getattr(backend, name, None)
    if not callable(method):
        raise TunegateError(f"backend '{getattr(backend, 'name', type(backend).__name__)}' "
                            f"({type(backend).__name__}) cannot do '{name}'; use the hf backend for it")
    return method


class Backend(Protocol):
    """What the runner needs from a model."""

    name: str

    @property
    def fingerprint(self) -> str: ...

    def cache_identity(self) -> dict[str, Any]:
        """Everything besides the request that changes a response (model content, dtype, device type,
        backend and library versions), JSON-serialisable; the response cache's key folds it in."""
        ...

    def has_chat_template(self) -> bool: ...

    def render(self, messages: Sequence[Mapping[str, str]]) -> str:
        """Apply the chat template with the generation prompt."""
        ...

    def generate(self, requests: Sequence[GenerationRequest]) -> list[str]: ...

    def loglikelihood(self, requests: Sequence[LoglikelihoodRequest]) -> list[float]: ...


class Calls(Protocol):
    """What a ``custom`` suite's ``run`` may ask of the runner (``tunegate.evals.runner.RunnerCalls``).

    Requests go through the response cache under the identity of the backend that answers them (the evaluated
    model's, or ``backend=`` another: a judge), in chunks, with a progress bar counting items (``item_of[i]``:
    the item request ``i`` belongs to)::

        texts = calls.generate([GenerationRequest(calls.render(messages), 64, messages=tuple(messages))], "chat")
        lls = calls.loglikelihood([LoglikelihoodRequest("Question: ...\nAnswer:", " Paris")], "arc", item_of=[0])
    """

    backend: Backend

    @property
    def completion_mode(self) -> bool: ...

    def render(self, messages: Sequence[Mapping[str, str]], backend: Backend | None = None) -> str: ...

    def generate(self, requests: Sequence[GenerationRequest], desc: str, *, item_of: Sequence[int] | None = None,
                 backend: Backend | None = None) -> list[str]: ...

    def loglikelihood(self, requests: Sequence[LoglikelihoodRequest], desc: str, *,
                      item_of: Sequence[int] | None = None, backend: Backend | None = None) -> list[float]: ...

    def answer(self, items: Sequence[Any], settings: Any, desc: str, *, chat: bool = True) -> list[str]:
        """Each EvalItem's response, as a generation suite asks it (GenerationSettings ``settings``)."""
        ...


def truncate_at_stop(text: str, stop: Sequence[str]) -> str:
    """Cut ``text`` at the first occurrence of any stop string (as lm-eval does)."""
    cut = len(text)
    for s in stop:
        k = text.find(s)
        if s and k != -1:
            cut = min(cut, k)
    return text[:cut]
