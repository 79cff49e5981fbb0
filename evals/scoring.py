"""Score saved responses without a model: IFEval in Google's file format, GSM8K against gold answers, and a RunRecord.

A real line of ``shared/data/ifeval/responses/gpt4.jsonl`` (responses are matched to inputs by prompt)::

    {"prompt": "Write a 300+ word summary of the wikipedia page ...", "response": "Raymond III, Count of ..."}

    scored = score_ifeval("input_data.jsonl", "gpt4.jsonl")
    strict, loose = google_rows(scored.scores)
    write_ifeval_results("out/", strict, loose)   # eval_results_strict.jsonl, eval_results_loose.jsonl
    ifeval_accuracies(strict, loose)              # {"prompt_level_strict": 0.77, ...}
    scored.record(model="gpt4").save("gpt4.json") # a RunRecord: compare, gate, report, store like any other

The suites score (``IFEvalSuite``, ``GSM8KSuite``), so a scored record has the items, scores and
metrics ``tunegate eval`` gives for the same responses (``ifeval-{key}``, ``gsm8k-{i:04d}``). Its
fingerprint names the responses by content: sha256 of the responses file, the input data and the
scorer (suite name, version and config, lm-eval's version).

Output lines are what Google's ``evaluation_main.py`` writes: the fields of its
OutputExample in the order its ``write_outputs`` emits them (``dir()`` order:
follow_all_instructions, follow_instruction_list, instruction_id_list, prompt,
response), ``json.dumps`` defaults (ASCII-escaped).
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from tunegate.core import progress
from tunegate.core.env import git_sha, library_versions
from tunegate.core.errors import SuiteError, TunegateError
from tunegate.core.files import numbered_jsonl, write_text_atomic
from tunegate.evals.records import ItemScore, RunRecord, SuiteResult
from tunegate.evals.suites.base import Suite
from tunegate.evals.suites.ifeval import REQUIRED as IFEVAL_REQUIRED
from tunegate.evals.suites.ifeval import IFEvalSuite, check_ids
from tunegate.evals.suites.math import GSM8KSuite

OUTPUT_FIELDS = ("follow_all_instructions", "follow_instruction_list", "instruction_id_list", "prompt", "response")
RESPONSE_REQUIRED = {"prompt": str, "response": str}


@dataclass(frozen=True)
class Scored:
    """Saved responses scored by a suite: the per-item scores (suite order) and where they came from."""

    suite: Suite
    scores: tuple[ItemScore, ...]
    inputs: Path
    responses: Path
    seconds: float = 0.0

    def fingerprint(self) -> str:
        """sha256 of the responses file, the input data and the scorer (suite, version, config, lm-eval)."""
        h = hashlib.sha256()
        for path in (self.responses, self.inputs):
            h.update(path.read_bytes())
            h.update(b"\0")
        scorer = {"suite": self.suite.name, "version": self.suite.version, "config": self.suite.config(),
                  "lm_eval": library_versions().get("lm_eval")}
        h.update(json.dumps(scorer, sort_keys=True, default=str).encode())
        return h.hexdigest()

    def record(self, model: str | None = None, stage: str | None = None) -> RunRecord:
        """A RunRecord of the scores; ``model`` defaults to the responses file's name without extension."""
        scores = list(self.scores)
        result = SuiteResult(suite=self.suite.name, version=self.suite.version, metrics=self.suite.metrics(scores),
                             items=self.scores, config=self.suite.config(),
                             breakdowns=self.suite.breakdowns(scores), seconds=round(self.seconds, 3))
        return RunRecord(
            model=model or self.responses.stem, fingerprint=self.fingerprint(), suites={self.suite.name: result},
            generation={"responses": str(self.responses)},
            env={"versions": library_versions(), "git_sha": git_sha()}, stage=stage,
            created=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"), seconds=round(self.seconds, 3))


def _responses_by(path: str | Path, key: str, required: dict[str, Any]) -> dict[Any, tuple[str, int]]:
    """``{row[key]: (response, line)}`` for a responses JSONL; a repeated key is an error."""
    seen: dict[Any, tuple[str, int]] = {}
    for lineno, row in numbered_jsonl(path, required):
        if row[key] in seen:
            raise TunegateError(f"{path}:{lineno}: {key} already answered at line {seen[row[key]][1]}")
        seen[row[key]] = (row["response"], lineno)
    return seen


def score_ifeval(input_data: str | Path, responses: str | Path, *, strip_thinking: bool = False,
                 show_progress: bool = True) -> Scored:
    """Every input prompt's response scored by the IFEval suite, in input order."""
    start = time.perf_counter()
    inputs = numbered_jsonl(input_data, IFEVAL_REQUIRED)
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
    suite = IFEvalSuite(source=str(input_data), strip_thinking=strip_thinking)
    items = progress.bar(suite.items(), "score ifeval", unit="prompt", enabled=show_progress)
    scores = tuple(suite.score(item, answered[item.prompt][0]).asking(item) for item in items)
    return Scored(suite, scores, Path(input_data), Path(responses), time.perf_counter() - start)


def google_rows(scores: Sequence[ItemScore]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Strict and loose output rows in Google's format, from IFEval item scores (the scored text as response)."""
    strict_rows, loose_rows = [], []
    for s in scores:
        text = s.answer if s.answer is not None else s.response  # the suite keeps the stripped text as answer
        for rows, follows in ((strict_rows, s.meta["follow_strict"]), (loose_rows, s.meta["follow_loose"])):
            rows.append({"follow_all_instructions": all(follows), "follow_instruction_list": list(follows),
                         "instruction_id_list": list(s.meta["instruction_id_list"]), "prompt": s.prompt,
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
    return [write_text_atomic(out / name, "".join(json.dumps({k: r[k] for k in OUTPUT_FIELDS}) + "\n" for r in rows))
            for name, rows in (("eval_results_strict.jsonl", strict), ("eval_results_loose.jsonl", loose))]


def score_gsm8k(data: str | Path, responses: str | Path, *, strip_thinking: bool = False) -> Scored:
    """Score ``{question or id, response}`` lines against the gold answers of ``data`` (a GSM8K JSONL).

    ``id`` is the suite's item id (``gsm8k-0007``) or the 0-based row number. The responses may
    answer any subset of the questions; the scores come in the data's order.
    """
    start = time.perf_counter()
    suite = GSM8KSuite(source=str(data), strip_thinking=strip_thinking)
    try:
        items = suite.items()
    except SuiteError as exc:
        raise TunegateError(str(exc)) from None
    by_question = {item.meta["question"]: item for item in items}
    by_id = {item.id: item for item in items} | {i: item for i, item in enumerate(items)}
    answers: dict[str, str] = {}
    seen: dict[str, int] = {}
    for lineno, row in numbered_jsonl(responses, {"response": str}):
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
        answers[item.id] = row["response"]
    scores = tuple(suite.score(item, answers[item.id]).asking(item) for item in items if item.id in answers)
    return Scored(suite, scores, Path(data), Path(responses), time.perf_counter() - start)
