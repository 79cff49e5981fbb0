"""``tunegate score ... --record``: responses made elsewhere become a RunRecord that compares like an evaluated one.

An evaluated record's responses, written out as a responses file and scored, give the same items, scores and
metrics (``tunegate compare`` finds zero delta on the same item ids); the base organism's continuations fail
every IFEval instruction, so Google's real GPT-4 responses, scored into a record, show that non-trivial
verdicts too are the runner's (and give Google's published accuracies).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Mapping, Sequence

import pytest

from tunegate.cli import main
from tunegate.evals.compare import compare_records
from tunegate.evals.records import Comparison, RunRecord
from tunegate.evals.requests import GenerationRequest, LoglikelihoodRequest


@pytest.fixture(scope="module")
def evaluated(organism_dir: Path, shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """`tunegate eval` of the organism on 20 of its IFEval items and 12 GSM8K questions: (record, work dir)."""
    tmp = tmp_path_factory.mktemp("score_record")
    # without EOS in its generation config the base organism writes max_new_tokens of text (not an empty answer)
    model = Path(shutil.copytree(organism_dir, tmp / "organism"))
    generation = json.loads((model / "generation_config.json").read_text())
    (model / "generation_config.json").write_text(json.dumps({**generation, "eos_token_id": None}))
    record = tmp / "eval.json"
    assert main(["eval", str(model), "--suites", "ifeval,math", "--out", str(record), "--quiet", "--no-cache",
                 "--suite-option", "ifeval.variant=organism", "--suite-option", "ifeval.limit=20",
                 "--suite-option", f"math.source={shared_data / 'gsm8k' / 'test.jsonl'}",
                 "--suite-option", "math.limit=12", "--suite-option", "math.max_new_tokens=24"]) == 0
    return record, tmp


def _compare(baseline: Path, candidate: Path, out: Path) -> Comparison:
    # the evaluated record has both suites, a scored one only its own: the gate is told the other is left out
    gate = out.with_suffix(".gate.yaml")
    gate.write_text("missing_suite: warn\n")
    assert main(["compare", str(baseline), str(candidate), "--out", str(out), "--gate", str(gate)]) == 0
    return Comparison.load(out)


def test_scored_ifeval_responses_compare_with_their_evaluated_record_at_zero_delta(evaluated, capsys) -> None:
    from tunegate.evals.suites.ifeval import OrganismIFEvalSuite

    record_path, tmp = evaluated
    items = RunRecord.load(record_path).suites["ifeval"].items
    keys = {int(i.item_id.removeprefix("ifeval-")) for i in items}
    inputs = tmp / "ifeval_input.jsonl"  # the organism's IFEval rows (Google's format) of the evaluated items
    inputs.write_text("".join(json.dumps(r) + "\n" for r in OrganismIFEvalSuite().rows() if r["key"] in keys))
    responses = tmp / "ifeval_responses.jsonl"
    responses.write_text("".join(json.dumps({"prompt": i.prompt, "response": i.response}) + "\n" for i in items))
    scored = tmp / "ifeval_scored.json"
    assert main(["score", "ifeval", "--input-data", str(inputs), "--responses", str(responses),
                 "--record", str(scored), "--model", "organism-elsewhere"]) == 0
    record = RunRecord.load(scored)
    assert record.model == "organism-elsewhere"
    assert [i.to_dict() for i in record.suites["ifeval"].items] == [i.to_dict() for i in items]
    comparison = _compare(record_path, scored, tmp / "ifeval_cmp.json")
    assert [(m.metric, m.delta, m.n) for m in comparison.metrics if m.suite == "ifeval"] == [(m, 0.0, 20) for m in
                                                                     ("prompt_strict", "prompt_loose",
                                                                      "inst_strict", "inst_loose")]
    assert not comparison.flips


def test_scored_gsm8k_responses_compare_with_their_evaluated_record_at_zero_delta(evaluated, shared_data) -> None:
    record_path, tmp = evaluated
    items = RunRecord.load(record_path).suites["math"].items
    responses = tmp / "gsm8k_responses.jsonl"
    responses.write_text("".join(json.dumps({"id": i.item_id, "response": i.response}) + "\n" for i in items))
    scored = tmp / "gsm8k_scored.json"
    assert main(["score", "gsm8k", "--data", str(shared_data / "gsm8k" / "test.jsonl"),
                 "--responses", str(responses), "--record", str(scored)]) == 0
    record = RunRecord.load(scored)
    assert record.model == "gsm8k_responses"
    assert [i.to_dict() for i in record.suites["math"].items] == [i.to_dict() for i in items]
    comparison = _compare(record_path, scored, tmp / "gsm8k_cmp.json")
    assert {(m.metric, m.delta, m.n) for m in comparison.metrics if m.suite == "math"} == {
        (m, 0.0, 12) for m in ("exact_match", "flexible_match", "unparseable")}


def test_the_fingerprint_names_the_responses_by_content(evaluated, shared_data, tmp_path) -> None:
    record_path, _ = evaluated
    items = RunRecord.load(record_path).suites["math"].items
    data = shared_data / "gsm8k" / "test.jsonl"
    prints = []
    for name, last in (("a", items[-1].response), ("b", items[-1].response), ("c", items[-1].response + " 7")):
        responses = tmp_path / name / "responses.jsonl"
        responses.parent.mkdir()
        lines = [{"id": i.item_id, "response": i.response} for i in items[:-1]] + [{"id": items[-1].item_id,
                                                                                      "response": last}]
        responses.write_text("".join(json.dumps(row) + "\n" for row in lines))
        assert main(["score", "gsm8k", "--data", str(data), "--responses", str(responses),
                     "--record", str(tmp_path / f"{name}.json")]) == 0
        prints.append(RunRecord.load(tmp_path / f"{name}.json").fingerprint)
    assert prints[0] == prints[1] != prints[2]


class Replay:
    """A backend that answers each IFEval prompt with a response made elsewhere (Google's saved GPT-4 answers)."""

    name, fingerprint = "gpt4", "replay"

    def __init__(self, answers: Mapping[str, str]) -> None:
        self.answers = answers

    def has_chat_template(self) -> bool:
        return True

    def render(self, messages: Sequence[Mapping[str, str]]) -> str:
        return messages[-1]["content"]

    def generate(self, requests: Sequence[GenerationRequest]) -> list[str]:
        return [self.answers[r.prompt] for r in requests]

    def loglikelihood(self, requests: Sequence[LoglikelihoodRequest]) -> list[float]:
        raise NotImplementedError


def test_real_ifeval_responses_score_as_the_runner_scores_them(shared_data: Path, ifeval_responses: Path,
                                                               tmp_path: Path) -> None:
    from tunegate.evals.runner import evaluate
    from tunegate.evals.spec import eval_spec

    inputs, responses = shared_data / "ifeval" / "input_data.jsonl", ifeval_responses / "gpt4.jsonl"
    assert main(["score", "ifeval", "--input-data", str(inputs), "--responses", str(responses),
                 "--record", str(tmp_path / "gpt4.json")]) == 0
    scored = RunRecord.load(tmp_path / "gpt4.json")
    answers = {row["prompt"]: row["response"] for row in map(json.loads, responses.read_text().splitlines())}
    ran = evaluate(Replay(answers), eval_spec(["ifeval"], {"ifeval": {"source": str(inputs)}}, use_cache=False),
                   progress=False)
    assert [i.to_dict() for i in scored.suites["ifeval"].items] == [i.to_dict() for i in ran.suites["ifeval"].items]
    assert [(m.delta, m.n) for m in compare_records(ran, scored).metrics] == [(0.0, 541)] * 2 + [(0.0, 834)] * 2
    # Google's published GPT-4 accuracies: prompt strict/loose, instruction strict/loose
    assert [round(m.value, 4) for m in scored.suites["ifeval"].metrics.values()] == [0.7708, 0.7967, 0.8369, 0.8561]
