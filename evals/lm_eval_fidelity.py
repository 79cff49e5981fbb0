"""Run lm-eval's own tasks on exactly the items a tunegate suite sends, to check fidelity and speed.

tunegate's MMLU and GSM8K suites copy lm-eval's conventions (prompt, choices, stop strings,
extraction). This module builds lm-eval tasks on the fly over the same local rows, reusing
lm-eval's own task YAMLs through ``include`` (so its templates, not a copy of them, render
the prompts), runs ``lm_eval.simple_evaluate`` with its HF backend, and returns per-item
results keyed like tunegate's items. One generated MMLU task file::

    include: .../lm_eval/tasks/mmlu/default/_default_template_yaml
    task: tg_mmlu_astronomy
    dataset_path: json
    dataset_name: null
    dataset_kwargs: {data_files: {test: /tmp/x/mmlu/astronomy/test.jsonl, dev: .../dev.jsonl}}
    description: "The following are multiple choice questions (with answers) about astronomy.\\n\\n"

Used by ``tests/evals/test_lm_eval_agreement.py`` and ``bench/eval_speed.py``; lm-eval is imported
lazily, only when a run is asked for.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import yaml

from tunegate.core.files import read_jsonl


def lm_eval_tasks_dir() -> Path:
    import lm_eval

    return Path(lm_eval.__file__).resolve().parent / "tasks"


def _write_jsonl(path: Path, rows: Sequence[dict[str, Any]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


@dataclass(frozen=True)
class MirrorTask:
    """One lm-eval task written to disk and the tunegate item ids of its docs, in doc order."""

    name: str
    kind: str  # "mmlu" | "gsm8k"
    item_ids: tuple[str, ...]


def mmlu_subset(test_path: str | Path, subjects: Sequence[str], per_subject: int) -> list[dict[str, Any]]:
    """The first ``per_subject`` test rows of each subject, grouped by subject in the given order."""
    rows = read_jsonl(test_path)
    by_subject: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        by_subject[row["subject"]].append(row)
    missing = [s for s in subjects if s not in by_subject]
    if missing:
        raise ValueError(f"{test_path}: no rows for subject(s) {missing}")
    return [row for s in subjects for row in by_subject[s][:per_subject]]


def write_mmlu_tasks(task_dir: str | Path, rows: Sequence[dict[str, Any]],
                     dev_rows: Sequence[dict[str, Any]] = (), *, prefix: str = "tg_mmlu",
                     num_fewshot: int = 0) -> list[MirrorTask]:
    """One lm-eval multiple-choice task per subject over ``rows`` (tunegate's knowledge suite order).

    Item ids are tunegate's ``mmlu-{row index:05d}`` for the same rows given as the suite's source.
    """
    task_dir = Path(task_dir)
    template = lm_eval_tasks_dir() / "mmlu" / "default" / "_default_template_yaml"
    ids: dict[str, list[str]] = defaultdict(list)
    test: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for i, row in enumerate(rows):
        ids[row["subject"]].append(f"mmlu-{i:05d}")
        test[row["subject"]].append(row)
    dev: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in dev_rows:
        dev[row["subject"]].append(row)
    tasks = []
    for subject, subject_rows in test.items():
        data = task_dir / "data" / "mmlu" / subject
        files = {"test": str(_write_jsonl(data / "test.jsonl", subject_rows))}
        files["dev"] = str(_write_jsonl(data / "dev.jsonl", dev.get(subject) or subject_rows[:1]))
        name = f"{prefix}_{subject}"
        config = {
            "include": str(template), "task": name, "dataset_path": "json", "dataset_name": None,
            "dataset_kwargs": {"data_files": files, "cache_dir": str(task_dir / "hf_datasets")},
            "description": f"The following are multiple choice questions (with answers) about "
                           f"{' '.join(subject.split('_'))}.\n\n",
            "num_fewshot": num_fewshot,
        }
        (task_dir / f"{name}.yaml").write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
        tasks.append(MirrorTask(name=name, kind="mmlu", item_ids=tuple(ids[subject])))
    return tasks


def write_gsm8k_task(task_dir: str | Path, rows: Sequence[dict[str, Any]], *, name: str = "tg_gsm8k",
                     max_gen_toks: int = 256, until: Sequence[str] | None = None,
                     train_rows: Sequence[dict[str, Any]] = ()) -> MirrorTask:
    """lm-eval's own ``gsm8k`` task (zero-shot) over ``rows``; item ids are tunegate's ``gsm8k-{i:04d}``."""
    task_dir = Path(task_dir)
    data = task_dir / "data" / name
    files = {"test": str(_write_jsonl(data / "test.jsonl", rows)),
             "train": str(_write_jsonl(data / "train.jsonl", list(train_rows) or list(rows[:1])))}
    config: dict[str, Any] = {
        "include": str(lm_eval_tasks_dir() / "gsm8k" / "gsm8k.yaml"), "task": name, "tag": [],
        "dataset_path": "json", "dataset_name": None,
        "dataset_kwargs": {"data_files": files, "cache_dir": str(task_dir / "hf_datasets")},
        "num_fewshot": 0,
        # repetition_penalty 1.0: lm-eval's HF backend would otherwise apply the checkpoint's generation_config
        # (Qwen2.5-Instruct's 1.1) to its greedy decoding; tunegate's greedy is plain argmax
        "generation_kwargs": {"until": list(until or ("Question:", "</s>", "<|im_end|>")),
                              "do_sample": False, "temperature": 0.0, "max_gen_toks": max_gen_toks,
                              "repetition_penalty": 1.0},
    }
    (task_dir / f"{name}.yaml").write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return MirrorTask(name=name, kind="gsm8k", item_ids=tuple(f"gsm8k-{i:04d}" for i in range(len(rows))))


def lm_eval_max_new_tokens(model_dir: str | Path, default: int = 64) -> int:
    """The generation budget lm-eval's HF backend really uses for ``model_dir``.

    With transformers 5, lm-eval passes ``max_length`` (prompt + max_gen_toks) to ``generate`` while a
    ``max_new_tokens`` in the checkpoint's generation_config.json takes precedence ("Both max_new_tokens
    and max_length seem to have been set"), so lm-eval generates exactly that many tokens whatever the
    task's ``max_gen_toks``. Comparisons use that budget; ``default`` when the checkpoint sets none.
    """
    path = Path(model_dir) / "generation_config.json"
    value = json.loads(path.read_text()).get("max_new_tokens") if path.is_file() else None
    return int(value) if value else default


def run_lm_eval(model_dir: str | Path, tasks: Sequence[MirrorTask], task_dir: str | Path, *,
                batch_size: int | str = 32, dtype: str = "float32", device: str = "cpu") -> dict[str, Any]:
    """``lm_eval.simple_evaluate`` with its HF backend on the mirror tasks; per-item samples logged."""
    import lm_eval
    from lm_eval.tasks import TaskManager

    manager = TaskManager(include_path=str(task_dir), include_defaults=False)
    return lm_eval.simple_evaluate(
        model="hf", model_args=f"pretrained={model_dir},dtype={dtype},trust_remote_code=False",
        tasks=[t.name for t in tasks],
        device=device, batch_size=batch_size, task_manager=manager, log_samples=True,
        bootstrap_iters=0, verbosity="ERROR")


def per_item(results: dict[str, Any], tasks: Sequence[MirrorTask]) -> dict[str, dict[str, Any]]:
    """tunegate item id -> what lm-eval produced for it.

    MMLU: ``{"logprobs": [ll per choice], "choice": argmax}``; GSM8K: ``{"response": text after
    lm-eval's stop truncation, "strict": ..., "flexible": ...}``.
    """
    out: dict[str, dict[str, Any]] = {}
    for task in tasks:
        samples = results["samples"][task.name]
        if task.kind == "mmlu":
            for s in samples:
                lls = [float(r[0][0]) for r in s["resps"]]
                out[task.item_ids[s["doc_id"]]] = {
                    "logprobs": lls, "choice": max(range(len(lls)), key=lambda i: (lls[i], -i))}
        else:
            for s in samples:
                entry = out.setdefault(task.item_ids[s["doc_id"]], {"response": s["resps"][0][0]})
                key = "strict" if s.get("filter") == "strict-match" else "flexible"
                entry[key] = s["filtered_resps"][0]
    return out


DEFAULT_SUBJECTS = ("astronomy", "high_school_european_history", "abstract_algebra")


@dataclass(frozen=True)
class Mirror:
    """The same items as tunegate suites (over local subset files) and as lm-eval tasks."""

    suites: tuple[Any, ...]
    tasks: tuple[MirrorTask, ...]
    task_dir: Path


def build_mirror(workdir: str | Path, *, mmlu_test: str | Path, gsm8k_test: str | Path,
                 subjects: Sequence[str] = DEFAULT_SUBJECTS, per_subject: int = 20, gsm8k_n: int = 40,
                 max_new_tokens: int = 64) -> Mirror:
    """Subset files under ``workdir``, tunegate's knowledge (MMLU, 0-shot log-likelihood) and math (GSM8K
    zero-shot completion, lm-eval's stop strings) suites over them, and the matching lm-eval tasks.

    ``high_school_european_history`` prompts are longer than the organism's 512-token context, so
    lm-eval's left truncation is part of what is compared.
    """
    from tunegate.evals.suites.knowledge import MMLUSuite
    from tunegate.evals.suites.math import STOP, GSM8KSuite

    workdir = Path(workdir)
    mmlu_rows = mmlu_subset(mmlu_test, subjects, per_subject)
    gsm_rows = read_jsonl(gsm8k_test)[:gsm8k_n]
    _write_jsonl(workdir / "mmlu" / "test.jsonl", mmlu_rows)
    _write_jsonl(workdir / "gsm8k" / "test.jsonl", gsm_rows)
    suites = (MMLUSuite(source=str(workdir / "mmlu")),
              GSM8KSuite(source=str(workdir / "gsm8k"), fewshot=0, chat=False, max_new_tokens=max_new_tokens))
    task_dir = workdir / "lm_eval_tasks"
    tasks = write_mmlu_tasks(task_dir, mmlu_rows) + [
        write_gsm8k_task(task_dir, gsm_rows, max_gen_toks=max_new_tokens, until=STOP)]
    return Mirror(suites=suites, tasks=tuple(tasks), task_dir=task_dir)


def agreement(record: Any, reference: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Per-item agreement of a tunegate RunRecord with lm-eval's per-item results.

    knowledge: same argmax choice, and the largest absolute log-likelihood difference; math: the same
    response text (after the same stop truncation) and the same strict / flexible extractions.
    """
    out: dict[str, Any] = {}
    if "knowledge" in record.suites:
        items = record.suites["knowledge"].items
        diffs = [max(abs(a - b) for a, b in zip(s.meta["logprobs"], reference[s.item_id]["logprobs"]))
                 for s in items]
        out["knowledge"] = {
            "n": len(items),
            "same_choice": sum("ABCD".index(s.answer) == reference[s.item_id]["choice"] for s in items),
            "max_abs_logprob_diff": max(diffs),
            "differing": [s.item_id for s in items if "ABCD".index(s.answer) != reference[s.item_id]["choice"]],
        }
    if "math" in record.suites:
        items = record.suites["math"].items
        same = [s.response == reference[s.item_id]["response"] for s in items]
        out["math"] = {
            "n": len(items),
            "same_response": sum(same),
            "same_strict": sum(s.meta["strict"] == reference[s.item_id]["strict"] for s in items),
            "same_flexible": sum(s.meta["flexible"] == reference[s.item_id]["flexible"] for s in items),
            "differing": [s.item_id for s, ok in zip(items, same) if not ok],
        }
    return out
