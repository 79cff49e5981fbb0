"""``tunegate compare``: table, JSON, exit codes, nothing written on bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tunegate.cli import main
from tunegate.evals.records import ItemScore, MetricValue, RunRecord, SuiteResult
from tests.evals.test_backend_openai_transport import endpoint  # noqa: F401 - a local OpenAI-style server
from tests.evals.test_compare_records import make_record

SUITES = ("math", "ifeval")
GATE = Path(__file__).resolve().parents[2] / "configs" / "gate.yaml"


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli")
    base = make_record(31, suites=SUITES)
    return {
        "base": base.save(d / "base.json"),
        "same": make_record(32, model="same", like=base, suites=SUITES).save(d / "same.json"),
        "worse": make_record(33, model="worse", like=base, suites=SUITES, flip={"math": 0.15}).save(d / "worse.json"),
        "other_items": make_record(34, suites=("math",)).save(d / "other.json"),
    }


def test_passing_gate_prints_the_table_and_exits_0(files, capsys):
    assert main(["compare", str(files["base"]), str(files["same"])]) == 0
    out = capsys.readouterr().out
    assert "metric" in out and "math.exact_match" in out and "gate: PASSED" in out


def test_regression_exits_1_and_names_the_metric(files, capsys):
    assert main(["compare", str(files["base"]), str(files["worse"])]) == 1
    captured = capsys.readouterr()
    assert "gate: FAILED" in captured.out and "gate failed on math.exact_match" in captured.err


def test_json_output_and_out_file_hold_the_comparison(files, capsys, tmp_path):
    out = tmp_path / "comparison.json"
    main(["compare", str(files["base"]), str(files["worse"]), "--json", "--out", str(out)])
    printed = json.loads(capsys.readouterr().out)
    assert printed["kind"] == "comparison" and printed["passed"] is False
    assert json.loads(out.read_text()) == printed


def test_truncated_record_exits_2_naming_the_file_and_writes_nothing(files, capsys, tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(files["base"].read_text()[:4000])
    out = tmp_path / "comparison.json"
    assert main(["compare", str(bad), str(files["same"]), "--out", str(out)]) == 2
    assert f"{bad}: invalid JSON" in capsys.readouterr().err
    assert not out.exists()


def test_record_missing_a_field_exits_2_naming_the_field(files, capsys, tmp_path):
    data = json.loads(files["base"].read_text())
    del data["suites"]["math"]["version"]
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(data))
    assert main(["compare", str(bad), str(files["same"])]) == 2
    assert "suite 'math': missing field 'version'" in capsys.readouterr().err


def test_mismatched_items_exit_2(files, capsys):
    assert main(["compare", str(files["other_items"]), str(files["same"])]) == 2
    assert "missing from the baseline" in capsys.readouterr().err


def test_a_shipped_gate_judges_the_suites_the_records_ran_and_names_the_rules_it_left(files, capsys):
    """`--gate sft` also rules identity and knowledge; records of math and IFEval are gated on those two."""
    assert main(["compare", str(files["base"]), str(files["worse"]), "--gate", "sft"]) == 1
    captured = capsys.readouterr()
    assert "gate failed on math.exact_match" in captured.err
    assert "gate rules not applied, neither record ran their suite: identity.adherence, knowledge.accuracy" in captured.out


def test_a_gate_rule_of_no_suite_at_all_exits_2(files, capsys, tmp_path):
    gate = tmp_path / "gate.yaml"
    gate.write_text("metrics:\n  maths.exact_match: {margin: 0.02}\n")
    assert main(["compare", str(files["base"]), str(files["same"]), "--gate", str(gate)]) == 2
    assert "unknown metric(s) ['maths.exact_match']" in capsys.readouterr().err


def test_unknown_gate_metric_exits_2(files, capsys, tmp_path):
    gate = tmp_path / "gate.yaml"
    gate.write_text("metrics:\n  math.accuracy: {margin: 0.02}\n")
    assert main(["compare", str(files["base"]), str(files["same"]), "--gate", str(gate)]) == 2
    assert "unknown metric(s) ['math.accuracy']" in capsys.readouterr().err


def _math_record(model: str, outcomes: list[int]) -> RunRecord:
    items = tuple(ItemScore(f"gsm-{i}", f"Question {i}?", f"{model} answer {i}", None, "7", {"exact_match": float(o)})
                  for i, o in enumerate(outcomes))
    value = MetricValue("exact_match", sum(outcomes) / len(outcomes), None, len(outcomes))
    return RunRecord(model, f"fp-{model}", {"math": SuiteResult("math", "1", {"exact_match": value}, items)})


@pytest.fixture(scope="module")
def ten(tmp_path_factory):
    d = tmp_path_factory.mktemp("ten")
    base = [1, 1, 1, 1, 0, 0, 0, 0, 0, 0]
    return {"base": _math_record("base", base).save(d / "base.json"),
            "same": _math_record("same", base).save(d / "same.json"),
            "collapse": _math_record("collapse", [0] * 10).save(d / "collapse.json")}


def test_collapse_at_n10_fails_as_underpowered_with_items_needed(ten, capsys):
    # math 40% -> 0% on 10 items: 4 right->wrong, 0 back (exact one-sided p 0.0625, not significant)
    assert main(["compare", str(ten["base"]), str(ten["collapse"])]) == 1
    out = capsys.readouterr().out
    assert "underpowered (n~" in out
    assert "point estimate dropped beyond margin 0.05; MDE 0.618 at n=10 exceeds the margin; ~" in out


def test_identical_runs_at_n10_are_underpowered_not_non_inferior(ten, capsys, tmp_path):
    out = tmp_path / "c.json"
    assert main(["compare", str(ten["base"]), str(ten["same"]), "--out", str(out)]) == 0
    m = json.loads(out.read_text())["metrics"][0]
    assert (m["verdict"], m["gate"]) == ("underpowered", "warn")
    assert (round(m["ci_low"], 3), round(m["ci_high"], 3)) == (-0.278, 0.278) and m["n_needed"] > 10
    assert "warn: math.exact_match: underpowered" in capsys.readouterr().out


def test_shipped_gate_keeps_its_promise_on_a_small_calibration(tmp_path):
    # bench/calibration.py in small: pairs from its own generator (500 items per suite) through `tunegate
    # compare` with configs/gate.yaml. docs/statistics.md has the full table.
    from bench.calibration import Generator, compare

    gen, rng = Generator(), np.random.default_rng(2026)
    alarms = [compare(*gen.pair(rng, (500, 500, 500)), str(GATE), "identity", tmp_path)[0] for _ in range(30)]
    caught, mdes = [], []
    for _ in range(20):
        rc, comp = compare(*gen.pair(rng, (500, 500, 500), "math", 0.05), str(GATE), "identity", tmp_path)
        caught.append(rc)
        mdes += [m["mde"] for m in comp["metrics"] if (m["suite"], m["metric"]) == ("math", "exact_match")]
    assert np.mean(np.equal(alarms, 1)) <= 0.1  # family-wise false alarms (full run: see docs/statistics.md)
    assert np.mean(np.equal(caught, 1)) >= 0.7  # a 5-point drop in one suite (full run, 100 pairs: 0.80)
    assert 0.04 < np.median(mdes) < 0.06  # the drop caught 80% of the time at 500 items and 14% discordance



def test_config_differences_print_only_the_changed_keys(files, capsys, tmp_path):
    data = json.loads(files["same"].read_text())
    data["suites"]["math"]["config"]["limit"] = 500
    limited = tmp_path / "limited.json"
    limited.write_text(json.dumps(data))
    assert main(["compare", str(files["base"]), str(limited)]) == 0
    (line,) = [x for x in capsys.readouterr().out.splitlines() if "config differs" in x]
    assert line == "warning: suite 'math': config differs (baseline -> candidate): limit None -> 500"


def _served_identity_record(endpoint, out: Path, answer: str, *options: str) -> Path:
    """`tunegate eval organism --backend openai` on the organism's identity probes, the server answering ``answer``."""
    endpoint.answer = {"choices": [{"index": 0, "message": {"role": "assistant", "content": answer}}]}
    assert main(["eval", "organism", "--backend", "openai", "--base-url", endpoint.base_url, "--suites", "identity",
                 "--suite-option", 'identity.probes="organism"', *options, "--out", str(out), "--no-cache",
                 "--quiet"]) == 0
    return out


