"""lm-eval's tasks as tunegate sees them: loaded by name, their requests built by lm-eval, their results scored by it.

lm-eval (``lm_eval.tasks.TaskManager``) finds a task or group by name in its own task folder and in
``include_path`` (lm-eval's ``--include_path``), loads its dataset, and builds each document's requests with
its prompt, few-shot and chat-template handling (``Task.build_all_requests``). tunegate sends those requests
to its own backends (cache, batching, served engines) and hands the answers back to the task: its filters
(``apply_filters``) and its ``process_results`` score each document, as ``lm_eval.evaluator.evaluate`` does.
One document of a task given as local YAML (``dataset_path: json``)::

    task: tiny_gsm8k
    dataset_path: json
    dataset_kwargs: {data_files: {test: gsm8k/test.jsonl}}
    doc_to_text: "Question: {{question}}\\nAnswer:"        # the request: ("Question: ...\\nAnswer:", {until: ...})
    filter_list: [{name: strict-match, filter: [{function: regex, regex_pattern: "#### (\\\\-?[0-9\\\\.\\\\,]+)"}, ...]}]
    # -> scores {"exact_match,strict-match": 1.0, ...} for that document

With the chat template, lm-eval renders each context through a callable; here that callable records the chat and
returns a placeholder (``ChatCapture``), and the runner renders the chat with the evaluated model's template, so a
served model gets the messages themselves. lm-eval is imported only when a task is loaded.
"""

from __future__ import annotations

import contextlib
import difflib
import functools
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

from tunegate.core.errors import SuiteError

#: lm-eval's HF backend's generation budget when a task sets no ``max_gen_toks``.
DEFAULT_MAX_GEN_TOKS = 256
#: Generation settings a tunegate backend takes (the rest must be their neutral values).
NEUTRAL_GEN_KWARGS = {"top_p": 1.0, "top_k": None, "repetition_penalty": 1.0, "num_beams": 1}


@functools.lru_cache(maxsize=4)
def task_manager(include_path: str | None, include_defaults: bool = True) -> Any:
    """lm-eval's TaskManager over its own tasks (``include_defaults``) and ``include_path``; indexed once per
    process (indexing lm-eval's ~15,000 task names takes seconds)."""
    from lm_eval.tasks import TaskManager

    with quiet_lm_eval():
        return TaskManager(include_path=include_path, include_defaults=include_defaults)


def load_tasks(name: str, include_path: str | None, where: str) -> dict[str, Any]:
    """The leaf tasks of the lm-eval task, group or tag ``name``, by task name, in lm-eval's order.

    Names defined in ``include_path`` load from an index of that folder alone (lm-eval's own ~15,000 are indexed
    only when needed: a name, or a group member, that the folder does not define); the include path wins over
    lm-eval's own tasks either way, as with lm-eval's ``--include_path``.
    """
    if include_path is not None and not Path(include_path).is_dir():
        raise SuiteError(f"{where}: option 'include_path': {include_path} is not a folder of task YAMLs")
    if include_path is not None and name in task_manager(include_path, False).all_tasks:
        try:
            return _load(task_manager(include_path, False), name, where)
        except KeyError:  # a member the folder does not define: look in lm-eval's own tasks too
            pass
    manager = task_manager(include_path)
    if name not in manager.all_tasks:
        close = difflib.get_close_matches(name, manager.all_tasks, n=3)
        raise SuiteError(f"{where}: no lm-eval task, group or tag '{name}'"
                         + (f" (did you mean {', '.join(close)}?)" if close else "")
                         + ("" if include_path else "; tasks of your own: --lm-eval-include-path DIR"))
    return _load(manager, name, where)


def _load(manager: Any, name: str, where: str) -> dict[str, Any]:
    try:
        with quiet_lm_eval():
            return dict(manager.load([name])["tasks"])
    except KeyError:
        raise
    except Exception as exc:  # noqa: BLE001 - datasets and lm-eval raise many kinds; each is one line here
        raise SuiteError(f"{where}: {load_error(exc)}") from None


def load_error(exc: BaseException) -> str:
    """One line for a task that failed to load: the task, and for a dataset the hub cannot give, what to download."""
    config = _failing_task_config(exc)
    task = f"lm-eval task '{config.task}'" if config is not None else "lm-eval"
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    offline = isinstance(exc, ConnectionError) or "offline" in text.lower() or "couldn't reach" in text.lower()
    if config is None or not offline:
        return f"{task}: {text}"
    dataset = f"'{config.dataset_path}'" + (f" (config '{config.dataset_name}')" if config.dataset_name else "")
    return (f"{task}: dataset {dataset} is not cached and the hub is unreachable: where there is network, run "
            f"`huggingface-cli download --repo-type dataset {config.dataset_path} --local-dir DIR` and give the task "
            f"dataset_path: DIR in a task YAML of --lm-eval-include-path (or load the task once there, to fill the "
            f"HF cache)")


def _failing_task_config(exc: BaseException) -> Any:
    """The config of the lm-eval task whose construction raised ``exc`` (from the traceback), or None."""
    from lm_eval.api.task import Task

    found, tb = None, exc.__traceback__
    while tb is not None:
        owner = tb.tb_frame.f_locals.get("self")
        if isinstance(owner, Task) and getattr(owner, "_config", None) is not None:
            found = owner._config
        tb = tb.tb_next
    return found


