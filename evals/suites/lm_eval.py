"""``lm-eval:TASK``: any lm-eval task or group by its lm-eval name, gated like any suite.

lm-eval builds each document's requests (its prompt, few-shot and chat-template handling) and scores the
answers with the task's own filters and metrics; tunegate runs the requests on its backends (response cache,
batching, shards, served engines) and records one item per document with its per-document scores, so compare,
the gate, the report and the store take it like any suite::

    tunegate eval MODEL --suites lm-eval:arc_easy,lm-eval:gsm8k --out r.json
    tunegate eval MODEL --suites lm-eval:my_task --lm-eval-include-path my_tasks/ --out r.json
    tunegate compare base.json r.json      # gate key: lm-eval:gsm8k.exact_match,strict-match

One item of ``lm-eval:gsm8k`` (id: task and doc_id)::

    ItemScore(item_id="gsm8k-00012", prompt="Question: ...\\nAnswer:", response=" She sells ... #### 18",
              answer="18", scores={"exact_match,strict-match": 1.0, "exact_match,flexible-extract": 1.0},
              group="gsm8k", meta={"task": "gsm8k", "doc_id": 12, "filtered": {...}})

Metric names are lm-eval's results keys without ``,none`` (``acc``, ``acc_norm``, ``exact_match,strict-match``).
Only metrics lm-eval averages over documents are per-item scores; corpus-level ones (f1, bleu, perplexity) are
left out and named in the suite's config. A group runs every task in it as the items of one suite, grouped by task
(metrics clustered by task, a breakdown per task): its metric is the mean over all documents, lm-eval's group
score with ``weight_by_size``. The task's version (its ``metadata.version``) is part of the suite's version, so
records made with different versions of a task do not compare.
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass
from typing import Any, ClassVar, Sequence

from tunegate.core.errors import SuiteError
from tunegate.evals.lm_eval_tasks import (ChatCapture, check_scorable, gen_settings, load_tasks, metric_key,
                                          per_item_metrics, quiet_lm_eval, score_documents)
from tunegate.evals.records import EvalItem, ItemScore, MetricSpec, MetricValue
from tunegate.evals.requests import Calls, GenerationRequest, LoglikelihoodRequest
from tunegate.evals.suites._common import mean_by
from tunegate.evals.suites.base import Suite, SuiteOptions, option, options_config

PREFIX = "lm-eval:"
#: tunegate's side of the suite (how documents become items and scores); the task's own version follows it.
ADAPTER_VERSION = "1"
#: lm-eval metrics that are 0/1 per document (McNemar applies).
BINARY = frozenset({"acc", "acc_norm", "acc_bytes", "acc_mutual_info", "exact_match"})


@dataclass(frozen=True)
class LmEvalOptions(SuiteOptions):
    """Any lm-eval task or group by name; lm-eval builds and scores the requests, tunegate's backend runs them."""

    include_path: str | None = option(None, "folder of task YAMLs found before lm-eval's own, as lm-eval's "
                                             "--include_path (tunegate's --lm-eval-include-path sets it for "
                                             "every lm-eval suite)")
    num_fewshot: int | None = option(None, "few-shot examples, as lm-eval's --num_fewshot (null: the task's own, "
                                           "else 0; a task that sets 0 keeps 0)")
    fewshot_seed: int = option(1234, "seed of the few-shot sampler, as lm-eval's --fewshot_random_seed")
    apply_chat_template: bool = option(False, "render prompts with the model's chat template, as lm-eval's "
                                              "--apply_chat_template")
    fewshot_as_multiturn: bool = option(True, "with the chat template: few-shot examples as earlier turns")
    system_instruction: str | None = option(None, "system prompt, as lm-eval's --system_instruction")
    max_gen_toks: int | None = option(None, "generation budget over the task's (lm-eval's --gen_kwargs "
                                            "max_gen_toks; its default 256)")
    until: tuple[str, ...] | None = option(None, "stop strings over the task's (lm-eval's --gen_kwargs until)")

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.num_fewshot is not None and self.num_fewshot < 0:
            raise SuiteError(f"option 'num_fewshot' must be 0 or more, got {self.num_fewshot}")


