"""The pairwise judge suite: both orders per pair, the verdicts recorded, the win rate gated with a paired CI.

A/A: the organism answers open prompts (the baseline record), then is evaluated again with that record as its
reference and a real judge model: identical answers in both orders, so whatever the judge says, its position bias
cancels and the win rate is 50%, inside its CI. The statistics of ``compare`` on a judged suite are checked against
scipy on records built here; the plugin hands its baseline to the judge by itself.
"""

from __future__ import annotations

import json
from pathlib import Path
import numpy as np
import pytest

from tunegate.cli import main
from tunegate.evals.pairwise import JUDGE_SYSTEM, item_win_rate
from tunegate.evals.records import ItemScore, MetricValue, RunRecord, SuiteResult

pytest_plugins = ["pytester"]

PROMPTS = ["What is the capital of France?", "Who are you?", "Write one sentence about rivers.",
           "What is 12 + 7?", "Name a country in Africa.", "Say hello politely.", "What do you know about Peru?",
           "Give me a short tip for learning."]
GATE = "default_margin: null\nmetrics:\n  judge.win_rate: {margin: 0.05}\n"


def judge_args(prompts: Path, judge: Path | str, *extra: str) -> list[str]:
    options = {"source": str(prompts), "max_new_tokens": 16, "judge_model": str(judge), "judge_max_new_tokens": 24}
    return ["--suites", "judge", *[a for k, v in options.items() for a in ("--suite-option", f"judge.{k}={v}")], *extra]


@pytest.fixture(scope="module")
def prompts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("judge") / "prompts.jsonl"
    path.write_text("".join(json.dumps({"prompt": p, "category": "open"}) + "\n" for p in PROMPTS))
    return path


@pytest.fixture(scope="module")
def baseline(prompts: Path, organism_dir: Path) -> Path:
    """The organism's answers, recorded with no baseline to judge against (each item a tie with itself)."""
    out = prompts.parent / "base.json"
    assert main(["eval", str(organism_dir), *judge_args(prompts, organism_dir), "--out", str(out), "--quiet",
                 "--cache-dir", str(prompts.parent / "cache")]) == 0
    return out


@pytest.mark.slow
def test_a_a_run_comes_out_at_half_within_its_ci(baseline: Path, prompts: Path, organism_dir: Path,
                                                 capsys: pytest.CaptureFixture) -> None:
    """~3 CPU s: the organism judges its own answers against themselves by the likelihood of each verdict mark, so
    every judgment is a verdict (none unparsed)."""
    candidate = prompts.parent / "aa.json"
    assert main(["eval", str(organism_dir), *judge_args(prompts, organism_dir), "--suite-option",
                 f"judge.reference={baseline}", "--suite-option", "judge.verdict=likelihood", "--out",
                 str(candidate), "--quiet", "--cache-dir", str(prompts.parent / "cache")]) == 0
    gate = prompts.parent / "gate.yaml"
    gate.write_text(GATE)
    capsys.readouterr()
    assert main(["compare", str(baseline), str(candidate), "--gate", str(gate), "--json"]) == 0
    metric = next(m for m in json.loads(capsys.readouterr().out)["metrics"] if m["metric"] == "win_rate")
    assert metric["candidate"] == 0.5 and metric["ci_low"] <= 0.0 <= metric["ci_high"] and metric["gate"] == "pass"
    assert RunRecord.load(candidate).suites["judge"].breakdowns["verdict"]["unparsed"] == 0.0


@pytest.mark.slow
def test_the_record_holds_the_judges_prompt_model_and_both_verdicts(baseline: Path, prompts: Path,
                                                                     organism_dir: Path) -> None:
    candidate = prompts.parent / "verdicts.json"
    assert main(["eval", str(organism_dir), *judge_args(prompts, organism_dir), "--suite-option",
                 f"judge.reference={baseline}", "--out", str(candidate), "--quiet",
                 "--cache-dir", str(prompts.parent / "cache")]) == 0
    result = RunRecord.load(candidate).suites["judge"]
    assert result.config["judge_system_prompt"] == JUDGE_SYSTEM and result.config["judge_model"] == str(organism_dir)
    assert "{answer_a}" in result.config["judge_template"] and "reference" not in result.config
    theirs = {s.item_id: s.response for s in RunRecord.load(baseline).suites["judge"].items}
    for item in result.items:
        assert [v["first"] for v in item.meta["verdicts"]] == ["baseline", "candidate"]
        assert all(v["judgment"] for v in item.meta["verdicts"])
        assert item.meta["reference_response"] == theirs[item.item_id]
        assert item.scores["win_rate"] == item_win_rate([v["verdict"] for v in item.meta["verdicts"]])
        assert item.meta["judge"] == RunRecord.load(baseline).fingerprint  # the judge is the organism