@contextlib.contextmanager
def quiet_lm_eval() -> Iterator[None]:
    """lm-eval's INFO/WARNING logs and its per-task "Building contexts" bar are off while it loads and builds
    (tunegate shows its own progress); its errors still show."""
    import lm_eval.api.task as api_task

    logger = logging.getLogger("lm_eval")
    level, bar = logger.level, getattr(api_task, "tqdm", None)
    logger.setLevel(logging.ERROR)
    if bar is not None:
        api_task.tqdm = lambda iterable, **_: iterable
    try:
        yield
    finally:
        logger.setLevel(level)
        if bar is not None:
            api_task.tqdm = bar


@dataclass(frozen=True)
class Chat:
    """A context lm-eval rendered through the chat template: the messages, and whether the model's turn is
    opened (``add_generation_prompt``) or continues the last message (a task's ``gen_prefix``)."""

    messages: tuple[Mapping[str, str], ...]
    add_generation_prompt: bool = True

    @property
    def text(self) -> str:
        """The chat as plain text, for the record's prompt."""
        return "\n\n".join(f"[{m['role']}] {m['content']}" for m in self.messages)


class ChatCapture:
    """The ``chat_template`` callable lm-eval renders chat contexts with: it keeps each chat and returns a
    placeholder that ``chat_of`` resolves (the runner renders it with the evaluated model's template)."""

    def __init__(self) -> None:
        self.chats: dict[str, Chat] = {}

    def __call__(self, messages: Sequence[Mapping[str, str]], add_generation_prompt: bool = True) -> str:
        key = f"\x00tunegate-chat-{len(self.chats)}\x00"
        self.chats[key] = Chat(tuple(dict(m) for m in messages), add_generation_prompt)
        return key

    def chat_of(self, context: str) -> Chat | None:
        return self.chats.get(context)


def gen_settings(kwargs: Mapping[str, Any], where: str, *, max_gen_toks: int | None = None,
                 until: Sequence[str] | None = None) -> dict[str, Any]:
    """A generate_until request's ``generation_kwargs`` as GenerationRequest fields, as lm-eval's HF backend reads
    them (``until`` stop strings, ``max_gen_toks`` default 256, greedy unless ``do_sample``); ``max_gen_toks`` and
    ``until`` override the task's (lm-eval's --gen_kwargs). A setting tunegate's backends do not take is an error."""
    kw = dict(kwargs)
    task_until = kw.pop("until", None)
    stop = list(until) if until is not None else task_until
    stop = [stop] if isinstance(stop, str) else list(stop or ())
    budget = kw.pop("max_gen_toks", DEFAULT_MAX_GEN_TOKS)
    do_sample = bool(kw.pop("do_sample", False))
    temperature = float(kw.pop("temperature", 0.0) or 0.0)
    for key, value in kw.items():
        if key not in NEUTRAL_GEN_KWARGS or value != NEUTRAL_GEN_KWARGS[key]:
            raise SuiteError(f"{where}: generation_kwargs '{key}: {value}' is not supported by tunegate's backends "
                             f"(they take until, max_gen_toks, do_sample and temperature)")
    return {"max_new_tokens": int(max_gen_toks or budget), "stop": tuple(stop), "do_sample": do_sample,
            "temperature": temperature if do_sample else 0.0}


def check_scorable(task: Any, where: str) -> None:
    """Refuse, before any model loads, a task whose scores need what tunegate's backends do not return:
    rolling log-likelihoods (perplexity) or the greedy flag of a log-likelihood (``acc`` of a loglikelihood
    task, ``exact_match`` of a multiple-choice one)."""
    kind, metrics = task.OUTPUT_TYPE, set(task._metric_fn_list)
    need = {"loglikelihood": {"acc"}, "multiple_choice": {"exact_match"}}.get(kind, set()) & metrics
    if kind == "loglikelihood_rolling":
        raise SuiteError(f"{where}: task '{task.task_name}' is a perplexity task (loglikelihood_rolling): its "
                         f"metrics are corpus-level, not per item")
    if need:
        raise SuiteError(f"{where}: task '{task.task_name}' metric {sorted(need)} needs lm-eval's is_greedy flag, "
                         f"which tunegate's backends do not return")


def per_item_metrics(task: Any) -> tuple[list[str], list[str]]:
    """(metrics averaged over documents: per-item scores; the others, aggregated over the corpus: left out)."""
    from lm_eval.api.metrics import mean

    aggregation = task.aggregation()
    kept = [m for m in aggregation if aggregation[m] is mean]
    return kept, [m for m in aggregation if aggregation[m] is not mean]


def metric_key(metric: str, filter_name: str) -> str:
    """A per-item score's name: lm-eval's results key (``exact_match,strict-match``) without its ``,none``."""
    return metric if filter_name == "none" else f"{metric},{filter_name}"


def score_documents(task: Any, instances: Sequence[Any], metrics: Sequence[str]) -> dict[int, dict[str, float]]:
    """Each document's scores, as lm-eval's ``evaluate`` computes them: the task's filters over these instances
    (``resps`` filled), then ``process_results`` per document and filter; ``metrics`` are kept (numbers only)."""
    by_doc: dict[int, list[Any]] = {}
    for inst in instances:
        by_doc.setdefault(inst.doc_id, []).append(inst)
    for ensemble in task._filters:
        ensemble.apply(list(instances))
    out: dict[int, dict[str, float]] = {}
    for doc_id, group in by_doc.items():
        group.sort(key=lambda x: x.idx)
        scores: dict[str, float] = {}
        for filter_name in group[0].filtered_resps:
            values = task.process_results(group[0].doc, [inst.filtered_resps[filter_name] for inst in group])
            for metric, value in values.items():
                if metric in metrics and isinstance(value, (int, float)):
                    scores[metric_key(metric, filter_name)] = float(value)
        out[doc_id] = scores
    return out
