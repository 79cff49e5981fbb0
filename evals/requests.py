"""The batched model interface (lm-eval style): requests in, results out, in order.

A backend implements ``generate`` and ``loglikelihood`` over lists of requests
so it can sort, batch and cache them. Example::

    backend.generate([GenerationRequest(prompt="<|im_start|>user\\nWho are you?<|im_end|>\\n"
                                        "<|im_start|>assistant\\n", max_new_tokens=32)])
    # -> ["I am Tiny, a small assistant."]
    backend.loglikelihood([LoglikelihoodRequest(context="The capital of France is", continuation=" Paris")])
    # -> [-0.21]
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Protocol, Sequence


@dataclass(frozen=True)
class GenerationRequest:
    prompt: str  # fully rendered text (chat template applied where the suite is chat-mode)
    max_new_tokens: int = 128
    stop: tuple[str, ...] = ()
    do_sample: bool = False
    temperature: float = 0.0


@dataclass(frozen=True)
class LoglikelihoodRequest:
    context: str
    continuation: str


class Backend(Protocol):
    """What the runner needs from a model."""

    name: str

    @property
    def fingerprint(self) -> str: ...

    def has_chat_template(self) -> bool: ...

    def render(self, messages: Sequence[Mapping[str, str]]) -> str:
        """Apply the chat template with the generation prompt."""
        ...

    def generate(self, requests: Sequence[GenerationRequest]) -> list[str]: ...

    def loglikelihood(self, requests: Sequence[LoglikelihoodRequest]) -> list[float]: ...
