"""``tunegate data fetch NAME`` and the data folder the suites read first (``$TUNEGATE_DATA``).

The hub is unreachable here: the hub's copies are made in each test (``save_to_disk``, or a folder as
``huggingface-cli download`` writes it, from hand-written rows in each dataset's published format) and given
with ``--source``; the offline path is tested as a user meets it, with ``HF_HUB_OFFLINE=1``.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tunegate.cli import main
from tunegate.evals.records import Comparison, RunRecord

ROOT = Path(__file__).resolve().parents[2]

# Google's input_data.jsonl rows: kwargs list only the arguments that are set, one dict per instruction.
IFEVAL = [
    {"key": 1000, "prompt": "Write a 300+ word summary of the wikipedia page. Do not use any commas.",
     "instruction_id_list": ["punctuation:no_comma", "length_constraints:number_words"],
     "kwargs": [{}, {"relation": "at least", "num_words": 300}]},
    {"key": 1001, "prompt": "Write a riddle about a mom laying out on a beach in Humboldt without using any commas.",
     "instruction_id_list": ["punctuation:no_comma"], "kwargs": [{}]},
    {"key": 1005, "prompt": "Write a blog post about Japan with exactly 4 bullet points, mentioning \u201csushi\u201d.",
     "instruction_id_list": ["detectable_format:number_bullet_lists", "keywords:existence"],
     "kwargs": [{"num_bullets": 4}, {"keywords": ["sushi"]}]},
]
GSM8K_TEST = [
    {"question": "Janet\u2019s ducks lay 16 eggs per day. She eats three and sells the rest for $2 each. How much "
                 "does she make every day?", "answer": "16 - 3 = <<16-3=13>>13 eggs.\n13 * 2 = <<13*2=26>>26\n#### 26"},
    {"question": "A robe takes 2 bolts of blue fiber and half that much white fiber. How many bolts in total?",
     "answer": "White: 2/2 = <<2/2=1>>1 bolt.\nTotal: 2 + 1 = <<2+1=3>>3\n#### 3"},
    {"question": "Josh buys a house for $80,000 and puts in $50,000 in repairs. What did he spend?",
     "answer": "80,000 + 50,000 = <<80000+50000=130000>>130,000\n#### 130,000"},
]
GSM8K_TRAIN = [
    {"question": "Natalia sold clips to 48 friends in April and half as many in May. How many clips in all?",
     "answer": "Natalia sold 48/2 = <<48/2=24>>24 clips in May.\n48+24 = <<48+24=72>>72\n#### 72"},
]
MMLU_TEST = [
    {"subject": "abstract_algebra", "question": "Find all c in Z_3 such that Z_3[x]/(x^2 + c) is a field.",
     "choices": ["0", "1", "2", "3"], "answer": 1},
    {"subject": "world_religions", "question": "Where is the Kaaba, the holiest site of Islam?",
     "choices": ["Medina", "Mecca", "Jerusalem", "Qom"], "answer": 1},
]
MMLU_DEV = [{"subject": "abstract_algebra", "question": "Statement 1 | Every element of a group generates a "
             "cyclic subgroup. Statement 2 | The symmetric group S_10 has 10 elements.",
             "choices": ["True, True", "False, False", "True, False", "False, True"], "answer": 2}]


def saved_copy(folder: Path, splits: dict[str, list[dict[str, Any]]]) -> Path:
    """A DatasetDict of ``splits`` as ``save_to_disk`` writes it (the columns typed by Arrow, as on the hub)."""
    import datasets

    datasets.DatasetDict({name: datasets.Dataset.from_list(rows) for name, rows in splits.items()}).save_to_disk(folder)
    return folder


def lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def fetch(capsys: pytest.CaptureFixture, *args: str) -> tuple[int, str, str]:
    code = main(["data", "fetch", *args, "--quiet"])
    out, err = capsys.readouterr()
    return code, out, err


def test_ifeval_is_written_as_googles_rows_from_the_hubs_null_filled_table(tmp_path: Path, capsys) -> None:
    import datasets

    source = saved_copy(tmp_path / "hub", {"train": IFEVAL})
    assert datasets.load_from_disk(source)["train"][0]["kwargs"][0]["num_words"] is None  # the hub's form
    code, out, _ = fetch(capsys, "ifeval", "--source", str(source), "--out", str(tmp_path / "data"))
    written = tmp_path / "data" / "ifeval" / "input_data.jsonl"
    assert code == 0 and lines(written) == IFEVAL
    digest = hashlib.sha256(written.read_bytes()).hexdigest()
    assert out.splitlines()[0] == f"{written}: 3 rows, sha256 {digest}"


def test_gsm8k_is_read_from_a_hub_repository_folder_and_written_ascii_escaped(tmp_path: Path, capsys) -> None:
    import datasets

    repo = tmp_path / "openai-gsm8k"  # huggingface-cli download --repo-type dataset openai/gsm8k --local-dir ...
    for split, rows in (("test", GSM8K_TEST), ("train", GSM8K_TRAIN)):
        (repo / "main").mkdir(parents=True, exist_ok=True)
        datasets.Dataset.from_list(rows).to_parquet(repo / "main" / f"{split}-00000-of-00001.parquet")
    (repo / "README.md").write_text("---\nconfigs:\n- config_name: main\n  data_files:\n  - split: train\n"
                                    "    path: main/train-*\n  - split: test\n    path: main/test-*\n---\n")
    code, out, _ = fetch(capsys, "gsm8k", "--source", str(repo), "--out", str(tmp_path / "data"))
    folder = tmp_path / "data" / "gsm8k"
    assert code == 0 and lines(folder / "test.jsonl") == GSM8K_TEST and lines(folder / "train.jsonl") == GSM8K_TRAIN
    assert "Janet\\u2019s" in (folder / "test.jsonl").read_text()  # as OpenAI's file escapes it
    assert [line.split(":")[0] for line in out.splitlines()[:2]] == [str(folder / "test.jsonl"),
                                                                       str(folder / "train.jsonl")]


def test_mmlu_keeps_its_dev_split_and_writes_utf8(tmp_path: Path, capsys) -> None:
    rows = [*MMLU_TEST, {**MMLU_TEST[1], "question": "Which city is called Makkah al-Mukarramah (\u0645\u0643\u0629)?"}]
    source = saved_copy(tmp_path / "hub", {"test": rows, "dev": MMLU_DEV})
    code, out, _ = fetch(capsys, "mmlu", "--source", str(source), "--out", str(tmp_path / "data"))
    folder = tmp_path / "data" / "mmlu"
    assert code == 0 and lines(folder / "test.jsonl") == rows and lines(folder / "dev.jsonl") == MMLU_DEV
    assert "(\u0645\u0643\u0629)" in (folder / "test.jsonl").read_text(encoding="utf-8")
    assert f"{folder / 'dev.jsonl'}: 1 rows" in out


def test_an_unreachable_hub_is_one_line_naming_the_command_and_the_folder(tmp_path: Path, capsys,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    code, out, err = fetch(capsys, "mmlu", "--out", str(tmp_path / "data"))
    assert code == 2 and out == "" and err.count("\n") == 1
    assert err.startswith("tunegate: error: data fetch mmlu: cais/mmlu is not cached and the hub is unreachable: ")
    assert (f"run `tunegate data fetch mmlu --out DIR` where it is reachable and copy DIR/mmlu to "
            f"{tmp_path / 'data' / 'mmlu'} (or set TUNEGATE_DATA=DIR)") in err
    assert not (tmp_path / "data" / "mmlu").exists()


@pytest.mark.slow
def test_without_network_the_error_is_the_same_line_after_the_hubs_retries(tmp_path: Path) -> None:
    """No HF_HUB_OFFLINE, the hub at a closed local port: huggingface_hub retries for about 25 s (2 CPU s)."""
    from bench._common import free_port

    env = {**os.environ, "HF_HUB_OFFLINE": "0", "HF_DATASETS_OFFLINE": "0", "HF_HOME": str(tmp_path / "hf"),
           "HF_ENDPOINT": f"http://127.0.0.1:{free_port()}"}
    proc = subprocess.run([sys.executable, "-m", "tunegate", "data", "fetch", "gsm8k", "--out", str(tmp_path / "data")],
                          env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and proc.stdout == "", proc.stderr
    assert proc.stderr.splitlines()[-1].startswith(
        "tunegate: error: data fetch gsm8k: openai/gsm8k is not cached and the hub is unreachable: run `tunegate "
        "data fetch gsm8k --out DIR` where it is reachable")
    assert not (tmp_path / "data" / "gsm8k").exists()


@pytest.mark.parametrize("suite, bench, files, default, hub_id", [
    ("ifeval", "ifeval", ["input_data.jsonl"], "ifeval/input_data.jsonl", "google/IFEval"),
    ("math", "gsm8k", ["test.jsonl"], "gsm8k", "openai/gsm8k"),
    ("knowledge", "mmlu", ["test.jsonl"], "mmlu", "cais/mmlu"),
])
def test_a_suites_default_source_is_the_data_folder_when_it_holds_the_files(
        suite: str, bench: str, files: list[str], default: str, hub_id: str, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    from tunegate.evals.suites import get_suite

    monkeypatch.setenv("TUNEGATE_DATA", str(tmp_path))
    assert get_suite(suite).options.source == hub_id
    for name in files:
        (tmp_path / bench).mkdir(exist_ok=True)
        (tmp_path / bench / name).write_text("")
    assert get_suite(suite).options.source == str(tmp_path / default)
    assert get_suite(suite, source="elsewhere/x.jsonl").options.source == "elsewhere/x.jsonl"


def test_a_copy_that_lacks_what_the_options_ask_leaves_the_hub_id(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from tunegate.evals.suites import get_suite
    from tunegate.evals.suites.knowledge import MMLUOptions

    monkeypatch.setenv("TUNEGATE_DATA", str(tmp_path))
    for bench in ("gsm8k", "mmlu"):
        (tmp_path / bench).mkdir()
        (tmp_path / bench / "test.jsonl").write_text("")
    assert get_suite("math", fewshot=0).options.source == str(tmp_path / "gsm8k")
    assert get_suite("math", fewshot=5).options.source == "openai/gsm8k"  # no train.jsonl for the shots
    assert MMLUOptions(name="all").source == str(tmp_path / "mmlu")
    assert MMLUOptions(name="anatomy").source == "cais/mmlu"  # the copy holds config all, not one subject's


def test_eval_reads_the_fetched_copy_with_no_source_option_and_records_it(tmp_path: Path, capsys,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    data = tmp_path / "data"
    monkeypatch.setenv("TUNEGATE_DATA", str(data))
    source = saved_copy(tmp_path / "hub", {"test": GSM8K_TEST, "train": GSM8K_TRAIN})
    assert fetch(capsys, "gsm8k", "--source", str(source))[0] == 0  # --out defaults to $TUNEGATE_DATA
    record = tmp_path / "r.json"
    assert main(["eval", "organism", "--suites", "math", "--suite-option", "math.max_new_tokens=4",
                 "--out", str(record), "--cache-dir", str(tmp_path / "cache"), "--quiet"]) == 0
    math = RunRecord.load(record).suites["math"]
    assert math.config["source"] == str(data / "gsm8k")
    assert [i.target for i in math.items] == ["26", "3", "130000"]


def test_records_of_two_copies_of_the_same_questions_pair_on_their_hashes(tmp_path: Path, capsys,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TUNEGATE_DATA", str(tmp_path / "data"))
    source = saved_copy(tmp_path / "hub", {"test": GSM8K_TEST, "train": GSM8K_TRAIN})
    assert fetch(capsys, "gsm8k", "--source", str(source))[0] == 0
    assert fetch(capsys, "gsm8k", "--source", str(source), "--out", str(tmp_path / "ci"))[0] == 0
    args = ["eval", "organism", "--suites", "math", "--suite-option", "math.max_new_tokens=4",
            "--cache-dir", str(tmp_path / "cache"), "--quiet"]
    assert main([*args, "--out", str(tmp_path / "a.json")]) == 0
    assert main([*args, "--suite-option", f"math.source={tmp_path / 'ci' / 'gsm8k'}", "--out", str(tmp_path / "b.json")]) == 0
    assert main(["compare", str(tmp_path / "a.json"), str(tmp_path / "b.json"), "--out", str(tmp_path / "c.json")]) == 0
    comparison = Comparison.load(tmp_path / "c.json")
    assert {m.n for m in comparison.metrics} == {3}  # every item paired: the paths differ, the questions do not
    assert any("source" in w for w in comparison.warnings)  # the different path is a note, not a refusal


def test_a_suites_offline_error_names_the_fetch_command(tmp_path: Path, capsys,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TUNEGATE_DATA", str(tmp_path / "empty"))
    code = main(["eval", "organism", "--suites", "knowledge", "--out", str(tmp_path / "r.json"), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "'cais/mmlu' (config all) split 'test' is not cached" in err
    assert (f"`tunegate data fetch mmlu` writes the default copy ({tmp_path / 'empty' / 'mmlu'}), or give "
            "--suite-option knowledge.source=PATH") in err


def _run_shared_data_test(tmp_path: Path, ci: str) -> subprocess.CompletedProcess:
    """A test that asks for ``shared_data``, run by pytest with this repository's conftest.py and no data."""
    (tmp_path / "conftest.py").write_text((ROOT / "conftest.py").read_text())
    (tmp_path / "test_it.py").write_text("def test_reads(shared_data):\n    assert shared_data.is_dir()\n")
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "PYTHONPATH": str(ROOT), "CI": ci,
           "TUNEGATE_SHARED_DATA": str(tmp_path / "no-shared-data"), "TUNEGATE_DATA": str(tmp_path / "no-data")}
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", "test_it.py"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)


