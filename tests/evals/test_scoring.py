"""`tunegate score`: Google-format IFEval result files, GSM8K against gold answers, bad input exits 2."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tunegate.cli import main
from tunegate.evals.scoring import OUTPUT_FIELDS, score_gsm8k

MODEL = "qwen2.5-0.5b-instruct-gptq-int4"


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def ifeval_args(shared_data: Path, responses: Path, out: Path) -> list[str]:
    return ["score", "ifeval", "--input-data", str(shared_data / "ifeval" / "input_data.jsonl"),
            "--responses", str(responses), "--out", str(out)]


@pytest.fixture(scope="module")
def gpt4_run(shared_data: Path, ifeval_responses: Path,
             tmp_path_factory: pytest.TempPathFactory) -> tuple[int, str, Path]:
    out = tmp_path_factory.mktemp("gpt4")
    responses = ifeval_responses / "gpt4.jsonl"
    code = main(ifeval_args(shared_data, responses, out))
    return code, "", out


def test_score_ifeval_writes_google_format(gpt4_run: tuple[int, str, Path]) -> None:
    code, _, out = gpt4_run
    strict = [json.loads(x) for x in (out / "eval_results_strict.jsonl").read_text().splitlines()]
    loose = [json.loads(x) for x in (out / "eval_results_loose.jsonl").read_text().splitlines()]
    assert code == 0 and len(strict) == len(loose) == 541 and tuple(strict[0]) == OUTPUT_FIELDS
    assert all(s["follow_all_instructions"] == all(s["follow_instruction_list"]) for s in strict)
    assert all(a <= b for s, x in zip(strict, loose)
               for a, b in zip(s["follow_instruction_list"], x["follow_instruction_list"]))
    first = (out / "eval_results_strict.jsonl").read_text().splitlines()[0]
    assert first == json.dumps(strict[0])  # json.dumps defaults, as Google's write_outputs


def test_score_ifeval_prints_the_four_accuracies(shared_data: Path, ifeval_responses: Path, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    from tunegate.evals.scoring import ifeval_accuracies

    # GPT-4 (Nov 2023), Google's archived responses; the paper reports about 0.77 / 0.79 / 0.84 / 0.85.
    responses = ifeval_responses / "gpt4.jsonl"
    lines = responses.read_text().splitlines()
    tiny = tmp_path / "three.jsonl"
    tiny.write_text("\n".join(lines[:3]) + "\n")
    inputs = tmp_path / "input.jsonl"
    inputs.write_text("\n".join((shared_data / "ifeval" / "input_data.jsonl").read_text().splitlines()[:3]) + "\n")
    code, out, _ = run(["score", "ifeval", "--input-data", str(inputs), "--responses", str(tiny),
                        "--out", str(tmp_path / "out")], capsys)
    strict = [json.loads(x) for x in (tmp_path / "out" / "eval_results_strict.jsonl").read_text().splitlines()]
    loose = [json.loads(x) for x in (tmp_path / "out" / "eval_results_loose.jsonl").read_text().splitlines()]
    expected = [f"{v:.4f}" for v in ifeval_accuracies(strict, loose).values()]
    assert code == 0 and [line.split()[-1] for line in out.splitlines()[:4]] == expected


def test_gpt4_accuracies_match_google_figures(gpt4_run: tuple[int, str, Path]) -> None:
    from tunegate.evals.scoring import ifeval_accuracies

    out = gpt4_run[2]
    strict = [json.loads(x) for x in (out / "eval_results_strict.jsonl").read_text().splitlines()]
    loose = [json.loads(x) for x in (out / "eval_results_loose.jsonl").read_text().splitlines()]
    values = [round(v, 4) for v in ifeval_accuracies(strict, loose).values()]
    assert values == [0.7708, 0.7967, 0.8369, 0.8561]  # prompt strict/loose, instruction strict/loose


def test_response_prompt_not_in_input_exits_2_naming_line(shared_data: Path, ifeval_responses: Path, tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    lines = (ifeval_responses / f"{MODEL}.jsonl").read_text().splitlines()
    lines[3] = json.dumps({"prompt": "Not an IFEval prompt.", "response": "ok"})
    bad = tmp_path / "responses.jsonl"
    bad.write_text("\n".join(lines) + "\n")
    code, _, err = run(ifeval_args(shared_data, bad, tmp_path / "out"), capsys)
    assert code == 2 and f"{bad}:4: prompt is not in" in err and err.count("\n") == 1


def test_missing_response_exits_2(shared_data: Path, ifeval_responses: Path, tmp_path: Path,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    lines = (ifeval_responses / f"{MODEL}.jsonl").read_text().splitlines()
    short = tmp_path / "responses.jsonl"
    short.write_text("\n".join(lines[:-1]) + "\n")
    code, _, err = run(ifeval_args(shared_data, short, tmp_path / "out"), capsys)
    assert code == 2 and "no response for the prompt of key" in err and "input_data.jsonl:541" in err


def test_duplicate_input_keys_exit_2_and_write_no_record(shared_data: Path, ifeval_responses: Path, tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    # two prompts under one key would become two items named ifeval-1000: a record every compare refuses
    rows = [json.loads(x) for x in (shared_data / "ifeval" / "input_data.jsonl").read_text().splitlines()[:3]]
    rows[2]["key"] = rows[0]["key"]
    inputs = tmp_path / "input.jsonl"
    inputs.write_text("".join(json.dumps(r) + "\n" for r in rows))
    gpt4 = (ifeval_responses / "gpt4.jsonl").read_text().splitlines()
    answered = {json.loads(x)["prompt"]: x for x in gpt4}
    responses = tmp_path / "responses.jsonl"
    responses.write_text("".join(answered[r["prompt"]] + "\n" for r in rows))
    code, _, err = run(["score", "ifeval", "--input-data", str(inputs), "--responses", str(responses),
                        "--record", str(tmp_path / "r.json")], capsys)
    assert code == 2 and err == (f"tunegate: error: suite 'ifeval': {inputs}: key {rows[0]['key']} is given twice "
                                 "(rows 1 and 3); every prompt needs its own key\n")
    assert not (tmp_path / "r.json").exists()


def test_bad_response_line_exits_2(shared_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "responses.jsonl"
    bad.write_text('{"prompt": "x", "response": "y"}\n{"prompt": "x"}\n')
    code, _, err = run(ifeval_args(shared_data, bad, tmp_path / "out"), capsys)
    assert code == 2 and f"{bad}:2: missing field 'response'" in err


def test_gsm8k_gold_solutions_score_100_percent(shared_data: Path, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    data = shared_data / "gsm8k" / "test.jsonl"
    rows = [json.loads(x) for x in data.read_text().splitlines()]
    responses = tmp_path / "responses.jsonl"
    responses.write_text("".join(json.dumps({"question": r["question"], "response": r["answer"]}) + "\n"
                                 for r in rows))
    code, out, _ = run(["score", "gsm8k", "--data", str(data), "--responses", str(responses),
                        "--out", str(tmp_path / "out")], capsys)
    assert code == 0 and "exact_match:    1.0000" in out and "flexible_match: 1.0000" in out
    assert len((tmp_path / "out" / "gsm8k_scores.jsonl").read_text().splitlines()) == 1319


def test_gsm8k_responses_by_id(shared_data: Path, tmp_path: Path) -> None:
    responses = tmp_path / "responses.jsonl"
    responses.write_text('{"id": 0, "response": "She makes $18."}\n{"id": "gsm8k-0001", "response": "#### 4"}\n')
    scores = score_gsm8k(shared_data / "gsm8k" / "test.jsonl", responses).scores
    assert [s.scores["flexible_match"] for s in scores] == [1.0, 0.0] and scores[1].answer == "4"


def test_gsm8k_unknown_question_exits_2(shared_data: Path, tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    responses = tmp_path / "responses.jsonl"
    responses.write_text('{"question": "What is love?", "response": "#### 42"}\n')
    code, _, err = run(["score", "gsm8k", "--data", str(shared_data / "gsm8k" / "test.jsonl"),
                        "--responses", str(responses)], capsys)
    assert code == 2 and f"{responses}:1: question is not in" in err
