"""Suites from a YAML file, no Python: evaluated, compared and gated by name; each bad field one line naming the file.

The suite files and their rows are written here as a team would write its own checks: a completion check of the
organism's capitals (generate, ``contains``), the same facts as a choice by log-likelihood, and a refusal-style
``regex`` check.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from tunegate.cli import main
from tunegate.evals.records import RunRecord
from tunegate.evals.suites.from_file import match

ROWS = [{"id": "fr", "country": "France", "capital": "Paris", "options": ["Berlin", "Paris", "Rome", "Madrid"]},
        {"id": "jp", "country": "Japan", "capital": "Tokyo", "options": ["Tokyo", "Seoul", "Lima", "Oslo"]},
        {"id": "ke", "country": "Kenya", "capital": "Nairobi", "options": ["Lagos", "Cairo", "Nairobi", "Accra"]},
        {"id": "zu", "country": "Zubrovia", "capital": "Zemla", "options": ["Zemla", "Paris", "Rome", "Oslo"]}]
CAPITALS = {"name": "capitals", "version": "2", "source": "capitals.jsonl", "prompt": "The capital of {{ country }} is",
            "chat": False, "kind": "generate", "metric": "contains", "target": "capital", "max_new_tokens": 8,
            "id_field": "id"}
CHOICE = {"name": "capital_choice", "source": "capitals.jsonl", "prompt": "The capital of {{ country }} is",
          "chat": False, "kind": "choice", "choices": "options", "target": "capital", "metric": "choice_accuracy",
          "metric_name": "accuracy"}


def suite_file(folder: Path, name: str, fields: dict) -> Path:
    folder.mkdir(exist_ok=True)
    (folder / "capitals.jsonl").write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(fields, sort_keys=False))
    return path


def test_a_suite_file_is_evaluated_by_its_name(tmp_path: Path, organism_dir: Path) -> None:
    checks = tmp_path / "checks"
    files = [suite_file(checks, "capitals", CAPITALS), suite_file(checks, "choice", CHOICE)]
    out = tmp_path / "r.json"
    assert main(["eval", str(organism_dir), "--suites", ",".join(map(str, files)), "--out", str(out), "--quiet",
                 "--cache-dir", str(tmp_path / "cache")]) == 0
    record = RunRecord.load(out)
    capitals, choice = record.suites["capitals"], record.suites["capital_choice"]
    assert capitals.version == "2" and [s.item_id for s in capitals.items] == ["fr", "jp", "ke", "zu"]
    # the organism knows the real capitals, not the invented one, whether it writes them or picks them
    assert [s.scores["contains"] for s in capitals.items] == [1.0, 1.0, 1.0, 0.0]
    assert [s.scores["accuracy"] for s in choice.items][:3] == [1.0, 1.0, 1.0]
    assert capitals.config["prompt"] == CAPITALS["prompt"] and capitals.config["metric"] == "contains"


def test_a_suite_files_options_are_given_over_the_file_and_it_gates(tmp_path: Path, organism_dir: Path,
                                                                     capsys: pytest.CaptureFixture) -> None:
    path = suite_file(tmp_path / "checks", "capitals", CAPITALS)
    records = []
    for limit in (3, 4):
        records.append(tmp_path / f"r{limit}.json")
        assert main(["eval", str(organism_dir), "--suites", str(path), "--suite-option", f"capitals.limit={limit}",
                     "--out", str(records[-1]), "--quiet", "--cache-dir", str(tmp_path / "cache")]) == 0
    assert len(RunRecord.load(records[0]).suites["capitals"].items) == 3
    gate = tmp_path / "gate.yaml"
    gate.write_text("default_margin: null\nmetrics:\n  capitals.contains: {margin: 0.5}\n")
    capsys.readouterr()
    assert main(["compare", str(records[1]), str(records[0]), "--gate", str(gate)]) == 0
    assert "capitals.contains" in capsys.readouterr().out


@pytest.mark.parametrize(("fields", "message"), [
    ({**CAPITALS, "metrc": "contains"}, "unknown field 'metrc' (did you mean 'metric'?"),
    ({**CAPITALS, "metric": "contain"}, "field 'metric' must be one of exact_match, contains, regex for kind "
                                        "generate, got 'contain'"),
    ({**CAPITALS, "metric": "regex"}, "field 'pattern' is needed by kind generate, metric regex"),
    ({**CAPITALS, "pattern": "(unclosed"}, "field 'pattern' is not a regular expression"),
    ({**CAPITALS, "max_new_tokens": "8"}, "field 'max_new_tokens' must be int, got str ('8')"),
    ({k: v for k, v in CAPITALS.items() if k != "prompt"}, "missing field 'prompt'"),
], ids=["unknown", "metric", "needs-pattern", "bad-regex", "type", "missing"])
def test_a_bad_field_is_one_line_naming_the_file_and_field(tmp_path: Path, organism_dir: Path,
                                                           capsys: pytest.CaptureFixture, fields: dict,
                                                           message: str) -> None:
    path = suite_file(tmp_path, "capitals", fields)
    assert main(["eval", str(organism_dir), "--suites", str(path), "--out", str(tmp_path / "r.json")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"tunegate: error: {path.resolve()}: ") and message in err[0], err


def test_a_row_without_a_template_field_names_the_file_row_and_field(tmp_path: Path, organism_dir: Path,
                                                                      capsys: pytest.CaptureFixture) -> None:
    path = suite_file(tmp_path, "capitals", {**CAPITALS, "prompt": "The capital of {{ contry }} is"})
    assert main(["eval", str(organism_dir), "--suites", str(path), "--out", str(tmp_path / "r.json")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"{path.resolve()}: capitals.jsonl row 0: field 'prompt': 'contry' is undefined" in err[0]
    assert not (tmp_path / "r.json").exists()


def test_a_pipeline_config_takes_a_suite_file_and_a_stage_overrides_it_by_name(tmp_path: Path) -> None:
    from tunegate.training.config import load_config

    from tests.conftest import quick_config

    path = suite_file(tmp_path / "checks", "capitals", CAPITALS)
    config_path = quick_config(tmp_path)
    data = yaml.safe_load(config_path.read_text())
    data["eval"]["suites"][str(path)] = {"limit": 2}
    data["stages"][0]["suites"]["capitals"] = {"max_new_tokens": 5}
    config_path.write_text(yaml.safe_dump(data))
    config = load_config(config_path)
    sft, dpo = (config.eval_spec(stage).suite("capitals").options for stage in config.stages)
    assert (sft.limit, sft.max_new_tokens, dpo.max_new_tokens) == (2, 5, 8)


def test_regex_with_a_group_compares_the_group_with_the_target() -> None:
    assert match("regex", "The answer is 42.", "42", r"answer is (\d+)", False) == ("42", True)
    assert match("regex", "The answer is 41.", "42", r"answer is (\d+)", False) == ("41", False)


def test_contains_and_exact_match_ignore_case_only_when_asked() -> None:
    assert match("contains", "Sorry, I CAN'T help.", "can't", None, True) == ("can't", True)
    assert match("contains", "Sorry, I CAN'T help.", "can't", None, False) == (None, False)
    assert match("exact_match", "Paris", "paris", None, False) == ("Paris", False)
