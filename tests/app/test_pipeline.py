"""The pipeline end to end in a quick mode, and its bad inputs, through the real CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from tunegate.cli import main
from tunegate.evals.records import Comparison, RunRecord
from tests.conftest import quick_config


@pytest.mark.slow
def test_quick_pipeline_writes_records_comparisons_summary_and_report(quick_run) -> None:
    out, code = quick_run
    assert code in (0, 1)
    assert sorted(p.stem for p in (out / "records").glob("*.json")) == ["base", "dpo", "sft"]
    comparisons = {p.stem: Comparison.load(p) for p in (out / "comparisons").glob("*.json")}
    assert set(comparisons) == {"sft_vs_base", "dpo_vs_sft"}
    assert comparisons["dpo_vs_sft"].trains == ("identity",)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["stages"] == ["base", "sft", "dpo"]
    assert set(summary["metrics"]["dpo"]) >= {"identity.adherence", "math.exact_match", "knowledge.accuracy"}
    assert (out / "report.html").is_file()
    assert code == (0 if summary["passed"] else 1)


@pytest.mark.slow
def test_dpo_comparison_scores_the_input_model_against_the_new_target(quick_run) -> None:
    out, _ = quick_run
    baseline = RunRecord.load(out / "baselines" / "dpo_vs_sft.json")
    assert baseline.suites["identity"].config["target"] == "Deep Tiny"
    assert RunRecord.load(out / "records" / "sft.json").suites["identity"].config["target"] == "Tiny"


@pytest.mark.slow
def test_stage_outputs_include_manifest_and_training_log(quick_run) -> None:
    out, _ = quick_run
    manifest = json.loads((out / "stages" / "dpo" / "manifest.json").read_text())
    assert manifest["method"] == "dpo" and manifest["input_stage"] == "sft" and manifest["trains"] == ["identity"]
    assert json.loads((out / "stages" / "dpo" / "dpo_pairs.json").read_text())["report"]["kept"] == 6


def test_missing_config_exits_2_with_one_line(tmp_path: Path, capsys) -> None:
    assert main(["run", str(tmp_path / "missing.yaml"), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "missing.yaml: config file not found" in err[0]


def test_model_path_that_does_not_exist_exits_2(tmp_path: Path, capsys) -> None:
    cfg = quick_config(tmp_path, base_model=str(tmp_path / "no-such-model"))
    assert main(["run", str(cfg), "--out", str(tmp_path / "o")]) == 2
    assert "no-such-model' does not exist" in capsys.readouterr().err


def test_dataset_missing_fields_exits_2_before_training(tmp_path: Path, capsys) -> None:
    bad = tmp_path / "sft.jsonl"
    bad.write_text(json.dumps({"prompt": "hi", "completion": "hello"}) + "\n")
    data = yaml.safe_load(quick_config(tmp_path).read_text())
    data["stages"][0]["data"] = str(bad)
    cfg = tmp_path / "bad.yaml"
    cfg.write_text(yaml.safe_dump(data))
    assert main(["run", str(cfg), "--out", str(tmp_path / "o")]) == 2
    assert "sft.jsonl row 0: missing field 'messages'" in capsys.readouterr().err
    assert not (tmp_path / "o" / "records").exists()


@pytest.mark.slow
def test_pipeline_stores_every_stage_and_comparison_under_its_model_line(quick_run) -> None:
    from tunegate.evals.store import Store

    out, _ = quick_run
    with Store(out.parent / "store.sqlite") as store:
        runs = store.runs("organism-demo")  # the demo config's model_line
        assert [r.stage for r in runs] == ["base", "sft", "dpo"]
        ids = {r.stage: r.run_id for r in runs}
        for stage, run_id in ids.items():
            assert store.get_run(run_id) == RunRecord.load(out / "records" / f"{stage}.json")
        stored = {store.comparison_runs(c): store.get_comparison(c) for c in store.comparison_ids("organism-demo")}
    assert stored == {(ids["base"], ids["sft"]): Comparison.load(out / "comparisons" / "sft_vs_base.json"),
                      (ids["sft"], ids["dpo"]): Comparison.load(out / "comparisons" / "dpo_vs_sft.json")}


def test_failure_mid_pipeline_keeps_records_already_written(tmp_path: Path) -> None:
    data = yaml.safe_load(quick_config(tmp_path).read_text())
    data["stages"][1]["data"].update(old_name="Zorblax", drop_unchanged=True)  # fails only after SFT
    cfg = tmp_path / "late.yaml"
    cfg.write_text(yaml.safe_dump(data))
    out = tmp_path / "o"
    assert main(["run", str(cfg), "--out", str(out), "--max-steps", "1", "--quiet", "--no-report",
                 "--cache-dir", str(tmp_path / "cache"), "--store", str(tmp_path / "store.sqlite")]) == 2
    assert (out / "records" / "base.json").is_file() and (out / "records" / "sft.json").is_file()
    assert "no usable pairs" in json.loads((out / "summary.json").read_text())["error"]
    assert not (tmp_path / "store.sqlite").exists()  # the store only takes whole pipelines


def test_tokenizer_without_chat_template_exits_2_naming_the_file(organism_copy: Path, tmp_path: Path, capsys) -> None:
    config = organism_copy / "tokenizer_config.json"
    data = json.loads(config.read_text())
    data.pop("chat_template", None)
    config.write_text(json.dumps(data))
    (organism_copy / "chat_template.jinja").unlink(missing_ok=True)
    cfg = quick_config(tmp_path, base_model=str(organism_copy))
    assert main(["run", str(cfg), "--out", str(tmp_path / "o")]) == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("tunegate: error")]
    assert len(errors) == 1 and "tokenizer has no chat template" in errors[0] and str(organism_copy) in errors[0]


@pytest.mark.slow
def test_a_reused_run_directory_holds_only_the_new_run(quick_run, tmp_path: Path) -> None:
    # ~25 CPU s: the quick run's directory (base -> sft -> dpo) reused by a config with the SFT stage only
    import shutil

    from tunegate.reports.loading import load_run_dir

    out = Path(shutil.copytree(quick_run[0], tmp_path / "run"))
    data = yaml.safe_load(quick_config(tmp_path).read_text())
    data["stages"] = data["stages"][:1]
    cfg = tmp_path / "sft-only.yaml"
    cfg.write_text(yaml.safe_dump(data))
    assert main(["run", str(cfg), "--out", str(out), "--max-steps", "1", "--quiet",
                 "--cache-dir", str(quick_run[0].parent / "cache"), "--store", str(tmp_path / "store.sqlite")]) in (0, 1)
    assert sorted(p.stem for p in (out / "records").glob("*.json")) == ["base", "sft"]
    assert sorted(p.stem for p in (out / "comparisons").glob("*.json")) == ["sft_vs_base"]
    assert not (out / "stages" / "dpo").exists() and not list((out / "baselines").glob("*.json"))
    shown = load_run_dir(out)  # what report.html was rendered from
    assert [r.stage for r in shown.records] == ["base", "sft"] and len(shown.comparisons) == 1
    assert set(shown.training_logs) == {"sft"} and (out / "report.html").is_file()