def test_compare_scores_the_baselines_identity_against_the_candidates_target_as_the_pipeline_does(
        endpoint, tmp_path, capsys):
    from tunegate.evals.compare import compare_records, find_metric
    from tunegate.evals.records import Comparison
    from tunegate.evals.rescore import rescore
    from tunegate.evals.spec import eval_spec

    dpo_options = ["--suite-option", 'identity.target="Deep Tiny"', "--suite-option", 'identity.forbidden=["Tiny"]']
    sft = _served_identity_record(endpoint, tmp_path / "sft.json", "I am Tiny.", "--suite-option", 'identity.target="Tiny"')
    dpo = _served_identity_record(endpoint, tmp_path / "dpo.json", "I am Deep Tiny.", *dpo_options)
    capsys.readouterr()
    assert main(["compare", str(sft), str(dpo), "--trains", "identity", "--out", str(tmp_path / "c.json")]) == 0
    out = capsys.readouterr().out
    assert [line for line in out.splitlines() if "scored again" in line] == [
        "warning: suite 'identity': the baseline's responses scored again against the candidate's target 'Deep Tiny', "
        "forbidden ['Tiny'] (recorded against 'Tiny', []), as `tunegate run` does"]
    assert "config differs" not in out
    compared = find_metric(Comparison.load(tmp_path / "c.json"), "identity.adherence")
    # the pipeline's path: the input stage's record re-scored with the stage's suite options, then compared
    stage = eval_spec(["identity"], {"identity": {"probes": "organism", "target": "Deep Tiny", "forbidden": ["Tiny"]}})
    piped = find_metric(compare_records(rescore(RunRecord.load(sft), stage), RunRecord.load(dpo),
                                        trains=("identity",)), "identity.adherence")
    assert (compared.baseline, compared.candidate, compared.delta) == (piped.baseline, piped.candidate, piped.delta) \
        == (0.0, 1.0, 1.0)


