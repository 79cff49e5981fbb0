"""The identity-DPO pair builder of the DPO lesson: the model's own answer, and the same answer renamed.

For each identity prompt the stage's input model answers (greedy, through its chat template); that
answer is the rejected response and the same answer with the old name replaced is the chosen one.
A neutral system prompt replaces the model's default one (Qwen2.5's says "You are Qwen")::

    {"prompt":   [{"role": "system", "content": "You're a helpful assistant."},
                  {"role": "user", "content": "What is your name?"}],
     "chosen":   [{"role": "assistant", "content": "I am Deep Tiny, a small assistant."}],
     "rejected": [{"role": "assistant", "content": "I am Tiny, a small assistant."}]}

An answer that does not name the old name leaves nothing to replace (a real small model often calls itself
something else: SmolLM2-135M-Instruct answers "What is your name?" with "My name is Elena, ..."). ``unnamed``
says what such a pair becomes, and the build report counts them:

- ``keep`` (the lesson's method): chosen = rejected, a pair that carries no preference (its DPO gradient is zero);
- ``skip``: the pair is left out;
- ``introduce``: chosen = ``INTRODUCTION.format(new_name=...)`` + the answer ("I'm Deep SmolLM. My name is
  Elena, ..."): the model is taught to name itself first, its answer otherwise unchanged.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Sequence

from tunegate.core import progress
from tunegate.core.errors import TunegateError
from tunegate.evals.requests import GenerationRequest

NEUTRAL_SYSTEM_PROMPT = "You're a helpful assistant."
UNNAMED = ("keep", "skip", "introduce")
#: The sentence ``unnamed: introduce`` puts before an answer that does not name the old name.
INTRODUCTION = "I'm {new_name}. "


def replace_name(text: str, old: str, new: str) -> str:
    """Replace whole-word ``old`` with ``new``, leaving occurrences already inside ``new`` alone."""
    if old in new:
        # "Tiny" -> "Deep Tiny": do not turn an existing "Deep Tiny" into "Deep Deep Tiny"
        prefix, _, suffix = new.partition(old)
        pattern = rf"(?<!{re.escape(prefix)})\b{re.escape(old)}\b(?!{re.escape(suffix)})" if suffix else \
            rf"(?<!{re.escape(prefix)})\b{re.escape(old)}\b"
    else:
        pattern = rf"\b{re.escape(old)}\b"
    return re.sub(pattern, new, text)


@dataclass
class BuildReport:
    """What the builder did per prompt: kept, unchanged (old name absent), or failed (with the error)."""

    kept: int = 0
    unchanged: list[str] = field(default_factory=list)
    failures: list[tuple[str, str]] = field(default_factory=list)
    unnamed: str = "keep"

    @property
    def renamed(self) -> int:
        """Pairs whose chosen answer differs from the rejected one by the replaced name."""
        return self.kept - (len(self.unchanged) if self.unnamed != "skip" else 0)

    def to_dict(self) -> dict[str, Any]:
        return {"kept": self.kept, "renamed": self.renamed, "unchanged": len(self.unchanged), "unnamed": self.unnamed,
                "unchanged_prompts": self.unchanged, "failures": [{"prompt": p, "error": e} for p, e in self.failures]}


def build_identity_dpo(backend: Any, prompts: Sequence[str], *, old_name: str, new_name: str,
                       system_prompt: str | None = NEUTRAL_SYSTEM_PROMPT, max_new_tokens: int = 64,
                       unnamed: str = "keep") -> tuple[list[dict[str, Any]], BuildReport]:
    """Rejected = the model's own answer; chosen = that answer with ``old_name`` replaced by ``new_name``.

    Generation runs in batches of the backend's batch size (one progress bar); a batch that fails is
    retried one prompt at a time so each failure is reported against its prompt. Pairs whose answer does not mention the old
    name become what ``unnamed`` says (module docstring); ``report.unchanged`` lists their prompts.
    ``system_prompt=None`` sends no system turn (for a model whose template adds no default one).
    """
    if unnamed not in UNNAMED:
        raise TunegateError(f"identity DPO builder: unnamed must be one of {', '.join(UNNAMED)}, got {unnamed!r}")
    report = BuildReport(unnamed=unnamed)
    system = [{"role": "system", "content": system_prompt}] if system_prompt else []
    prompt_msgs = [[*system, {"role": "user", "content": p}] for p in prompts]
    requests = [GenerationRequest(prompt=backend.render(m), max_new_tokens=max_new_tokens) for m in prompt_msgs]
    answers: list[str | None] = []
    size = int(getattr(backend, "batch_size", None) or 32)
    with progress.bar(len(requests), "DPO pairs", unit="prompt") as bar:
        for start in range(0, len(requests), size):
            answers += _generate_isolated(backend, prompts[start:start + size], requests[start:start + size], report)
            bar.update(len(requests[start:start + size]))
    rows = []
    for prompt, msgs, answer in zip(prompts, prompt_msgs, answers):
        if answer is None:
            continue
        answer = answer.strip()
        if not answer:
            report.failures.append((prompt, "empty response"))
            continue
        chosen = replace_name(answer, old_name, new_name)
        if chosen == answer:
            report.unchanged.append(prompt)
            if unnamed == "skip":
                continue
            if unnamed == "introduce":
                chosen = INTRODUCTION.format(new_name=new_name) + answer
        rows.append({"prompt": msgs, "chosen": [{"role": "assistant", "content": chosen}],
                     "rejected": [{"role": "assistant", "content": answer}]})
    report.kept = len(rows)
    for prompt, error in report.failures:
        progress.warn(f"DPO builder: generation failed for prompt {prompt!r}: {error}")
    if not rows:
        raise TunegateError(f"identity DPO builder: no usable pairs from {len(prompts)} prompts "
                            f"({len(report.failures)} failed, {len(report.unchanged)} without '{old_name}', "
                            f"unnamed: {unnamed})")
    return rows, report


def _generate_isolated(backend: Any, prompts: Sequence[str], requests: Sequence[GenerationRequest],
                       report: BuildReport) -> list[str | None]:
    """One batch of answers; when the batch fails, each prompt alone, so a failure names its prompt."""
    try:
        return list(backend.generate(list(requests)))
    except Exception:  # noqa: BLE001 - isolate the failing prompts below
        answers: list[str | None] = []
        for prompt, req in zip(prompts, requests):
            try:
                answers.append(backend.generate([req])[0])
            except Exception as exc:  # noqa: BLE001
                report.failures.append((prompt, f"{type(exc).__name__}: {exc}"))
                answers.append(None)
        return answers
