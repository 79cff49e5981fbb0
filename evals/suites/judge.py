"""``judge``: chat quality, the candidate's answers to open prompts judged pairwise against the baseline's.

Each prompt is answered by the evaluated model; with a baseline to judge against (the option ``reference``, a
RunRecord holding this suite, or the baseline the entry point hands over: the plugin's ``--gate-baseline``, a
pipeline stage's input record), a judge model (any backend: an OpenAI-compatible server in practice) compares the
two answers in both orders (``tunegate.evals.pairwise``), and the item scores the candidate's ``win_rate``.
Without one, the suite records the model's answers for a later candidate to be judged against, each item a tie
with itself (0.5). ``compare`` then measures the win rate against 50% with a paired CI, and a gate margin on
``judge.win_rate`` fails a candidate whose answers are judged worse::

    judge=(--suites judge --suite-option judge.judge_model=gpt-4o-mini --suite-option judge.judge_backend=openai
           --suite-option 'judge.judge_options={"base_url": "https://host/v1"}')
    tunegate eval BASE "${judge[@]}" --out base.json         # the same options both times; no judge runs here
    tunegate eval CAND "${judge[@]}" --suite-option judge.reference=base.json --out cand.json
    tunegate compare base.json cand.json --gate gate.yaml    # gate.yaml: metrics: {judge.win_rate: {margin: 0.05}}

One judged item (the judge's prompt and model are in the suite's config, both verdicts in the item)::

    ItemScore(item_id="judge-0003", prompt="Write a haiku about rain.", response="<the candidate's answer>",
              answer="win", scores={"win_rate": 0.75}, meta={"reference_response": "<the baseline's answer>",
              "verdicts": [{"first": "baseline", "verdict": "B", "judgment": "... [[B]]"},
                           {"first": "candidate", "verdict": "tie", "judgment": "... [[C]]"}], "judge": "..."})

Prompts: rows with ``prompt`` (a string, or a list of turns: the first is asked), ``turns`` (MT-Bench's
question.jsonl), ``instruction`` (AlpacaEval) or ``question``; the default source is MT-Bench's 80 prompts on the hub.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from tunegate.core.errors import SuiteError, TunegateError
from tunegate.evals.backends import BackendOptions, check_backend, load_backend
from tunegate.evals.pairwise import (JUDGE_SYSTEM, JUDGE_TEMPLATE, MARKS, PAIRWISE, TIE, VERDICTS, WIN_RATE,
                                     item_win_rate, likelihood_judgment, outcome, parse_verdict)
from tunegate.evals.records import EvalItem, ItemScore, MetricSpec, RunRecord
from tunegate.evals.requests import Calls, GenerationRequest, LoglikelihoodRequest
from tunegate.evals.suites._common import suite_rows
from tunegate.evals.suites.base import GenerationSettings, Suite, SuiteOptions, option, options_config

HUB_ID = "HuggingFaceH4/mt_bench_prompts"
VERDICT_MODES = ("generate", "likelihood")
#: Row fields a prompt is read from, in order (the first present).
PROMPT_FIELDS = ("prompt", "turns", "instruction", "question")


@dataclass(frozen=True)
class JudgeOptions(SuiteOptions):
    """Open prompts answered by the model; with a baseline to judge against, both answers judged pairwise."""

    source: str = option(HUB_ID, "open prompts: hub id, local .jsonl/.json file or folder; rows with prompt, turns, "
                                 "instruction or question")
    name: str | None = option(None, "the dataset's config name on the hub")
    split: str = option("train", "split to evaluate")
    system_prompt: str | None = option(None, "system turn before each prompt, for the evaluated model")
    max_new_tokens: int = option(256, "answer budget in tokens")
    reference: str | None = option(None, "RunRecord whose answers of this suite the candidate is judged against "
                                         "(default: the baseline the plugin or pipeline hands over; none: record "
                                         "the answers only, each item a tie)")
    judge_model: str | None = option(None, "the judge: model id, local checkpoint or served model name")
    judge_backend: str = option("hf", "the judge's backend: hf, vllm or openai")
    judge_options: BackendOptions = option(BackendOptions(), "the judge backend's options, as eval's backend flags "
                                                             "by field name, e.g. {\"base_url\": \"http://h/v1\"}")
    judge_max_new_tokens: int = option(512, "the judge's budget for its explanation and verdict")
    verdict: str = option("generate", "generate: the judge writes its explanation and verdict (MT-Bench's way); "
                                      "likelihood: the verdict mark of highest log-likelihood right after the "
                                      "judge's prompt (no explanation; a small local judge always gives one)")
    judge_system_prompt: str | None = option(None, "the judge's system turn (null: FastChat's MT-Bench pairwise "
                                                   "prompt pair-v2, verdict [[A]], [[B]] or [[C]]; the record keeps "
                                                   "the text)")
    judge_template: str | None = option(None, "the judge's user turn with {question}, {answer_a} and {answer_b} "
                                              "(null: pair-v2's)")

    def __post_init__(self) -> None:
        super().__post_init__()
        self._default("judge_system_prompt", JUDGE_SYSTEM)
        self._default("judge_template", JUDGE_TEMPLATE)
        if self.verdict not in VERDICT_MODES:
            raise SuiteError(f"option 'verdict' must be one of {', '.join(VERDICT_MODES)}, got {self.verdict!r}")
        try:
            check_backend(self.judge_backend, self.judge_options)
            self.judge_template.format(question="", answer_a="", answer_b="")
        except TunegateError as exc:
            raise SuiteError(f"option 'judge_options': {exc}") from None
        except (KeyError, IndexError, ValueError) as exc:
            raise SuiteError(f"option 'judge_template': takes {{question}}, {{answer_a}} and {{answer_b}} "
                             f"only ({exc!r})") from None


class JudgeSuite(Suite):
    """Chat quality: the candidate's answers against the baseline's, judged pairwise (both orders) by a model."""

    name = "judge"
    version = "1"
    kind = "custom"
    Options = JudgeOptions
    options: JudgeOptions

    def load_items(self) -> list[EvalItem]:
        o = self.options
        items = []
        for i, row in enumerate(suite_rows(self.name, o.source, split=o.split, name=o.name)):
            text = prompt_of(row, f"suite 'judge': {o.source} row {i}")
            system = ({"role": "system", "content": o.system_prompt},) if o.system_prompt else ()
            items.append(EvalItem(id=f"judge-{i:04d}", prompt=text,
                                  messages=system + ({"role": "user", "content": text},),
                                  group=str(row["category"]) if row.get("category") else None))
        return items

    def items(self) -> list[EvalItem]:
        """The items to run (``limit``'s subset), and the baseline's answer to each when there is a baseline:
        checked with the items, before any model loads."""
        items = super().items()
        if not hasattr(self, "_answers"):
            self._answers = self._reference_answers(items)
            if self._answers is not None and not self.options.judge_model:
                raise SuiteError("suite 'judge': option 'judge_model' is needed to judge against the baseline's "
                                 "answers (a model id, checkpoint or served model name)")
        return items

    def _reference_answers(self, items: Sequence[EvalItem]) -> dict[str, str] | None:
        """The baseline's answer to every item, or None (no baseline: record the answers only)."""
        where = f"suite 'judge': option 'reference' ({self.options.reference})" if self.options.reference \
            else "suite 'judge': the baseline record"
        record = RunRecord.load(self.options.reference) if self.options.reference else self.reference
        if record is None:
            return None
        if self.name not in record.suites:
            raise SuiteError(f"{where} has no suite '{self.name}' (it has {sorted(record.suites)}): evaluate the "
                             f"baseline with --suites {self.name} first")
        theirs = {s.item_id: s for s in record.suites[self.name].items}
        for item in items:
            if item.id not in theirs or theirs[item.id].prompt != item.prompt:
                raise SuiteError(f"{where}: item '{item.id}' is not the same prompt there; evaluate both models on "
                                 f"the same prompts (source, limit, subset_seed)")
        return {item.id: theirs[item.id].response for item in items}

    def run(self, calls: Calls) -> list[ItemScore]:
        items = self.items()
        answers = calls.answer(items, GenerationSettings(max_new_tokens=self.options.max_new_tokens), self.name)
        if self._answers is None:
            return [ItemScore(item_id=it.id, prompt=it.prompt, response=a, answer="tie", target=None,
                              scores={WIN_RATE: TIE}, group=it.group, meta={"reference": "self"})
                    for it, a in zip(items, answers)]
        judge = self._judge_backend(calls)
        try:
            chats = [self._judge_chat(it, pair) for it, a in zip(items, answers)
                     for pair in ((self._answers[it.id], a), (a, self._answers[it.id]))]
            judgments = self._judgments(chats, calls, judge)
        finally:
            if judge is not calls.backend and hasattr(judge, "close"):
                judge.close()
        return [self._judged(it, a, judgments[2 * k:2 * k + 2], judge.fingerprint)
                for k, (it, a) in enumerate(zip(items, answers))]

    def _judge_backend(self, calls: Calls) -> Any:
        """The judge: the evaluated model's own backend when the judge is that model on that backend with no options
        of its own (a model judging itself loads once), else a backend loaded for it."""
        o = self.options
        info = calls.backend.info() if hasattr(calls.backend, "info") else {}
        same = o.judge_model == calls.backend.name and info.get("backend") == o.judge_backend
        if same and not o.judge_options.given():
            return calls.backend
        return load_backend(str(o.judge_model), o.judge_backend, o.judge_options)

    def _judge_chat(self, item: EvalItem, pair: tuple[str, str]) -> tuple[dict[str, str], ...]:
        """The judge's chat for one order: ``pair`` is (assistant A's answer, assistant B's)."""
        o = self.options
        return ({"role": "system", "content": str(o.judge_system_prompt)},
                {"role": "user", "content": str(o.judge_template).format(question=item.prompt, answer_a=pair[0],
                                                                         answer_b=pair[1])})

    def _judgments(self, chats: Sequence[tuple[dict[str, str], ...]], calls: Calls, judge: Any) -> list[str]:
        """The judge's judgment of each chat: its generated text, or the verdict mark it finds most likely."""
        desc, owner = f"{self.name} (judge)", [k // 2 for k in range(len(chats))]
        contexts = [calls.render(chat, backend=judge) for chat in chats]
        if self.options.verdict == "generate":
            requests = [GenerationRequest(prompt=ctx, max_new_tokens=self.options.judge_max_new_tokens,
                                          messages=chat) for ctx, chat in zip(contexts, chats)]
            return calls.generate(requests, desc, backend=judge, item_of=owner)
        marks = [LoglikelihoodRequest(ctx, mark) for ctx in contexts for mark in MARKS]
        values = calls.loglikelihood(marks, desc, backend=judge, item_of=[k // (2 * len(MARKS))
                                                                          for k in range(len(marks))])
        return [likelihood_judgment(values[i:i + len(MARKS)]) for i in range(0, len(values), len(MARKS))]

    def _judged(self, item: EvalItem, answer: str, judgments: Sequence[str], judge: str) -> ItemScore:
        verdicts = [parse_verdict(j) for j in judgments]
        score = item_win_rate(verdicts)
        meta = {"reference_response": self._answers[item.id], "judge": judge,
                "verdicts": [{"first": first, "verdict": v, "judgment": j}
                             for first, v, j in zip(("baseline", "candidate"), verdicts, judgments)]}
        return ItemScore(item_id=item.id, prompt=item.prompt, response=answer, answer=outcome(score), target=None,
                         scores={WIN_RATE: score}, group=item.group, meta=meta)

    def metric_specs(self) -> Sequence[MetricSpec]:
        return (MetricSpec(WIN_RATE, binary=False),)

    def breakdowns(self, scores: Sequence[ItemScore]) -> dict[str, dict[str, float]]:
        """Shares of items won, tied and lost, and of the verdicts of each kind (``unparsed``: the judge gave none)."""
        n = max(len(scores), 1)
        outcomes = {k: sum(s.answer == k for s in scores) / n for k in ("win", "tie", "loss")}
        verdicts = [v["verdict"] for s in scores for v in s.meta.get("verdicts", ())]
        shares = {k: verdicts.count(k) / len(verdicts) for k in VERDICTS} if verdicts else {}
        return {"outcome": outcomes, **({"verdict": shares} if shares else {})}

    def config(self) -> dict[str, Any]:
        """The options, without ``reference`` (a path; the items keep the answers judged against), marked pairwise
        so that ``compare`` takes the baseline's side as a tie."""
        settings = {k: v for k, v in options_config(self.variant, self.options).items() if k != "reference"}
        return {**settings, PAIRWISE: True}


def prompt_of(row: Mapping[str, Any], where: str) -> str:
    """The prompt of one row: the first of ``PROMPT_FIELDS`` present (a list of turns: its first)."""
    for key in PROMPT_FIELDS:
        value = row.get(key)
        if isinstance(value, list) and value and isinstance(value[0], str):
            return value[0]
        if isinstance(value, str) and value.strip():
            return value
    raise SuiteError(f"{where}: no prompt (a non-empty string, or a list of turns, in one of "
                     f"{', '.join(PROMPT_FIELDS)})")
