"""The real configs' evaluation workloads, each as a tunegate suite and as the lm-eval task that asks the same items.

    ifeval  IFEval through the chat template at the configs' budget (1280 new tokens), the first ``n`` prompts
    gsm8k   GSM8K 5-shot with the shots as chat turns (lm-eval's --apply_chat_template --fewshot_as_multiturn),
            256 new tokens, lm-eval's stop strings, the first ``n`` test questions
    mmlu0   MMLU 0-shot by log-likelihood, the first ``per_subject`` test rows of each subject
    mmlu5   MMLU 5-shot (the subject's first five dev questions), likewise

The lm-eval tasks ``include`` lm-eval's own YAMLs (its templates and stop strings, not copies) over subset files, with
``repetition_penalty: 1.0`` beside greedy decoding: lm-eval's HF backend would otherwise apply the checkpoint's
generation_config (Qwen2.5-Instruct's 1.1), which tunegate's greedy decoding does not (``_tokens.GREEDY``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import yaml

from tunegate.core.files import read_jsonl
from tunegate.evals.lm_eval_fidelity import (MirrorTask, _write_jsonl, lm_eval_tasks_dir, mmlu_subset,
                                             write_mmlu_tasks)

SUBJECTS = ("astronomy", "abstract_algebra", "college_biology", "nutrition")


@dataclass(frozen=True)
class Workload:
    """One workload: tunegate's suite, lm-eval's tasks over the same items and how lm-eval is to be called."""

    name: str
    what: str  # e.g. "16 prompts x 1280 tokens"
    suite: Any
    tasks: tuple[MirrorTask, ...]
    chat: bool = False  # lm-eval's apply_chat_template
    multiturn: bool = False  # lm-eval's fewshot_as_multiturn
    kind: str = "generate"


def _greedy(**kwargs: Any) -> dict[str, Any]:
    return {"do_sample": False, "temperature": 0.0, "repetition_penalty": 1.0, **kwargs}


def _task(task_dir: Path, name: str, base: str, files: dict[str, Path], **config: Any) -> None:
    body = {"include": str(lm_eval_tasks_dir() / base), "task": name, "tag": [], "dataset_path": "json",
            "dataset_name": None,
            "dataset_kwargs": {"data_files": {k: str(v) for k, v in files.items()},
                               "cache_dir": str(task_dir / "hf_datasets")}, **config}
    task_dir.mkdir(parents=True, exist_ok=True)
    (task_dir / f"{name}.yaml").write_text(yaml.safe_dump(body, sort_keys=False), encoding="utf-8")


def ifeval(work: Path, data: Path, n: int, max_new_tokens: int) -> Workload:
    from tunegate.evals.suites.ifeval import IFEvalSuite

    rows = read_jsonl(data / "ifeval" / "input_data.jsonl")[:n]
    path = _write_jsonl(work / "ifeval" / "input_data.jsonl", rows)
    _task(work / "tasks", "tg_ifeval", "ifeval/ifeval.yaml", {"train": path},
          generation_kwargs=_greedy(until=[], max_gen_toks=max_new_tokens))
    return Workload("ifeval", f"{len(rows)} prompts x {max_new_tokens} tokens",
                    IFEvalSuite(source=str(path), max_new_tokens=max_new_tokens),
                    (MirrorTask("tg_ifeval", "ifeval", tuple(f"ifeval-{r['key']}" for r in rows)),), chat=True)


def gsm8k(work: Path, data: Path, n: int, max_new_tokens: int) -> Workload:
    from tunegate.evals.suites.math import STOP, GSM8KSuite

    rows = read_jsonl(data / "gsm8k" / "test.jsonl")[:n]
    test = _write_jsonl(work / "gsm8k" / "test.jsonl", rows)
    _write_jsonl(work / "gsm8k" / "train.jsonl", read_jsonl(data / "gsm8k" / "train.jsonl"))
    suite = GSM8KSuite(source=str(test.parent), fewshot=5, chat=True, max_new_tokens=max_new_tokens)
    # tunegate draws the shots once (seed 1234) for every item; lm-eval's default sampler draws again for each
    # question, so its task gets exactly those five, in that order, through its first_n sampler
    shots = _write_jsonl(work / "gsm8k_shots" / "train.jsonl", suite.fewshot_shots())
    _task(work / "tasks", "tg_gsm8k5", "gsm8k/gsm8k.yaml", {"test": test, "train": shots}, num_fewshot=5,
          fewshot_config={"sampler": "first_n"},
          generation_kwargs=_greedy(until=list(STOP), max_gen_toks=max_new_tokens))
    return Workload("gsm8k", f"{len(rows)} questions, 5 shots as chat turns, {max_new_tokens} tokens", suite,
                    (MirrorTask("tg_gsm8k5", "gsm8k", tuple(f"gsm8k-{i:04d}" for i in range(len(rows)))),),
                    chat=True, multiturn=True)


def mmlu(work: Path, data: Path, per_subject: int, shots: int, subjects: tuple[str, ...] = SUBJECTS) -> Workload:
    from tunegate.evals.suites.knowledge import MMLUSuite

    rows = mmlu_subset(data / "mmlu" / "test.jsonl", subjects, per_subject)
    folder = work / f"mmlu{shots}"
    _write_jsonl(folder / "test.jsonl", rows)
    dev = [r for r in read_jsonl(data / "mmlu" / "dev.jsonl") if r["subject"] in subjects]
    _write_jsonl(folder / "dev.jsonl", dev)
    tasks = write_mmlu_tasks(work / "tasks", rows, dev, prefix=f"tg_mmlu{shots}", num_fewshot=shots)
    return Workload(f"mmlu{shots}", f"{len(rows)} questions, {shots}-shot", MMLUSuite(source=str(folder),
                    fewshot=shots), tuple(tasks), kind="loglikelihood")


BUILDERS: dict[str, Callable[..., Workload]] = {
    "ifeval": lambda work, data, a: ifeval(work, data, a.ifeval_n, a.ifeval_tokens),
    "gsm8k": lambda work, data, a: gsm8k(work, data, a.gsm8k_n, a.gsm8k_tokens),
    "mmlu0": lambda work, data, a: mmlu(work, data, a.per_subject, 0),
    "mmlu5": lambda work, data, a: mmlu(work, data, a.mmlu5_per_subject, 5),
}


def run_lm_eval(model_dir: str, workload: Workload, task_dir: Path, *, batch_size: int) -> dict[str, Any]:
    """lm-eval's ``simple_evaluate`` with its HF backend (float32, CPU) on the workload's tasks, samples logged."""
    import lm_eval
    from lm_eval.tasks import TaskManager

    manager = TaskManager(include_path=str(task_dir), include_defaults=False)
    return lm_eval.simple_evaluate(
        model="hf", model_args=f"pretrained={model_dir},dtype=float32,trust_remote_code=False",
        tasks=[t.name for t in workload.tasks], device="cpu", batch_size=batch_size, task_manager=manager,
        log_samples=True, bootstrap_iters=0, verbosity="ERROR", apply_chat_template=workload.chat,
        fewshot_as_multiturn=workload.multiturn)


def responses(results: dict[str, Any], workload: Workload) -> dict[str, Any]:
    """Item id -> lm-eval's response text (generation) or per-choice log-likelihoods (MMLU)."""
    out: dict[str, Any] = {}
    for task in workload.tasks:
        for s in results["samples"][task.name]:
            item = task.item_ids[s["doc_id"]]
            out[item] = [float(r[0][0]) for r in s["resps"]] if workload.kind == "loglikelihood" else s["resps"][0][0]
    return out


def agreement(record: Any, workload: Workload, theirs: dict[str, Any]) -> dict[str, Any]:
    """Generation: items whose response text is the same (and the differing ids); MMLU: the same choice and the
    largest log-likelihood difference."""
    items = next(iter(record.suites.values())).items
    if workload.kind == "loglikelihood":
        def pick(v: list[float]) -> int:
            return max(range(len(v)), key=lambda i: (v[i], -i))
        same = sum(pick(list(s.meta["logprobs"])) == pick(theirs[s.item_id]) for s in items)
        diff = max(abs(a - b) for s in items for a, b in zip(s.meta["logprobs"], theirs[s.item_id]))
        return {"n": len(items), "same": same, "max_abs_logprob_diff": diff}
    differing = [s.item_id for s in items if s.response != theirs[s.item_id]]
    return {"n": len(items), "same": len(items) - len(differing), "differing": differing}