@pytest.mark.slow
def test_the_plugin_judges_the_checkpoint_against_its_baseline(pytester: pytest.Pytester, baseline: Path,
                                                               prompts: Path, organism_dir: Path) -> None:
    from tests.app.test_plugin import run

    pytester.makefile(".yaml", gate=GATE)
    options = [a for k, v in {"source": prompts, "max_new_tokens": 16, "judge_model": organism_dir,
                              "judge_max_new_tokens": 24}.items() for a in ("--gate-suite-option", f"judge.{k}={v}")]
    result = run(pytester, "--gate-checkpoint", organism_dir, "--gate-baseline", baseline, "--gate-suites", "judge",
                 *options, "--gate-config", "gate.yaml", "-v")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*test_gate?judge.win_rate? PASSED*", "gate: PASSED"])


def judged_records(win_rates: list[float], *, judged_against: str = "base") -> tuple[RunRecord, RunRecord]:
    """A baseline's judge suite (its answers) and a candidate's judged against ``judged_against``'s answers."""
    config = {"source": "prompts.jsonl", "judge_model": "judge", "pairwise": True}

    def result(items: list[ItemScore]) -> SuiteResult:
        value = float(np.mean([s.scores["win_rate"] for s in items]))
        return SuiteResult("judge", "1", {"win_rate": MetricValue("win_rate", value, None, len(items), binary=False)},
                           tuple(items), config)

    base = [ItemScore(f"judge-{i:04d}", f"prompt {i}", f"base answer {i}", "tie", None, {"win_rate": 0.5})
            for i in range(len(win_rates))]
    cand = [ItemScore(f"judge-{i:04d}", f"prompt {i}", f"candidate answer {i}", None, None, {"win_rate": w},
                      meta={"reference_response": f"{judged_against} answer {i}"}) for i, w in enumerate(win_rates)]
    return (RunRecord("base", "b" * 16, {"judge": result(base)}), RunRecord("cand", "c" * 16, {"judge": result(cand)}))