class LmEvalSuite(Suite):
    """An lm-eval task or group (``lm-eval:TASK``); ``for_name`` makes the suite class of one name."""

    name = PREFIX + "TASK"
    kind = "custom"
    Options = LmEvalOptions
    options: LmEvalOptions
    #: the lm-eval task, group or tag name
    task: ClassVar[str] = ""

    @classmethod
    def for_name(cls, name: str) -> type["LmEvalSuite"]:
        return _suite_class(name)

    def __init__(self, options: SuiteOptions | None = None, /, **fields: Any) -> None:
        super().__init__(options, **fields)
        self._tasks: dict[str, Any] = {}
        self._instances: dict[str, list[Any]] = {}  # item id -> its lm-eval Instances, in request order
        self._metrics: dict[str, list[str]] = {}  # task -> metrics scored per document
        self._left_out: dict[str, list[str]] = {}  # task -> corpus-level metrics
        self._capture = ChatCapture()

    @property
    def where(self) -> str:
        return f"suite '{self.name}'"

    # -- items: lm-eval's documents and requests, built before any model loads ---------------------
    def load_items(self) -> list[EvalItem]:
        self._tasks = load_tasks(self.task, self.options.include_path, self.where)
        return [item for name, task in self._tasks.items() for item in self._task_items(name, task)]

    def _task_items(self, name: str, task: Any) -> list[EvalItem]:
        check_scorable(task, self.where)
        self._metrics[name], self._left_out[name] = per_item_metrics(task)
        if not self._metrics[name]:
            raise SuiteError(f"{self.where}: task '{name}' has no metric averaged over documents (its metrics "
                             f"{self._left_out[name]} are corpus-level), so no per-item score to compare")
        self._build_requests(task)
        by_doc: dict[int, list[Any]] = {}
        for inst in task.instances:
            by_doc.setdefault(inst.doc_id, []).append(inst)
        items = []
        for doc_id, instances in sorted(by_doc.items()):
            instances.sort(key=lambda inst: inst.idx)
            item = self._item(f"{name}-{doc_id:05d}", name, task, instances)
            self._instances[item.id] = instances
            items.append(item)
        return items

    def _build_requests(self, task: Any) -> None:
        """``task.build_all_requests`` with the few-shot count and seed ``lm_eval.simple_evaluate`` sets."""
        o = self.options
        if o.num_fewshot is not None and task.get_config("num_fewshot") != 0:
            task.set_config(key="num_fewshot", value=o.num_fewshot)
        elif task.get_config("num_fewshot") is None:
            task.set_config(key="num_fewshot", value=0)
        task.set_fewshot_seed(seed=o.fewshot_seed)
        with quiet_lm_eval():
            task.build_all_requests(rank=0, world_size=1, system_instruction=o.system_instruction,
                                    apply_chat_template=o.apply_chat_template,
                                    fewshot_as_multiturn=o.fewshot_as_multiturn,
                                    chat_template=self._capture if o.apply_chat_template else None)

    def _item(self, item_id: str, name: str, task: Any, instances: list[Any]) -> EvalItem:
        first = instances[0]
        chat = self._capture.chat_of(first.args[0])
        likelihood = first.request_type == "loglikelihood"
        target = task.doc_to_target(first.doc)
        choices = task.doc_to_choice(first.doc) if task.config.doc_to_choice is not None else None
        if isinstance(target, int) and choices and 0 <= target < len(choices):
            target = choices[target]
        return EvalItem(id=item_id, prompt=chat.text if chat else first.args[0],
                        messages=chat.messages if chat else (), target=str(target),
                        choices=tuple(inst.args[1] for inst in instances) if likelihood else (),
                        group=name, meta={"task": name, "doc_id": first.doc_id})

    # -- run: the requests on tunegate's backend, the answers scored by lm-eval ---------------------
    def run(self, calls: Calls) -> list[ItemScore]:
        items = self.items()
        if self.options.apply_chat_template and calls.completion_mode:
            raise SuiteError(f"{self.where}: option 'apply_chat_template' needs the chat template, and the backend "
                             f"sends raw prompts (completion mode)")
        generate: list[tuple[int, Any, GenerationRequest]] = []
        likelihood: list[tuple[int, Any, LoglikelihoodRequest]] = []
        for k, item in enumerate(items):
            for inst in self._instances[item.id]:
                inst.resps, inst.filtered_resps = [], {}
                if inst.request_type == "generate_until":
                    generate.append((k, inst, self._generation(inst, calls)))
                else:
                    likelihood.append((k, inst, lm_eval_pair(self._context(inst.args[0], calls), inst.args[1])))
        if generate:
            texts = calls.generate([r for _, _, r in generate], self.name, item_of=[k for k, _, _ in generate])
            for (_, inst, _), text in zip(generate, texts):
                inst.resps.append(text)
        if likelihood:
            values = calls.loglikelihood([r for _, _, r in likelihood], self.name,
                                         item_of=[k for k, _, _ in likelihood])
            for (_, inst, _), value in zip(likelihood, values):
                inst.resps.append((value, False))  # is_greedy: no metric kept reads it (check_scorable)
        return self._score(items)

    def _context(self, context: str, calls: Calls) -> str:
        """A request's context: lm-eval's text, or its chat rendered with the evaluated model's template."""
        chat = self._capture.chat_of(context)
        if chat is None:
            return context
        if chat.add_generation_prompt:
            return calls.render(chat.messages)
        return calls.render(chat.messages[:-1]) + chat.messages[-1]["content"]  # the task's gen_prefix

    def _generation(self, inst: Any, calls: Calls) -> GenerationRequest:
        o = self.options
        settings = gen_settings(inst.args[1], f"{self.where}: task '{inst.task_name}'", max_gen_toks=o.max_gen_toks,
                                until=o.until)
        chat = self._capture.chat_of(inst.args[0])
        messages = chat.messages if chat is not None and chat.add_generation_prompt else ()
        return GenerationRequest(prompt=self._context(inst.args[0], calls), messages=messages, **settings)

    def _score(self, items: list[EvalItem]) -> list[ItemScore]:
        per_doc = {}
        for name, task in self._tasks.items():
            mine = [inst for item in items if item.group == name for inst in self._instances[item.id]]
            if mine:
                per_doc[name] = score_documents(task, mine, self._metrics[name])
        return [self._item_score(item, per_doc[item.group][item.meta["doc_id"]]) for item in items]

    def _item_score(self, item: EvalItem, scores: dict[str, float]) -> ItemScore:
        instances = self._instances[item.id]
        filtered = {k: str(v) for k, v in instances[0].filtered_resps.items()}
        if instances[0].request_type == "generate_until":
            response, answer, meta = str(instances[0].resps[0]), next(iter(filtered.values()), None), {}
        else:
            lls = [float(inst.resps[0][0]) for inst in instances]
            response = answer = item.choices[max(range(len(lls)), key=lambda i: (lls[i], -i))].strip()
            filtered, meta = {}, {"logprobs": lls}
        return ItemScore(item_id=item.id, prompt=item.prompt, response=response, answer=answer, target=item.target,
                         scores=scores, group=item.group, meta={**item.meta, "filtered": filtered, **meta})

    # -- metrics, breakdowns and the record's config -------------------------------------------------
    def metric_specs(self) -> Sequence[MetricSpec]:
        cluster = "group" if len(self._tasks) > 1 else None
        specs: dict[str, MetricSpec] = {}
        for name, task in self._tasks.items():
            better = task.higher_is_better()
            for ensemble in task._filters:
                for metric in self._metrics[name]:
                    key = metric_key(metric, ensemble.name)
                    specs.setdefault(key, MetricSpec(key, higher_is_better=bool(better.get(metric, True)),
                                                     binary=metric in BINARY, cluster=cluster))
        return list(specs.values())

    def metrics(self, scores: Sequence[ItemScore]) -> dict[str, MetricValue]:
        """Each metric's mean over the documents that have it; a metric named binary whose values are not all
        0/1 (a partial-credit exact_match) is compared as continuous."""
        from tunegate.evals.stats import metric_value

        out = {}
        for spec in self.metric_specs():
            values = [s.scores[spec.name] for s in scores if spec.name in s.scores]
            binary = spec.binary and all(v in (0.0, 1.0) for v in values)
            out[spec.name] = metric_value(dataclasses.replace(spec, binary=binary), scores)
        return out

    def breakdowns(self, scores: Sequence[ItemScore]) -> dict[str, dict[str, float]]:
        if len(self._tasks) < 2:
            return {}
        return {f"task ({spec.name})": mean_by(scores, spec.name) for spec in self.metric_specs()}

    def config(self) -> dict[str, Any]:
        """The options, and each task as lm-eval ran it: version, output type, few-shot count, corpus-level
        metrics left out."""
        self.items()
        tasks = {name: {"version": task.VERSION, "output_type": task.OUTPUT_TYPE,
                        "num_fewshot": task.get_config("num_fewshot"), "left_out": self._left_out.get(name, [])}
                 for name, task in self._tasks.items()}
        return {**options_config(self.variant, self.options), "tasks": tasks}

    @property  # type: ignore[override]
    def version(self) -> str:
        """tunegate's adapter version, then the tasks' own versions (``1/3.0``)."""
        self.items()
        return f"{ADAPTER_VERSION}/" + ",".join(sorted({str(t.VERSION) for t in self._tasks.values()}))


def lm_eval_pair(context: str, continuation: str) -> LoglikelihoodRequest:
    """A log-likelihood request split as lm-eval's HF backend splits it: all trailing whitespace of the context
    (a chat template's newline after ``assistant`` too) moves to the continuation."""
    kept = context.rstrip()
    return LoglikelihoodRequest(kept, context[len(kept):] + continuation)


@functools.lru_cache(maxsize=None)
def _suite_class(name: str) -> type[LmEvalSuite]:
    """The suite class of ``lm-eval:TASK``: one per name, so specs of the same name compare equal."""
    task = name[len(PREFIX):]
    if not name.startswith(PREFIX) or not task or any(c.isspace() for c in task):
        raise SuiteError(f"suite '{name}': expected {PREFIX}TASK, an lm-eval task, group or tag name")
    return type(f"LmEvalSuite[{task}]", (LmEvalSuite,), {"name": name, "task": task, "__module__": __name__})
