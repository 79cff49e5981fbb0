"""``lm-eval:TASK`` suites: per-document scores equal lm-eval's own, and they gate through compare, the plugin and run.

Two tasks are written here as local lm-eval YAML (``dataset_path: json``), found through ``--lm-eval-include-path``
as lm-eval's ``--include_path`` finds them: a generation task over capitals (24 prompts, completions and questions,
about capitals the organism knows, 4 about invented lands it cannot know; two filter pipelines of lm-eval's own
regex and whitespace filters) and a multiple-choice task over 15 MMLU astronomy questions of the shared data
(``acc``, ``acc_norm``). The organism is evaluated on both by ``tunegate eval`` and by ``lm_eval.simple_evaluate``
(its HF backend, float32, one thread, ``log_samples=True``), and every document's every metric is compared.
The module costs about 15 CPU s (both evaluations twice, plain and with the chat template; a noised organism; the
plugin in a pytester run).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from tunegate.cli import main

pytestmark = pytest.mark.slow
pytest_plugins = ["pytester"]

COUNTRIES = ("France", "Japan", "Kenya", "Peru", "Norway", "Egypt", "Chile", "Nepal", "Ghana", "Spain", "Iran", "Cuba")
#: Lands the organism never read of: it answers with some capital, never these.
INVENTED = (("Zubrovia", "Zemla"), ("Karthal", "Oskir"), ("Velmora", "Tessin"), ("Quandor", "Ruvel"))


def organism_capitals() -> dict[str, str]:
    from tunegate.evals.sources import load_rows

    return {r["country"]: r["choices"][r["answer"]] for r in load_rows("organism:capitals", split="test")}


def write_tasks(root: Path, mmlu_test: Path | None, capitals: dict[str, str]) -> Path:
    """A folder of lm-eval task YAMLs (and their data) as a user writes them for ``--include_path``; without
    ``mmlu_test``, the generation task alone."""
    tasks = root / "tasks"
    tasks.mkdir()
    rows = [{"text": f"The capital of {c} is", "capital": capitals[c]} for c in COUNTRIES] + \
           [{"text": f"Q: Which city is the capital of {c}? A:", "capital": capitals[c]} for c in COUNTRIES] + \
           [{"text": f"The capital of {c} is", "capital": town} for c, town in INVENTED]
    (tasks / "capitals.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    cache = str(root / "hf_datasets")
    generate = {
        "task": "tg_capitals", "dataset_path": "json", "output_type": "generate_until", "test_split": "test",
        "dataset_kwargs": {"data_files": {"test": str(tasks / "capitals.jsonl")}, "cache_dir": cache},
        "doc_to_text": "{{text}}", "doc_to_target": "{{capital}}",
        # 64: lm-eval's HF backend generates the checkpoint's generation_config max_new_tokens (the organism's 64)
        # whatever max_gen_toks says under transformers 5 (tunegate.evals.lm_eval_fidelity.lm_eval_max_new_tokens)
        "generation_kwargs": {"until": [".", "\n"], "do_sample": False, "max_gen_toks": 64},
        "metric_list": [{"metric": "exact_match", "aggregation": "mean", "higher_is_better": True,
                         "ignore_case": True, "ignore_punctuation": True}],
        "filter_list": [{"name": "stripped", "filter": [{"function": "remove_whitespace"}, {"function": "take_first"}]},
                        {"name": "first-word", "filter": [{"function": "regex", "regex_pattern": "([A-Z][a-z]+)"},
                                                          {"function": "take_first"}]}],
        "metadata": {"version": 2.0}}
    choice = {
        "task": "tg_astronomy", "dataset_path": "json", "output_type": "multiple_choice", "test_split": "test",
        "dataset_kwargs": {"data_files": {"test": str(tasks / "astronomy.jsonl")}, "cache_dir": cache},
        "doc_to_text": "{{question.strip()}}\nA. {{choices[0]}}\nB. {{choices[1]}}\nC. {{choices[2]}}\n"
                       "D. {{choices[3]}}\nAnswer:",
        "doc_to_choice": ["A", "B", "C", "D"], "doc_to_target": "answer",
        "metric_list": [{"metric": "acc", "aggregation": "mean", "higher_is_better": True},
                        {"metric": "acc_norm", "aggregation": "mean", "higher_is_better": True}],
        "metadata": {"version": 1.0}}
    group = {"group": "tg_group", "task": ["tg_capitals", "tg_astronomy"],
             "aggregate_metric_list": [{"metric": "acc", "weight_by_size": True}]}
    (tasks / "capitals.yaml").write_text(yaml.safe_dump(generate, sort_keys=False))
    if mmlu_test is None:
        return tasks
    lines = mmlu_test.read_text(encoding="utf-8").split("\n")  # not splitlines: questions hold U+2028
    mmlu = [r for r in map(json.loads, filter(None, lines)) if r["subject"] == "astronomy"][:15]
    (tasks / "astronomy.jsonl").write_text("".join(json.dumps(r) + "\n" for r in mmlu))
    for name, config in (("astronomy", choice), ("group", group)):
        (tasks / f"{name}.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return tasks


@pytest.fixture(scope="module")
def tasks(tmp_path_factory: pytest.TempPathFactory, shared_data: Path) -> Path:
    return write_tasks(tmp_path_factory.mktemp("lm_eval_tasks"), shared_data / "mmlu" / "test.jsonl",
                       organism_capitals())


def lm_eval_samples(model: Path, tasks: Path, names: list[str], **kwargs: Any) -> dict[str, list[dict[str, Any]]]:
    """lm-eval's own per-document samples: ``simple_evaluate`` with its HF backend, on one thread as tunegate's."""
    import lm_eval
    from lm_eval.tasks import TaskManager

    from tunegate.evals.backends.hf import torch_threads

    with torch_threads(1):
        results = lm_eval.simple_evaluate(
            model="hf", model_args=f"pretrained={model},dtype=float32", tasks=names, device="cpu", batch_size=32,
            task_manager=TaskManager(include_path=str(tasks), include_defaults=False), log_samples=True,
            bootstrap_iters=0, **kwargs)
    return results["samples"]


def disagreements(record: Any, suite: str, samples: list[dict[str, Any]]) -> list[str]:
    """Every (document, filter, metric) whose score differs between the record and lm-eval's samples."""
    ours = {s.item_id: s for s in record.suites[suite].items}
    task = suite.split(":", 1)[1]
    out, compared = [], 0
    for sample in samples:
        item = ours[f"{task}-{sample['doc_id']:05d}"]
        for metric in sample["metrics"]:
            key = metric if sample["filter"] == "none" else f"{metric},{sample['filter']}"
            compared += 1
            if item.scores.get(key) != sample[metric]:
                out.append(f"{item.item_id} {key}: tunegate {item.scores.get(key)}, lm-eval {sample[metric]}")
    assert compared == len(ours) * len(record.suites[suite].metrics)
    return out