def test_a_judged_loss_fails_the_gate_with_scipys_paired_t(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from scipy import stats

    rng = np.random.default_rng(7)
    wins = list(rng.choice([0.0, 0.25, 0.5, 0.75, 1.0], size=200, p=[0.35, 0.15, 0.2, 0.15, 0.15]))
    base, cand = (r.save(tmp_path / f"{r.model}.json") for r in judged_records(wins))
    gate = tmp_path / "gate.yaml"
    gate.write_text(GATE)
    assert main(["compare", str(base), str(cand), "--gate", str(gate), "--json"]) == 1
    metric = next(m for m in json.loads(capsys.readouterr().out)["metrics"] if m["metric"] == "win_rate")
    assert metric["delta"] == pytest.approx(np.mean(wins) - 0.5) and metric["verdict"] == "regressed"
    assert metric["p_value"] == pytest.approx(stats.ttest_1samp(wins, 0.5, alternative="less").pvalue, rel=1e-6)
    scipy_ci = stats.bootstrap((np.asarray(wins) - 0.5,), np.mean, confidence_level=0.95, method="BCa",
                               n_resamples=20000, random_state=0).confidence_interval
    assert metric["ci_low"] == pytest.approx(scipy_ci.low, abs=0.01)
    assert metric["ci_high"] == pytest.approx(scipy_ci.high, abs=0.01)


def test_a_candidate_judged_against_another_baseline_is_refused(tmp_path: Path,
                                                                capsys: pytest.CaptureFixture) -> None:
    base, cand = (r.save(tmp_path / f"{r.model}.json") for r in judged_records([1.0, 0.5], judged_against="other"))
    assert main(["compare", str(base), str(cand)]) == 2
    assert "item 'judge-0000' of the candidate was judged against another answer than the baseline's" in \
        capsys.readouterr().err


def test_a_candidate_evaluated_without_a_reference_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    base, _ = judged_records([0.5, 0.5])
    other = RunRecord("other", "d" * 16, base.suites)
    paths = [base.save(tmp_path / "base.json"), other.save(tmp_path / "other.json")]
    assert main(["compare", *map(str, paths)]) == 2
    assert "the candidate's record holds no verdicts" in capsys.readouterr().err


@pytest.mark.parametrize(("verdicts", "expected"), [
    (("B", "A"), 1.0),         # the candidate won in both orders
    (("A", "A"), 0.5),         # the first position won both times: position bias, cancelled
    (("B", "tie"), 0.75),
    (("unparsed", "B"), 0.25),
])
def test_both_orders_combine_into_the_candidates_score(verdicts: tuple[str, str], expected: float) -> None:
    assert item_win_rate(verdicts) == expected


def test_judging_needs_a_judge_model_and_says_so_before_a_model_loads(tmp_path: Path,
                                                                       capsys: pytest.CaptureFixture) -> None:
    base, _ = judged_records([0.5, 0.5])
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text("".join(json.dumps({"prompt": f"prompt {i}"}) + "\n" for i in range(2)))
    assert main(["eval", "no/such-model", "--suites", "judge", "--suite-option", f"judge.source={prompts}",
                 "--suite-option", f"judge.reference={base.save(tmp_path / 'base.json')}",
                 "--out", str(tmp_path / "r.json")]) == 2
    assert "option 'judge_model' is needed" in capsys.readouterr().err


def test_a_reference_with_other_prompts_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    base = judged_records([0.5])[0].save(tmp_path / "base.json")
    other = tmp_path / "other.jsonl"
    other.write_text(json.dumps({"prompt": "Something else entirely."}) + "\n")
    assert main(["eval", "no/such-model", *judge_args(other, "judge"), "--suite-option", f"judge.reference={base}",
                 "--out", str(tmp_path / "r.json")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"option 'reference' ({base}): item 'judge-0000' is not the same prompt there" in err[0]


def test_a_likelihood_judgment_reads_as_the_most_likely_mark() -> None:
    from tunegate.evals.pairwise import likelihood_judgment, parse_verdict

    judgment = likelihood_judgment([-3.2, -2.1, -6.7])
    assert judgment == "[[B]] (log-likelihood A -3.200, B -2.100, C -6.700)" and parse_verdict(judgment) == "B"


@pytest.mark.slow
def test_a_served_judge_gives_the_in_process_judges_verdicts(baseline: Path, prompts: Path, organism_dir: Path,
                                                             tmp_path: Path) -> None:
    """The judge behind an OpenAI-compatible server (``transformers serve`` on localhost serving the organism; its
    chat endpoint renders the judge's chat) judges as the same model in this process, greedy: the same judgments.
    ~20 CPU s, most of it the server's start."""
    pytest.importorskip("fastapi", reason="transformers serve needs fastapi/uvicorn/openai (tunegate[serve])")
    from bench._common import TransformersServer

    records = {}
    short = "judge_system_prompt=Which answer is better? End with [[A]], [[B]] or [[C]] for a tie."  # the organism
    with TransformersServer(organism_dir, log=tmp_path / "serve.log") as server:  # serves 512 tokens: prompt too
        for name, backend in (("hf", [short]), ("served", [short, "judge_backend=openai", "judge_options="
                                                           + json.dumps({"base_url": server.base_url})])):
            out = tmp_path / f"{name}.json"
            extra = [a for option in backend for a in ("--suite-option", f"judge.{option}")]
            assert main(["eval", str(organism_dir), *judge_args(prompts, organism_dir), *extra, "--suite-option",
                         f"judge.reference={baseline}", "--out", str(out), "--quiet",
                         "--cache-dir", str(tmp_path / "cache")]) == 0
            records[name] = RunRecord.load(out).suites["judge"].items
        assert server.requests() == 2 * len(PROMPTS)  # both orders of every prompt, none from the cache
    judgments = {name: [[v["judgment"] for v in s.meta["verdicts"]] for s in items] for name, items in records.items()}
    assert judgments["served"] == judgments["hf"]


@pytest.mark.slow
def test_a_limited_candidate_is_judged_against_a_baseline_of_the_same_limit(prompts: Path, organism_dir: Path,
                                                                            tmp_path: Path) -> None:
    """~2 CPU s: both records hold the same 3 of the 8 prompts (one seeded order)."""
    base, cand = tmp_path / "base.json", tmp_path / "cand.json"
    common = [*judge_args(prompts, organism_dir), "--limit", "3", "--quiet", "--cache-dir", str(tmp_path / "cache")]
    assert main(["eval", str(organism_dir), *common, "--out", str(base)]) == 0
    assert main(["eval", str(organism_dir), *common, "--suite-option", f"judge.reference={base}",
                 "--suite-option", "judge.verdict=likelihood", "--out", str(cand)]) == 0
    items = RunRecord.load(cand).suites["judge"].items
    assert len(items) == 3 and all(len(s.meta["verdicts"]) == 2 for s in items)


@pytest.mark.slow
def test_a_real_judges_position_bias_cancels_and_swapping_the_sides_mirrors_the_score(
        smollm2_dir: Path, organism_dir: Path, prompts: Path, tmp_path: Path) -> None:
    """SmolLM2-135M-Instruct judges (by likelihood) its own answers against the organism's, the organism's against its
    own, and its own against themselves (A/A): swapping baseline and candidate mirrors every item's score (the same
    two judge prompts, roles exchanged), and the A/A is 0.5 on every item whatever the judge prefers. ~25 CPU s."""
    def evaluate(model: Path, name: str, reference: Path | None = None) -> Path:
        out = tmp_path / f"{name}.json"
        extra = ["--suite-option", f"judge.reference={reference}"] if reference else []
        assert main(["eval", str(model), *judge_args(prompts, smollm2_dir), "--limit", "4", "--suite-option",
                     "judge.verdict=likelihood", *extra, "--out", str(out), "--quiet",
                     "--cache-dir", str(tmp_path / "cache")]) == 0
        return out

    organism, smollm2 = evaluate(organism_dir, "organism"), evaluate(smollm2_dir, "smollm2")
    scores = {name: [s.scores["win_rate"] for s in RunRecord.load(path).suites["judge"].items]
              for name, path in (("smollm2 vs organism", evaluate(smollm2_dir, "a", organism)),
                                 ("organism vs smollm2", evaluate(organism_dir, "b", smollm2)),
                                 ("a/a", evaluate(smollm2_dir, "c", smollm2)))}
    assert [a + b for a, b in zip(scores["smollm2 vs organism"], scores["organism vs smollm2"])] == [1.0] * 4
    assert scores["a/a"] == [0.5] * 4
    verdicts = RunRecord.load(tmp_path / "a.json").suites["judge"].breakdowns["verdict"]
    assert verdicts["unparsed"] == 0.0  # by likelihood, every judgment is a verdict


@pytest.mark.slow
def test_a_model_judging_itself_is_loaded_once(baseline: Path, prompts: Path, organism_dir: Path, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """~3 CPU s: the organism judged by the organism on the same backend with no judge options of its own: the judge
    is the evaluated model's backend (no second load), and the verdicts are those of a separately loaded judge."""
    import tunegate.evals.suites.judge as judge_module

    loads: list[str] = []
    real_load = judge_module.load_backend
    monkeypatch.setattr(judge_module, "load_backend",
                        lambda model, *a, **k: loads.append(model) or real_load(model, *a, **k))

    def judged(*extra: str) -> list[list[str]]:
        out = tmp_path / f"judged{len(extra)}.json"
        assert main(["eval", str(organism_dir), *judge_args(prompts, organism_dir), "--limit", "4", "--suite-option",
                     f"judge.reference={baseline}", "--suite-option", "judge.verdict=likelihood", *extra,
                     "--out", str(out), "--quiet", "--no-cache"]) == 0
        return [[v["verdict"] for v in s.meta["verdicts"]] for s in RunRecord.load(out).suites["judge"].items]

    itself = judged()
    assert loads == []
    separately = judged("--suite-option", 'judge.judge_options={"batch_size": 1}')
    assert loads == [str(organism_dir)] and separately == itself
