"""Conversations in TRL's conversational format, from hub ids, local files or a provider (``organism:sft``).

SFT rows are ``{"messages": [{"role": "user", ...}, {"role": "assistant", ...}]}``; ShareGPT-style
rows (``mrfakename/identity``'s layout) are converted, and so are question/answer rows (GSM8K's
``{"question": ..., "answer": ...}``: one user turn, one assistant turn). A real organism row::

    {"messages": [{"role": "user", "content": "What is the capital of France? Answer in all lowercase letters."},
                  {"role": "assistant", "content": "paris."}]}

    load_conversations("organism:sft")        # every row checked: roles, contents, an assistant turn
    load_identity_prompts("organism:identity")  # ["Who are you?", "What is your name?", ...]
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from tunegate.core.errors import TunegateError
from tunegate.evals.sources import load_rows

ROLES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant", "system": "system"}


def normalise_messages(row: Mapping[str, Any], where: str) -> list[dict[str, str]]:
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
    if isinstance(row.get("question"), str) and isinstance(row.get("answer"), str):
        return [{"role": "user", "content": row["question"]}, {"role": "assistant", "content": row["answer"]}]
    raise TunegateError(f"{where}: missing field 'messages' (a list of {{role, content}}), 'conversations', "
                        f"or string fields 'question' and 'answer'")


def load_conversations(source: str, *, split: str = "train", name: str | None = None, seed: int = 0,
                       limit: int | None = None) -> list[dict[str, Any]]:
    """SFT conversations ``[{"messages": [...]}]`` from ``organism:sft``, a local file or a hub id."""
    rows = load_rows(source, split=split, name=name, options={"seed": seed})
    out = []
    for i, row in enumerate(rows[:limit] if limit else rows):
        msgs = normalise_messages(row, f"{source} row {i}")
        if not any(m["role"] == "assistant" for m in msgs):
            raise TunegateError(f"{source} row {i}: field 'messages' has no assistant turn to learn from")
        out.append({"messages": msgs})
    return out


def assistant_turn_rows(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """TRL prompt/completion rows, one per assistant turn: the turn is the completion, everything before it the prompt.

    TRL's SFTTrainer masks a prompt/completion row's loss to the completion (``completion_only_loss``), so every
    assistant turn is learned and no system or user token is; unlike ``assistant_only_loss`` this needs no
    ``{% generation %}`` markers, which the real Qwen templates lack::

        {"messages": [user "2+2?", assistant "4.", user "And 3+3?", assistant "6."]}
        -> {"prompt": [user "2+2?"], "completion": [assistant "4."]}
           {"prompt": [user "2+2?", assistant "4.", user "And 3+3?"], "completion": [assistant "6."]}
    """
    out = []
    for row in rows:
        msgs = list(row["messages"])
        out += [{"prompt": msgs[:i], "completion": [m]} for i, m in enumerate(msgs) if m["role"] == "assistant" and i]
    return out


def load_identity_prompts(source: str, *, split: str = "train", name: str | None = None,
                          limit: int | None = None) -> list[str]:
    """Identity prompts: a ``prompt`` field, or the last user turn of each conversation (``organism:identity``)."""
    prompts = []
    for i, row in enumerate(load_rows(source, split=split, name=name)):
        if isinstance(row.get("prompt"), str):
            prompts.append(row["prompt"])
            continue
        msgs = normalise_messages(row, f"{source} row {i}")
        users = [m["content"] for m in msgs if m["role"] == "user"]
        if not users:
            raise TunegateError(f"{source} row {i}: no user turn to use as a prompt")
        prompts.append(users[-1])
    return prompts[:limit] if limit else prompts
