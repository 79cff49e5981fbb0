"""The pytest plugin end to end with pytester: pass, fail, underpowered, skipped, baseline update."""

from __future__ import annotations

from importlib.metadata import entry_points

import pytest

from tunegate.evals.store import Store
from tests.evals.test_compare_records import make_record

pytest_plugins = ["pytester"]

# Installed tunegate loads the plugin through its pytest11 entry point; a bare checkout needs -p.
PLUGIN = [] if any(e.name == "tunegate" for e in entry_points(group="pytest11")) else ["-p", "tunegate.pytest_plugin"]
SUITES = ("math", "ifeval")


@pytest.fixture(scope="module")
def records(tmp_path_factory):
    d = tmp_path_factory.mktemp("records")
    base = make_record(11, model="base", suites=SUITES)
    paths = {"base": base.save(d / "base.json")}
    paths["same"] = make_record(12, model="same", like=base, suites=SUITES).save(d / "same.json")
    paths["worse"] = make_record(13, model="worse", like=base, suites=SUITES, flip={"math": 0.15}).save(d / "worse.json")
    # ifeval: ~10% of prompts flip each way, net zero: the CI is too wide to show non-inferiority at 0.02
    flipped = make_record(15, model="x", like=base, suites=SUITES, flip={"ifeval": 0.1})
    paths["noisy"] = make_record(14, model="noisy", like=flipped, suites=SUITES, flip={"ifeval": -0.13}).save(d / "noisy.json")
    return paths


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest(*PLUGIN, "-p", "no:cacheprovider", "-rs", *map(str, args))


def test_unchanged_candidate_passes_one_test_per_metric(pytester, records):
    result = run(pytester, "--gate-checkpoint", records["same"], "--gate-baseline", records["base"], "-v")
    result.assert_outcomes(passed=3)
    result.stdout.fnmatch_lines(["*test_gate?math.exact_match? PASSED*", "*test_gate?ifeval.inst_strict? PASSED*",
                                 "*tunegate gate*", "gate: PASSED"])


def test_regressed_metric_fails_with_numbers_and_flipped_items(pytester, records):
    result = run(pytester, "--gate-checkpoint", records["worse"], "--gate-baseline", records["base"])
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines(["*math.exact_match: fail (regressed: delta -0.*",
                                 "*baseline 0.* candidate 0.* delta -0.*", "*- math-*: Question * of math?",
                                 "*baseline (1): base answer*", "*candidate (0): worse answer*", "gate: FAILED"])


def test_dash_k_selects_one_metric(pytester, records):
    result = run(pytester, "--gate-checkpoint", records["worse"], "--gate-baseline", records["base"], "-k", "ifeval")
    result.assert_outcomes(passed=2, deselected=1)


GATE_IFEVAL_2PT = "default_margin: null\nmetrics:\n  ifeval.prompt_strict: {margin: 0.02}\n"


def test_underpowered_metric_warns_by_default(pytester, records):
    # ifeval: ~10% of prompts flip each way, net zero: 541 prompts cannot catch a 2-point drop
    pytester.makefile(".yaml", gate=GATE_IFEVAL_2PT)
    result = run(pytester, "--gate-checkpoint", records["noisy"], "--gate-baseline", records["base"],
                 "--gate-config", "gate.yaml")
    result.assert_outcomes(passed=3, warnings=1)
    result.stdout.fnmatch_lines(["*GateWarning: ifeval.prompt_strict: warn (underpowered:*items needed)"])


def test_underpowered_metric_fails_when_configured(pytester, records):
    pytester.makefile(".yaml", gate=GATE_IFEVAL_2PT + "underpowered: fail\n")
    result = run(pytester, "--gate-checkpoint", records["noisy"], "--gate-baseline", records["base"],
                 "--gate-config", "gate.yaml")
    result.assert_outcomes(passed=2, failed=1)


def test_a_drop_within_the_baselines_noise_floor_warns_under_a_noise_floor_gate(pytester, records, tmp_path):
    import dataclasses

    from tunegate.evals.records import NoiseFloor, NoiseMetric, RunRecord

    floor = NoiseFloor("base", "fp", {}, ("batch_size 32 -> 1",),
                       (NoiseMetric("math", "exact_match", "batch_size 32 -> 1", 500, 100, -0.2),))
    base = dataclasses.replace(RunRecord.load(records["base"]), noise=floor).save(tmp_path / "base.json")
    pytester.makefile(".yaml", gate="noise_floor: true\ndefault_margin: null\nmetrics:\n  math.exact_match: {margin: 0.05}\n")
    result = run(pytester, "--gate-checkpoint", records["worse"], "--gate-baseline", base, "--gate-config", "gate.yaml")
    result.assert_outcomes(passed=3, warnings=1)
    result.stdout.fnmatch_lines(["*GateWarning: math.exact_match: warn (regressed:*within the A/A noise floor 0.2)"])


def test_without_checkpoint_the_gate_test_is_skipped_with_a_reason(pytester):
    pytester.makepyfile(test_tunegate="from tunegate.gate_tests import test_gate  # noqa: F401\n")
    result = run(pytester)
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(["*SKIPPED*no --gate-checkpoint given*"])