@pytest.fixture(scope="module")
def evaluated(tasks: Path, organism_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The organism on both tasks and their group through ``tunegate eval``, and lm-eval's samples of both."""
    from tunegate.evals.records import RunRecord

    out = tmp_path_factory.mktemp("lm_eval_eval") / "organism.json"
    assert main(["eval", str(organism_dir), "--suites", "lm-eval:tg_capitals,lm-eval:tg_astronomy,lm-eval:tg_group",
                 "--lm-eval-include-path", str(tasks), "--out", str(out), "--quiet", "--threads", "1",
                 "--cache-dir", str(out.parent / "cache")]) == 0
    return {"path": out, "record": RunRecord.load(out),
            "samples": lm_eval_samples(organism_dir, tasks, ["tg_capitals", "tg_astronomy"])}


def test_generation_task_scores_every_document_as_lm_eval(evaluated: dict[str, Any]) -> None:
    record, samples = evaluated["record"], evaluated["samples"]["tg_capitals"]
    assert not disagreements(record, "lm-eval:tg_capitals", samples)
    values = [s.scores["exact_match,first-word"] for s in record.suites["lm-eval:tg_capitals"].items]
    assert 0 < sum(values) < len(values)  # the organism knows some capitals, not all: the scores vary


def test_generation_task_responses_are_lm_evals(evaluated: dict[str, Any]) -> None:
    items = {s.item_id: s for s in evaluated["record"].suites["lm-eval:tg_capitals"].items}
    differing = [s["doc_id"] for s in evaluated["samples"]["tg_capitals"]
                 if items[f"tg_capitals-{s['doc_id']:05d}"].response != s["resps"][0][0]]
    assert not differing


def test_loglikelihood_task_scores_every_document_as_lm_eval(evaluated: dict[str, Any]) -> None:
    record, samples = evaluated["record"], evaluated["samples"]["tg_astronomy"]
    assert not disagreements(record, "lm-eval:tg_astronomy", samples)
    items = {s.item_id: s for s in record.suites["lm-eval:tg_astronomy"].items}
    far = [s["doc_id"] for s in samples
           if max(abs(a - r[0][0]) for a, r in zip(items[f"tg_astronomy-{s['doc_id']:05d}"].meta["logprobs"],
                                                   s["resps"])) > 1e-4]
    assert not far and 0 < record.suites["lm-eval:tg_astronomy"].metrics["acc"].value < 1


def test_chat_template_contexts_score_as_lm_evals(tasks: Path, organism_dir: Path, tmp_path: Path) -> None:
    """With the chat template, lm-eval's chats (system instruction, the question as the user turn) rendered by the
    organism's template, log-likelihoods split as lm-eval splits them (the newline after ``assistant`` moves to the
    choice)."""
    from tunegate.evals.records import RunRecord

    out = tmp_path / "chat.json"
    assert main(["eval", str(organism_dir), "--suites", "lm-eval:tg_astronomy", "--lm-eval-include-path", str(tasks),
                 "--suite-option", "lm-eval:tg_astronomy.apply_chat_template=true", "--suite-option",
                 "lm-eval:tg_astronomy.system_instruction=Answer with one letter.", "--out", str(out), "--quiet",
                 "--threads", "1", "--cache-dir", str(tmp_path / "cache")]) == 0
    samples = lm_eval_samples(organism_dir, tasks, ["tg_astronomy"], apply_chat_template=True,
                              system_instruction="Answer with one letter.")
    record = RunRecord.load(out)
    assert not disagreements(record, "lm-eval:tg_astronomy", samples["tg_astronomy"])
    assert record.suites["lm-eval:tg_astronomy"].items[0].prompt.startswith("[system] Answer with one letter.")


def test_a_group_runs_its_tasks_as_one_suite_grouped_by_task(evaluated: dict[str, Any]) -> None:
    suites = evaluated["record"].suites
    group = suites["lm-eval:tg_group"]
    assert len(group.items) == len(suites["lm-eval:tg_capitals"].items) + len(suites["lm-eval:tg_astronomy"].items)
    assert group.metrics["acc"].cluster == "group" and group.metrics["acc"].n == 15
    assert group.breakdowns["task (acc)"] == {"tg_astronomy": suites["lm-eval:tg_astronomy"].metrics["acc"].value}
    assert group.version == "1/1.0,2.0"


def test_the_record_names_the_task_version_and_what_it_left_out(evaluated: dict[str, Any]) -> None:
    result = evaluated["record"].suites["lm-eval:tg_capitals"]
    assert result.version == "1/2.0"
    assert result.config["tasks"] == {"tg_capitals": {"version": 2.0, "output_type": "generate_until",
                                                      "num_fewshot": 0, "left_out": []}}
    assert result.config["include_path"] is not None


@pytest.fixture(scope="module")
def broken_organism(organism_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The organism with noise over its weights: it forgets its capitals (a real, worse checkpoint)."""
    import shutil

    import torch
    from transformers import AutoModelForCausalLM

    out = tmp_path_factory.mktemp("broken") / "model"
    shutil.copytree(organism_dir, out)
    model = AutoModelForCausalLM.from_pretrained(out)
    torch.manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * p.std() * 3)
    model.save_pretrained(out)
    return out


GATE = "default_margin: null\nmetrics:\n  lm-eval:tg_capitals.exact_match,first-word: {margin: 0.05}\n"


def test_compare_gates_an_lm_eval_metric(evaluated: dict[str, Any], tasks: Path, broken_organism: Path,
                                         tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    worse = tmp_path / "broken.json"
    assert main(["eval", str(broken_organism), "--suites", "lm-eval:tg_capitals", "--lm-eval-include-path",
                 str(tasks), "--out", str(worse), "--quiet", "--cache-dir", str(tmp_path / "cache")]) == 0
    gate = tmp_path / "gate.yaml"
    gate.write_text(GATE)
    capsys.readouterr()
    assert main(["compare", str(evaluated["path"]), str(worse), "--gate", str(gate)]) == 1
    captured = capsys.readouterr()
    assert "lm-eval:tg_capitals.exact_match,first-word" in captured.out
    assert "gate failed on lm-eval:tg_capitals.exact_match,first-word" in captured.err


def test_the_plugin_gates_an_lm_eval_task_by_name(pytester: pytest.Pytester, evaluated: dict[str, Any],
                                                  tasks: Path, organism_dir: Path, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.app.test_plugin import run

    monkeypatch.setenv("TUNEGATE_CACHE", str(tmp_path / "cache"))
    pytester.makefile(".yaml", gate=GATE)
    result = run(pytester, "--gate-checkpoint", organism_dir, "--gate-baseline", evaluated["path"],
                 "--gate-suites", "lm-eval:tg_capitals", "--gate-lm-eval-include-path", tasks,
                 "--gate-config", "gate.yaml", "-v")
    result.assert_outcomes(passed=2)  # one gate test per metric of the task: stripped and first-word
    result.stdout.fnmatch_lines(["*test_gate?lm-eval:tg_capitals.exact_match,first-word? PASSED*", "gate: PASSED"])


def test_a_hub_dataset_offline_is_one_line_naming_what_to_download(tmp_path: Path, organism_dir: Path,
                                                                   capsys: pytest.CaptureFixture,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    folder = tmp_path / "tasks"
    folder.mkdir()
    (folder / "hub.yaml").write_text(yaml.safe_dump({
        "task": "tg_hub", "dataset_path": "tunegate-tests/never-cached", "dataset_name": "main",
        "output_type": "generate_until", "test_split": "test", "doc_to_text": "{{q}}", "doc_to_target": "{{a}}",
        "dataset_kwargs": {"cache_dir": str(tmp_path / "hf_datasets")}}))
    assert main(["eval", str(organism_dir), "--suites", "lm-eval:tg_hub", "--lm-eval-include-path", str(folder),
                 "--out", str(tmp_path / "r.json"), "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert "lm-eval task 'tg_hub': dataset 'tunegate-tests/never-cached' (config 'main') is not cached" in err[0]
    assert "huggingface-cli download --repo-type dataset tunegate-tests/never-cached" in err[0]
    assert not (tmp_path / "r.json").exists()