def test_without_data_the_shared_data_tests_skip_naming_the_fetch_command(tmp_path: Path) -> None:
    proc = _run_shared_data_test(tmp_path, ci="")
    assert proc.returncode == 0 and "1 skipped" in proc.stdout, proc.stdout + proc.stderr
    assert (f"benchmark data ifeval, gsm8k, mmlu not found in {tmp_path / 'no-data'}: run `tunegate data fetch "
            "ifeval gsm8k mmlu`") in proc.stdout


def test_without_data_under_ci_the_shared_data_tests_fail(tmp_path: Path) -> None:
    proc = _run_shared_data_test(tmp_path, ci="true")
    assert proc.returncode == 1 and "1 error" in proc.stdout and "tunegate data fetch ifeval gsm8k mmlu" in proc.stdout


def test_fetched_copies_of_openais_gsm8k_files_are_byte_identical(shared_data: Path, tmp_path: Path, capsys) -> None:
    splits = {s: lines(shared_data / "gsm8k" / f"{s}.jsonl") for s in ("test", "train")}
    code, out, _ = fetch(capsys, "gsm8k", "--source", str(saved_copy(tmp_path / "hub", splits)),
                         "--out", str(tmp_path / "data"))
    for split in ("test", "train"):
        digest = hashlib.sha256((shared_data / "gsm8k" / f"{split}.jsonl").read_bytes()).hexdigest()
        assert f"{tmp_path / 'data' / 'gsm8k' / split}.jsonl: {len(splits[split])} rows, sha256 {digest}" in out
    assert code == 0


def test_a_fetched_ifeval_asks_googles_questions(shared_data: Path, tmp_path: Path, capsys) -> None:
    from tunegate.evals.records import question_hash
    from tunegate.evals.suites import get_suite

    google = shared_data / "ifeval" / "input_data.jsonl"
    source = saved_copy(tmp_path / "hub", {"train": lines(google)})
    assert fetch(capsys, "ifeval", "--source", str(source), "--out", str(tmp_path / "data"))[0] == 0
    fetched = tmp_path / "data" / "ifeval" / "input_data.jsonl"
    assert lines(fetched) == lines(google)
    hashes = [[question_hash(i) for i in get_suite("ifeval", source=str(p)).items()] for p in (google, fetched)]
    assert hashes[0] == hashes[1] and len(hashes[0]) == 541
