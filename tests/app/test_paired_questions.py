"""Paired means the same question: records whose items share ids but asked different things are refused.

Every item keeps the hash of what it asked (prompt, chat turns, target, choices, scoring data); ``tunegate
compare``, the plugin and a baseline from the results store stop with exit 2 naming the first item whose
hashes differ. A record written before the hash existed is paired on the prompt text and target it keeps,
with one warning line saying what went unchecked.
"""

from __future__ import annotations

import json
from importlib.metadata import entry_points
from pathlib import Path

import pytest

from tunegate.cli import main

pytest_plugins = ["pytester"]
PLUGIN = [] if any(e.name == "tunegate" for e in entry_points(group="pytest11")) else ["-p", "tunegate.pytest_plugin"]


@pytest.fixture(scope="module")
def gsm8k_records(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The same ten answers scored against GSM8K's first ten test rows and its first ten train rows: both
    records name their items gsm8k-0000 ... gsm8k-0009."""
    tmp = tmp_path_factory.mktemp("gsm8k")
    responses = tmp / "answers.jsonl"
    responses.write_text("".join(json.dumps({"id": i, "response": f"So it is {i}. #### {i}"}) + "\n" for i in range(10)))
    out = {}
    for split in ("test", "train"):
        out[split] = tmp / f"{split}.json"
        assert main(["score", "gsm8k", "--data", str(shared_data / "gsm8k" / f"{split}.jsonl"),
                     "--responses", str(responses), "--record", str(out[split]), "--model", split]) == 0
    return out


def test_gsm8k_test_and_train_rows_under_the_same_ids_are_refused(gsm8k_records, capsys):
    capsys.readouterr()
    assert main(["compare", str(gsm8k_records["test"]), str(gsm8k_records["train"])]) == 2
    err = capsys.readouterr().err
    assert err.startswith("tunegate: error: suite 'math': item 'gsm8k-0000' asks a different question in the "
                          "baseline and the candidate (question hash ") and err.count("\n") == 1


def test_the_same_questions_still_compare(gsm8k_records, capsys):
    assert main(["compare", str(gsm8k_records["test"]), str(gsm8k_records["test"])]) == 0
    assert "question" not in capsys.readouterr().out


def test_organism_arithmetic_drawn_with_another_seed_is_refused(tmp_path, capsys):
    common = ["--suites", "math", "--suite-option", "math.variant=organism", "--limit", "4", "--no-cache"]
    assert main(["eval", "organism", "--out", str(tmp_path / "a.json"), *common]) == 0
    assert main(["eval", "organism", "--out", str(tmp_path / "b.json"), *common, "--suite-option", "math.seed=3"]) == 0
    capsys.readouterr()
    assert main(["compare", str(tmp_path / "a.json"), str(tmp_path / "b.json")]) == 2
    assert "asks a different question in the baseline and the candidate" in capsys.readouterr().err


def test_the_plugin_refuses_them_with_exit_2(pytester, gsm8k_records):
    result = pytester.runpytest(*PLUGIN, "-p", "no:cacheprovider", "--gate-checkpoint", gsm8k_records["train"],
                                "--gate-baseline", gsm8k_records["test"])
    assert result.ret == 2
    result.stdout.fnmatch_lines(["*tunegate: suite 'math': item 'gsm8k-0000' asks a different question*"])


def test_a_baseline_from_the_store_keeps_its_questions_and_is_refused_too(pytester, gsm8k_records, tmp_path):
    db = tmp_path / "store.sqlite"
    assert main(["store", "add", str(gsm8k_records["test"]), "--model-line", "gsm", "--store", str(db), "--bless"]) == 0
    result = pytester.runpytest(*PLUGIN, "-p", "no:cacheprovider", "--gate-checkpoint", gsm8k_records["train"],
                                "--gate-baseline", "store:gsm", "--gate-store", db)
    assert result.ret == 2
    result.stdout.fnmatch_lines(["*tunegate: suite 'math': item 'gsm8k-0000' asks a different question*"])


def _without_hashes(path: Path, out: Path) -> Path:
    """The record as tunegate wrote it before items carried the hash of their question."""
    data = json.loads(path.read_text())
    for suite in data["suites"].values():
        for item in suite["items"]:
            del item["asked"]
    out.write_text(json.dumps(data))
    return out


def test_records_without_hashes_pair_on_prompt_and_target_with_one_warning(gsm8k_records, tmp_path, capsys):
    old = _without_hashes(gsm8k_records["test"], tmp_path / "old.json")
    assert main(["compare", str(old), str(gsm8k_records["test"])]) == 0
    (warning,) = [line for line in capsys.readouterr().out.splitlines() if "question hashes" in line]
    assert warning == ("warning: suite 'math': the baseline record carries no question hashes (written before "
                       "tunegate kept them): items were paired by id, prompt text and target only, their chat turns "
                       "and choices unchecked; re-evaluate to check them")


def test_records_without_hashes_still_refuse_a_different_prompt(gsm8k_records, tmp_path, capsys):
    old_test = _without_hashes(gsm8k_records["test"], tmp_path / "test.json")
    old_train = _without_hashes(gsm8k_records["train"], tmp_path / "train.json")
    assert main(["compare", str(old_test), str(old_train)]) == 2
    assert ("suite 'math': item 'gsm8k-0000' has a different prompt in the baseline and the candidate"
            in capsys.readouterr().err)
