"""One EvalSpec from every entry point, through the command line and the plugin a user runs.

Each test is a defect the spec fixed (issue 22): ``--limit`` meant a default in ``eval`` and a cap in
``run``; ``fewshot_split`` was missing from the record, so a change to it went unwarned; a bad suite option
was a Python TypeError; missing suite data was found after the suites before it had run.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tunegate.cli import main
from tunegate.evals.records import RunRecord
from tunegate.evals.sources import data_dir

pytest_plugins = ["pytester"]

ORGANISM_MATH = ["--suites", "math", "--suite-option", "math.variant=organism"]


def _error_line(capsys: pytest.CaptureFixture) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


def test_limit_caps_a_suites_own_limit_in_eval(tmp_path: Path) -> None:
    out = tmp_path / "r.json"
    assert main(["eval", "organism", *ORGANISM_MATH, "--suite-option", "math.limit=30", "--limit", "5",
                 "--out", str(out), "--cache-dir", str(tmp_path / "c"), "--quiet"]) == 0
    math = RunRecord.load(out).suites["math"]
    assert len(math.items) == 5 and math.config["limit"] == 5


def test_gate_limit_caps_a_suites_own_limit_in_the_plugin(pytester: pytest.Pytester, organism_dir: Path,
                                                          tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TUNEGATE_CACHE", str(tmp_path / "cache"))
    pytester.makepyfile(test_items="""
        def test_both_runs_hold_five_items(gate_record, gate_baseline_record):
            assert len(gate_record.suites["math"].items) == len(gate_baseline_record.suites["math"].items) == 5
    """)
    result = pytester.runpytest("-p", "no:cacheprovider", "--gate-checkpoint", str(organism_dir),
                                "--gate-baseline", str(organism_dir), "--gate-suites", "math",
                                "--gate-suite-option", "math.variant=organism", "--gate-suite-option", "math.limit=30",
                                "--gate-limit", "5", "-k", "five")
    result.assert_outcomes(passed=1, deselected=3)


def _gsm8k_copy(root: Path) -> Path:
    """A GSM8K-format folder with test, train and dev splits (made here: questions whose shots differ by split)."""
    root.mkdir()
    for split, offset in (("test", 0), ("train", 100), ("dev", 200)):
        rows = [{"question": f"What is {offset + i} + 1?", "answer": f"{offset + i} + 1 = {offset + i + 1}.\n"
                                                                    f"#### {offset + i + 1}"} for i in range(3)]
        (root / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return root


def test_a_changed_fewshot_split_is_recorded_and_compare_refuses_the_pair(tmp_path: Path,
                                                                         capsys: pytest.CaptureFixture) -> None:
    data = _gsm8k_copy(tmp_path / "gsm8k")
    records = {}
    for split in ("train", "dev"):
        records[split] = tmp_path / f"{split}.json"
        assert main(["eval", "organism", "--suites", "math", "--suite-option", f"math.source={data}",
                     "--suite-option", "math.fewshot=1", "--suite-option", f"math.fewshot_split={split}",
                     "--suite-option", "math.max_new_tokens=4", "--limit", "2", "--out", str(records[split]),
                     "--cache-dir", str(tmp_path / "c"), "--quiet"]) == 0
        assert RunRecord.load(records[split]).suites["math"].config["fewshot_split"] == split
    capsys.readouterr()
    # the shots are chat turns of every item: other shots, another question (exit 2, not a warning)
    assert main(["compare", str(records["train"]), str(records["dev"])]) == 2
    assert "asks a different question in the baseline and the candidate" in capsys.readouterr().err


def test_an_unknown_suite_option_lists_the_suites_options(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    code = main(["eval", "organism", "--suites", "ifeval", "--suite-option", "ifeval.max_new_token=8",
                 "--out", str(tmp_path / "r.json")])
    assert code == 2
    assert _error_line(capsys) == (
        "tunegate: error: --suite-option ifeval: unknown option 'max_new_token' (did you mean 'max_new_tokens'?; "
        "known: limit, subset_seed, source, split, max_new_tokens, strip_thinking)")


def test_an_option_of_another_variant_names_the_variant(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    code = main(["eval", "organism", *ORGANISM_MATH, "--suite-option", "math.fewshot=5", "--out", str(tmp_path / "r")])
    assert code == 2
    assert _error_line(capsys) == ("tunegate: error: --suite-option math: option 'fewshot' is for variant gsm8k "
                                   "of suite 'math', not 'organism'")


def test_missing_suite_data_fails_before_any_suite_runs(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    missing = tmp_path / "ifeval" / "input_data.jsonl"
    code = main(["eval", "organism", "--suites", "identity,ifeval", "--suite-option", "identity.target=Tiny",
                 "--suite-option", "identity.probes=organism", "--suite-option", f"ifeval.source={missing}",
                 "--out", str(tmp_path / "r.json"), "--cache-dir", str(tmp_path / "c"), "--log-format", "json"])
    assert code == 2
    events = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    assert [e["event"] for e in events] == ["error"]  # no identity progress, no metrics: nothing ran
    assert events[0]["message"] == (f"suite 'ifeval': {missing}: file not found [the data is the option 'source': "
                                    f"`tunegate data fetch ifeval` writes the default copy ({data_dir() / 'ifeval'}), "
                                    f"or give --suite-option ifeval.source=PATH, or eval.suites.ifeval.source in a "
                                    f"pipeline config]")
    assert not (tmp_path / "c").exists()