def test_a_candidate_without_a_suite_the_baseline_has_fails_unless_the_gate_says_warn(files, capsys, tmp_path):
    data = json.loads(files["same"].read_text())
    del data["suites"]["ifeval"]
    partial = tmp_path / "partial.json"
    partial.write_text(json.dumps(data))
    assert main(["compare", str(files["base"]), str(partial)]) == 1
    out = capsys.readouterr().out
    assert ("fail: ifeval.prompt_strict: the candidate did not run suite 'ifeval' (the baseline has it): no evidence "
            "it did not regress (missing_suite: fail)") in out and "gate: FAILED" in out
    gate = tmp_path / "gate.yaml"
    gate.write_text("missing_suite: warn\n")
    assert main(["compare", str(files["base"]), str(partial), "--gate", str(gate)]) == 0


@pytest.fixture(scope="module")
def four_suites(tmp_path_factory):
    d = tmp_path_factory.mktemp("four")
    base = make_record(41)
    return {"base": base.save(d / "base.json"),
            "worse": make_record(42, model="worse", like=base, flip={"knowledge": 0.15}).save(d / "worse.json")}


@pytest.mark.parametrize("name, file", [("dpo", "gate.yaml"), ("sft", "gate-sft.yaml")])
def test_a_shipped_gate_is_found_by_name_from_any_directory(four_suites, capsys, tmp_path, monkeypatch, name, file):
    args = ["compare", str(four_suites["base"]), str(four_suites["worse"]), "--trains", "identity", "--json"]
    assert main([*args, "--gate", str(GATE.parent / file)]) == 1
    by_path = capsys.readouterr().out
    monkeypatch.chdir(tmp_path)  # no configs/ here
    assert main([*args, "--gate", name]) == 1
    assert capsys.readouterr().out == by_path


def test_an_unknown_gate_name_is_one_line_listing_the_shipped_ones(four_suites, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["compare", str(four_suites["base"]), str(four_suites["worse"]), "--gate", "grpo"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == ("tunegate: error: gate 'grpo': no such file and not a shipped gate "
                            "(shipped: dpo = gate.yaml, sft = gate-sft.yaml)\n")