def test_fixtures_expose_records_and_comparison(pytester, records):
    pytester.makepyfile(test_own="""
        def test_math_did_not_drop(gate_record, gate_baseline_record, gate_comparison):
            assert gate_record.model == "worse" and gate_baseline_record.model == "base"
            assert not gate_comparison.passed
    """)
    result = run(pytester, "--gate-checkpoint", records["worse"], "--gate-baseline", records["base"], "-k", "own")
    result.assert_outcomes(passed=1, deselected=3)


def test_corrupt_baseline_is_one_clear_collection_error(pytester, records, tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(records["base"].read_text()[:5000])
    result = run(pytester, "--gate-checkpoint", records["same"], "--gate-baseline", bad)
    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.stdout.fnmatch_lines([f"*tunegate: {bad}: invalid JSON at line*"])


def test_missing_baseline_is_a_clear_error(pytester, records):
    result = run(pytester, "--gate-checkpoint", records["same"])
    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.stdout.fnmatch_lines(["*tunegate: missing baseline: give --gate-baseline*"])


def test_update_baseline_blesses_the_run_and_the_next_run_gates_against_it(pytester, records, tmp_path):
    db = tmp_path / "store.sqlite"
    first = run(pytester, "--gate-checkpoint", records["base"], "--gate-model-line", "tiny",
                "--gate-store", db, "--gate-update-baseline")
    first.assert_outcomes(skipped=1)
    first.stdout.fnmatch_lines(["*blessed run * as the baseline of 'tiny'*"])
    with Store(db) as store:
        assert store.blessed("tiny").model == "base"
    second = run(pytester, "--gate-checkpoint", records["worse"], "--gate-baseline", "store:tiny", "--gate-store", db)
    second.assert_outcomes(passed=2, failed=1)


@pytest.mark.slow
def test_checkpoint_is_evaluated_and_gated_against_a_checkpoint(pytester, organism_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("TUNEGATE_CACHE", str(tmp_path / "cache"))
    result = run(pytester, "--gate-checkpoint", organism_dir, "--gate-baseline", organism_dir,
                 "--gate-suites", "math", "--gate-suite-option", "math.variant=organism", "--gate-limit", "10", "-v")
    result.assert_outcomes(passed=3)
    result.stdout.fnmatch_lines(["*test_gate?math.exact_match? PASSED*", "gate: PASSED"])


def test_pyargs_runs_only_the_gate_as_the_nightly_job_does(pytester, records):
    """``pytest --pyargs tunegate.gate_tests`` collects the installed gate module itself (no repo tests)."""
    pytester.makepyfile(test_other="def test_unrelated():\n    assert True\n")
    result = run(pytester, "--pyargs", "tunegate.gate_tests", "--gate-checkpoint", records["worse"],
                 "--gate-baseline", records["base"])
    result.assert_outcomes(passed=2, failed=1)


def test_a_candidate_record_without_a_suite_the_baseline_has_fails_its_gate_tests(pytester, records, tmp_path):
    import json

    data = json.loads(records["same"].read_text())
    del data["suites"]["ifeval"]
    partial = tmp_path / "partial.json"
    partial.write_text(json.dumps(data))
    result = run(pytester, "--gate-checkpoint", partial, "--gate-baseline", records["base"])
    result.assert_outcomes(passed=1, failed=2)
    result.stdout.fnmatch_lines(["*ifeval.prompt_strict: fail (the candidate did not run suite 'ifeval'*", "gate: FAILED"])
    assert result.ret == 1


def test_an_unexpected_exception_in_tunegate_is_one_line_and_exit_3(pytester, records):
    # a backend registered from outside tunegate whose generate has a bug (a KeyError)
    pytester.makeconftest("""
        from tunegate.evals.backends import BACKENDS

        @BACKENDS.register("broken")
        class Broken:
            name, fingerprint = "broken", "0" * 16

            def __init__(self, model, **options):
                pass

            def render(self, messages):
                return messages[-1]["content"]

            def generate(self, requests):
                return {}["no such key"]
    """)
    result = pytester.runpytest_subprocess(*PLUGIN, "-p", "no:cacheprovider", "--gate-checkpoint", "any-model",
                                           "--gate-baseline", records["base"], "--gate-suites", "math",
                                           "--gate-suite-option", "math.variant=organism", "--gate-backend", "broken")
    assert result.ret == 3
    result.stdout.fnmatch_lines(["*tunegate: internal error: KeyError: 'no such key' (set TUNEGATE_DEBUG=1 for the "
                                 "traceback)*"])
    assert "Traceback" not in result.stdout.str()


def test_gate_config_takes_a_shipped_gate_by_name(pytester, tmp_path):
    base = make_record(21, model="base")
    worse = make_record(22, model="worse", like=base, flip={"knowledge": 0.15})
    paths = [base.save(tmp_path / "base.json"), worse.save(tmp_path / "worse.json")]
    result = run(pytester, "--gate-checkpoint", paths[1], "--gate-baseline", paths[0], "--gate-trains", "identity",
                 "--gate-config", "sft", "-v")
    result.assert_outcomes(passed=5, failed=1)  # one test per compared metric; gate-sft gates four of the six
    result.stdout.fnmatch_lines(["*test_gate?knowledge.accuracy? FAILED*",
                                 "*across 4 gated metrics*"])  # gate-sft.yaml's four margins (the default gates all 6)
