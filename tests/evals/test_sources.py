"""tunegate.evals.sources: JSONL/JSON rows with one-line errors naming file, line and field."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tunegate.evals.sources import load_rows
from tunegate.core.files import read_jsonl
from tunegate.core.errors import TunegateError

REQUIRED = {"question": str, "answer": (str, int)}


def write(tmp_path: Path, text: str | bytes, name: str = "rows.jsonl") -> Path:
    path = tmp_path / name
    path.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8"))
    return path


def one_line_error(path: Path, needle: str) -> str:
    with pytest.raises(TunegateError) as info:
        read_jsonl(path, REQUIRED)
    message = str(info.value)
    assert "\n" not in message and str(path) in message and needle in message, message
    return message


def test_reads_real_gsm8k_rows(shared_data: Path) -> None:
    rows = read_jsonl(shared_data / "gsm8k" / "test.jsonl", {"question": str, "answer": str})
    assert len(rows) == 1319 and rows[0]["answer"].endswith("#### 18")


def test_line_separators_inside_strings_do_not_split_lines(shared_data: Path) -> None:
    # MMLU keeps U+2028 and friends inside strings; only "\n" ends a JSONL line.
    assert len(read_jsonl(shared_data / "mmlu" / "test.jsonl")) == 14042


def test_bad_json_line_names_the_line(tmp_path: Path) -> None:
    path = write(tmp_path, '{"question": "a", "answer": "1"}\n{"question": "b", "answer": \n')
    assert f"{path}:2: invalid JSON" in one_line_error(path, ":2:")


def test_non_object_line(tmp_path: Path) -> None:
    one_line_error(write(tmp_path, '[1, 2]\n'), "expected a JSON object")


def test_missing_field_names_field_and_line(tmp_path: Path) -> None:
    path = write(tmp_path, '{"question": "a", "answer": "1"}\n\n{"question": "b"}\n')
    assert "rows.jsonl:3: missing field 'answer'" in one_line_error(path, "answer")


def test_wrong_type_names_field(tmp_path: Path) -> None:
    message = one_line_error(write(tmp_path, '{"question": 7, "answer": "1"}\n'), "field 'question'")
    assert "must be str, got int" in message


def test_bool_is_not_an_int(tmp_path: Path) -> None:
    with pytest.raises(TunegateError, match="field 'n' must be int, got bool"):
        read_jsonl(write(tmp_path, '{"n": true}\n'), {"n": int})


def test_non_utf8_file(tmp_path: Path) -> None:
    path = write(tmp_path, b'{"question": "a", "answer": "1"}\n{"question": "caf\xe9", "answer": "2"}\n')
    assert ":2: not UTF-8" in one_line_error(path, "UTF-8")


def test_empty_file(tmp_path: Path) -> None:
    one_line_error(write(tmp_path, "\n\n"), "empty file")


def test_load_rows_from_directory_and_json(tmp_path: Path) -> None:
    write(tmp_path, '{"question": "a", "answer": 1}\n', "test.jsonl")
    write(tmp_path, json.dumps([{"question": "b", "answer": "2"}]), "train.json")
    assert load_rows(tmp_path, split="test", required=REQUIRED)[0]["question"] == "a"
    assert load_rows(tmp_path, split="train", required=REQUIRED)[0]["answer"] == "2"


def test_missing_local_split_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(TunegateError, match="no validation.jsonl or validation.json"):
        load_rows(tmp_path, split="validation")


def test_uncached_hub_id_offline_says_what_to_do() -> None:
    with pytest.raises(TunegateError) as info:
        load_rows("tunegate-tests/no-such-dataset", split="test")
    message = str(info.value)
    assert "\n" not in message and "tunegate-tests/no-such-dataset" in message and "local" in message
