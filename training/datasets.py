"""Training data in TRL's conversational formats, from hub ids, local files or the organism.

SFT rows are ``{"messages": [{"role": "user", ...}, {"role": "assistant", ...}]}``
(ShareGPT-style ``{"conversations": [{"from": "human", "value": ...}]}`` is converted).
The identity-DPO builder follows the DPO lesson: the model's own answer to an
identity prompt is the rejected response; the same answer with the old name
replaced is the chosen one; a neutral system prompt replaces the default one::

    {"prompt":   [{"role": "system", "content": "You're a helpful assistant."},
                  {"role": "user", "content": "What is your name?"}],
     "chosen":   [{"role": "assistant", "content": "I am Deep Tiny, a small assistant."}],
     "rejected": [{"role": "assistant", "content": "I am Tiny, a small assistant."}]}
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

from evals.data import load_rows
from evals.errors import TunegateError

NEUTRAL_SYSTEM_PROMPT = "You're a helpful assistant."
ROLES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant", "system": "system"}
ORGANISM_PREFIX = "organism:"


def _normalise_messages(row: Mapping[str, Any], where: str) -> list[dict[str, str]]:
    if "messages" in row:
        msgs = row["messages"]
        if not isinstance(msgs, list) or not msgs:
            raise TunegateError(f"{where}: field 'messages' must be a non-empty list of {{role, content}}")
        for j, m in enumerate(msgs):
            if not isinstance(m, Mapping) or not isinstance(m.get("role"), str) or not isinstance(m.get("content"), str):
                raise TunegateError(f"{where}: field 'messages[{j}]' must have string 'role' and 'content'")
            if m["role"] not in ("system", "user", "assistant", "tool"):
                raise TunegateError(f"{where}: field 'messages[{j}].role' is {m['role']!r}")
        return [{"role": m["role"], "content": m["content"]} for m in msgs]
    if "conversations" in row:
        out = []
        for j, m in enumerate(row["conversations"] or []):
            role = ROLES.get(str(m.get("from", m.get("role", ""))))
            text = m.get("value", m.get("content"))
            if role is None or not isinstance(text, str):
                raise TunegateError(f"{where}: field 'conversations[{j}]' needs 'from' (human/gpt/system) and 'value'")
            out.append({"role": role, "content": text})
        if out:
            return out
    raise TunegateError(f"{where}: missing field 'messages' (a list of {{role, content}}) or 'conversations'")


def load_conversations(source: str, *, split: str = "train", name: str | None = None, seed: int = 0,
                       limit: int | None = None) -> list[dict[str, Any]]:
    """SFT conversations ``[{"messages": [...]}]`` from ``organism:sft``, a local file or a hub id."""
    if source == f"{ORGANISM_PREFIX}sft":
        from training.organism.data import sft_conversations

        rows: list[dict[str, Any]] = sft_conversations(seed)
    elif source.startswith(ORGANISM_PREFIX):
        raise TunegateError(f"unknown organism dataset '{source}' (known: organism:sft, organism:identity)")
    else:
        rows = load_rows(source, split=split, name=name)
    out = []
    for i, row in enumerate(rows[:limit] if limit else rows):
        msgs = _normalise_messages(row, f"{source} row {i}")
        if not any(m["role"] == "assistant" for m in msgs):
            raise TunegateError(f"{source} row {i}: field 'messages' has no assistant turn to learn from")
        out.append({"messages": msgs})
    return out


def load_identity_prompts(source: str, *, split: str = "train", name: str | None = None,
                          limit: int | None = None) -> list[str]:
    """Identity prompts: ``organism:identity``, or the last user turn of each conversation / a ``prompt`` field."""
    if source == f"{ORGANISM_PREFIX}identity":
        from training.organism.data import identity_prompts

        prompts = identity_prompts()
    else:
        prompts = []
        for i, row in enumerate(load_rows(source, split=split, name=name)):
            if isinstance(row.get("prompt"), str):
                prompts.append(row["prompt"])
                continue
            msgs = _normalise_messages(row, f"{source} row {i}")
            users = [m["content"] for m in msgs if m["role"] == "user"]
            if not users:
                raise TunegateError(f"{source} row {i}: no user turn to use as a prompt")
            prompts.append(users[-1])
    return prompts[:limit] if limit else prompts


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

    def to_dict(self) -> dict[str, Any]:
        return {"kept": self.kept, "unchanged": len(self.unchanged), "unchanged_prompts": self.unchanged,
                "failures": [{"prompt": p, "error": e} for p, e in self.failures]}


def build_identity_dpo(backend: Any, prompts: Sequence[str], *, old_name: str, new_name: str,
                       system_prompt: str | None = NEUTRAL_SYSTEM_PROMPT, max_new_tokens: int = 64,
                       drop_unchanged: bool = False) -> tuple[list[dict[str, Any]], BuildReport]:
    """Rejected = the model's own answer; chosen = that answer with ``old_name`` replaced by ``new_name``.

    Generation runs in batches through the backend; a batch that fails is retried one prompt at a
    time so each failure is reported against its prompt. Pairs whose answer does not mention the old
    name are kept as in the lesson (they carry no preference signal) unless ``drop_unchanged``.
    ``system_prompt=None`` sends no system turn (for a model whose template adds no default one).
    """
    from evals.requests import GenerationRequest

    report = BuildReport()
    system = [{"role": "system", "content": system_prompt}] if system_prompt else []
    prompt_msgs = [[*system, {"role": "user", "content": p}] for p in prompts]
    requests = [GenerationRequest(prompt=backend.render(m), max_new_tokens=max_new_tokens) for m in prompt_msgs]
    try:
        answers: list[str | None] = list(backend.generate(requests))
    except Exception:  # noqa: BLE001 - isolate the failing prompts below
        answers = []
        for prompt, req in zip(prompts, requests):
            try:
                answers.append(backend.generate([req])[0])
            except Exception as exc:  # noqa: BLE001
                report.failures.append((prompt, f"{type(exc).__name__}: {exc}"))
                answers.append(None)
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
            if drop_unchanged:
                continue
        rows.append({"prompt": msgs, "chosen": [{"role": "assistant", "content": chosen}],
                     "rejected": [{"role": "assistant", "content": answer}]})
    report.kept = len(rows)
    for prompt, error in report.failures:
        print(f"[tunegate] DPO builder: generation failed for prompt {prompt!r}: {error}", file=sys.stderr)
    if not rows:
        raise TunegateError(f"identity DPO builder: no usable pairs from {len(prompts)} prompts "
                            f"({len(report.failures)} failed, {len(report.unchanged)} without '{old_name}')")
    return rows, report
