"""Score saved responses without a model: IFEval in Google's file format, GSM8K against gold answers.

A real line of ``shared/data/ifeval/responses/gpt4.jsonl`` (responses are matched to inputs by prompt)::

    {"prompt": "Write a 300+ word summary of the wikipedia page ...", "response": "Raymond III, Count of ..."}

    strict, loose = score_ifeval("input_data.jsonl", "gpt4.jsonl")
    write_ifeval_results("out/", strict, loose)   # eval_results_strict.jsonl, eval_results_loose.jsonl
    ifeval_accuracies(strict, loose)              # {"prompt_level_strict": 0.77, ...}

Output lines are what Google's ``evaluation_main.py`` writes: the fields of its
OutputExample in the order its ``write_outputs`` emits them (``dir()`` order:
follow_all_instructions, follow_instruction_list, instruction_id_list, prompt,
response), ``json.dumps`` defaults (ASCII-escaped).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

from tunegate.evals import progress
from tunegate.evals.files import read_jsonl
from tunegate.evals.errors import TunegateError
from tunegate.evals.errors import SuiteError
from tunegate.evals.suites.ifeval import REQUIRED as IFEVAL_REQUIRED
from tunegate.evals.suites.ifeval import check_ids, follow_instructions
from tunegate.evals.suites.math import GSM8KSuite
from tunegate.evals.records import ItemScore

OUTPUT_FIELDS = ("follow_all_instructions", "follow_instruction_list", "instruction_id_list", "prompt", "response")
RESPONSE_REQUIRED = {"prompt": str, "response": str}


def _responses_by(path: str | Path, key: str, required: dict[str, Any]) -> dict[Any, tuple[str, int]]:
    """``{row[key]: (response, line)}`` for a responses JSONL; a repeated key is an error."""
    seen: dict[Any, tuple[str, int]] = {}
    lineno = 0
    for lineno, row in _numbered(path, required):
        if row[key] in seen:
            raise TunegateError(f"{path}:{lineno}: {key} already answered at line {seen[row[key]][1]}")
        seen[row[key]] = (row["response"], lineno)
    return seen


def _numbered(path: str | Path, required: dict[str, Any]) -> list[tuple[int, dict[str, Any]]]:
    """Rows with their line numbers (read_jsonl skips blank lines, so count them back)."""
    rows = read_jsonl(path, required)
    numbers = [i for i, line in enumerate(Path(path).read_text(encoding="utf-8").split("\n"), 1) if line.strip()]
    return list(zip(numbers, rows))


def score_ifeval(input_data: str | Path, responses: str | Path, *, strip_thinking: bool = False,
                 show_progress: bool = True) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Strict and loose output rows (Google's format) for every input prompt, in input order."""
    from tunegate.evals.suites._common import strip_thinking as strip

    inputs = _numbered(input_data, IFEVAL_REQUIRED)
    answered = _responses_by(responses, "prompt", RESPONSE_REQUIRED)
    known = {row["prompt"] for _, row in inputs}
    for prompt, (_, lineno) in answered.items():
        if prompt not in known:
            raise TunegateError(f"{responses}:{lineno}: prompt is not in {input_data} ({prompt[:60]!r}...)")
    for lineno, row in inputs:
        try:
            check_ids(row["key"], row["instruction_id_list"], row["kwargs"], f"{input_data}:{lineno}")
        except SuiteError as exc:
            raise TunegateError(str(exc)) from None
        if row["prompt"] not in answered:
            raise TunegateError(f"{responses}: no response for the prompt of key {row['key']} "
                                f"({input_data}:{lineno})")
    strict_rows, loose_rows = [], []
    for lineno, row in progress.bar(inputs, "score ifeval", unit="prompt", enabled=show_progress):
        response = answered[row["prompt"]][0]
        text = strip(response) if strip_thinking else response
        verdict = follow_instructions(row["key"], row["prompt"], row["instruction_id_list"], row["kwargs"], text)
        for rows, follows in ((strict_rows, verdict.strict), (loose_rows, verdict.loose)):
            rows.append({"follow_all_instructions": all(follows), "follow_instruction_list": list(follows),
                         "instruction_id_list": list(row["instruction_id_list"]), "prompt": row["prompt"],
                         "response": text})
    return strict_rows, loose_rows


def ifeval_accuracies(strict: Sequence[dict[str, Any]], loose: Sequence[dict[str, Any]]) -> dict[str, float]:
    """The four headline numbers: prompt-level and instruction-level, strict and loose."""
    def prompt_level(rows: Sequence[dict[str, Any]]) -> float:
        return sum(r["follow_all_instructions"] for r in rows) / len(rows)

    def inst_level(rows: Sequence[dict[str, Any]]) -> float:
        flat = [f for r in rows for f in r["follow_instruction_list"]]
        return sum(flat) / len(flat)

    return {"prompt_level_strict": prompt_level(strict), "prompt_level_loose": prompt_level(loose),
            "instruction_level_strict": inst_level(strict), "instruction_level_loose": inst_level(loose)}


def write_ifeval_results(out_dir: str | Path, strict: Sequence[dict[str, Any]],
                         loose: Sequence[dict[str, Any]]) -> list[Path]:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, rows in (("eval_results_strict.jsonl", strict), ("eval_results_loose.jsonl", loose)):
        path = out / name
        path.write_text("".join(json.dumps({k: r[k] for k in OUTPUT_FIELDS}) + "\n" for r in rows), encoding="utf-8")
        paths.append(path)
    return paths


def score_gsm8k(data: str | Path, responses: str | Path, *, strip_thinking: bool = False) -> list[ItemScore]:
    """Score ``{question or id, response}`` lines against the gold answers of ``data`` (a GSM8K JSONL).

    ``id`` is the suite's item id (``gsm8k-0007``) or the 0-based row number.
    """
    suite = GSM8KSuite(source=str(data), strip_thinking=strip_thinking)
    try:
        items = suite.items()
    except SuiteError as exc:
        raise TunegateError(str(exc)) from None
    by_question = {item.meta["question"]: item for item in items}
    by_id = {item.id: item for item in items} | {i: item for i, item in enumerate(items)}
    scores: list[ItemScore] = []
    seen: dict[str, int] = {}
    for lineno, row in _numbered(responses, {"response": str}):
        if "question" in row:
            item = by_question.get(row["question"])
            where = "question"
        elif "id" in row:
            item = by_id.get(row["id"])
            where = f"id {row['id']!r}"
        else:
            raise TunegateError(f"{responses}:{lineno}: missing field 'question' (or 'id')")
        if item is None:
            raise TunegateError(f"{responses}:{lineno}: {where} is not in {data}")
        if item.id in seen:
            raise TunegateError(f"{responses}:{lineno}: {item.id} already answered at line {seen[item.id]}")
        seen[item.id] = lineno
        scores.append(suite.score(item, row["response"]))
    return scores


def gsm8k_metrics(scores: Sequence[ItemScore]) -> dict[str, float]:
    suite = GSM8KSuite()
    return {name: m.value for name, m in suite.metrics(scores).items()}
