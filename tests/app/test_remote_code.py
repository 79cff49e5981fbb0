"""A checkpoint's own Python code (config.json ``auto_map``) runs only when asked, and never after a prompt.

The checkpoint here is the organism under a model type transformers does not know, whose ``auto_map`` points
at a configuration and a modeling file that write a marker file when imported (and then define the
organism's Llama under that type). The commands run in fresh processes with stdin answering "y", as
``yes | tunegate eval ./ckpt`` did when that imported the file.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tunegate.cli import main

MARKER = "imported.txt"


@pytest.fixture()
def custom_code_checkpoint(organism_dir: Path, tmp_path: Path) -> Path:
    ckpt = tmp_path / "custom"
    shutil.copytree(organism_dir, ckpt)
    config = json.loads((ckpt / "config.json").read_text())
    config.update(model_type="tunegate_marker", architectures=["MarkerForCausalLM"],
                  auto_map={"AutoConfig": "configuration_marker.MarkerConfig",
                            "AutoModelForCausalLM": "modeling_marker.MarkerForCausalLM"})
    (ckpt / "config.json").write_text(json.dumps(config))
    touch = f"from pathlib import Path\nPath({str(tmp_path / MARKER)!r}).write_text('imported')\n"
    (ckpt / "configuration_marker.py").write_text(
        touch + "from transformers import LlamaConfig\n\n\nclass MarkerConfig(LlamaConfig):\n"
                "    model_type = 'tunegate_marker'\n")
    (ckpt / "modeling_marker.py").write_text(
        touch + "from transformers import LlamaForCausalLM\n\nfrom .configuration_marker import MarkerConfig\n\n\n"
                "class MarkerForCausalLM(LlamaForCausalLM):\n    config_class = MarkerConfig\n")
    return ckpt


def eval_in_a_fresh_process(model: Path, out: Path, *flags: str) -> subprocess.CompletedProcess[str]:
    """``yes | tunegate eval MODEL ...`` with transformers' module cache beside ``out``."""
    argv = [sys.executable, "-m", "tunegate", "eval", str(model), "--suites", "math", "--suite-option",
            "math.variant=organism", "--limit", "2", "--out", str(out), "--no-cache", *flags]
    env = {**os.environ, "HF_MODULES_CACHE": str(out.parent / "modules")}
    return subprocess.run(argv, input="y\n" * 100, capture_output=True, text=True, timeout=600, env=env)


@pytest.mark.slow
def test_custom_code_without_opt_in_is_one_line_exit_2_and_never_imported(custom_code_checkpoint, tmp_path):
    # ~7 CPU s: one fresh process that loads torch and transformers
    proc = eval_in_a_fresh_process(custom_code_checkpoint, tmp_path / "r.json")
    assert proc.returncode == 2, proc.stderr
    (line,) = [x for x in proc.stderr.splitlines() if x.startswith("tunegate:")]
    assert line == (f"tunegate: error: model '{custom_code_checkpoint}': ships its own Python code (config.json "
                    "auto_map), which tunegate runs only when asked: give --trust-remote-code (a pipeline config: "
                    "trust_remote_code: true) if you trust its source")
    assert not (tmp_path / MARKER).exists() and not (tmp_path / "r.json").exists()


@pytest.mark.slow
def test_trust_remote_code_runs_it_and_the_record_says_so(custom_code_checkpoint, tmp_path):
    # ~8 CPU s: the same process with the opt-in evaluates the custom class
    proc = eval_in_a_fresh_process(custom_code_checkpoint, tmp_path / "r.json", "--trust-remote-code")
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / MARKER).read_text() == "imported"
    assert json.loads((tmp_path / "r.json").read_text())["generation"]["trust_remote_code"] is True


def test_a_record_says_when_no_remote_code_was_trusted(tmp_path):
    assert main(["eval", "organism", "--suites", "math", "--suite-option", "math.variant=organism", "--limit", "2",
                 "--out", str(tmp_path / "r.json"), "--no-cache"]) == 0
    assert json.loads((tmp_path / "r.json").read_text())["generation"]["trust_remote_code"] is False


def test_a_known_architecture_with_auto_map_loads_natively_without_running_its_code(custom_code_checkpoint,
                                                                                      tmp_path):
    # a hub checkpoint often names custom code for older transformers while its model type is built in:
    # without the opt-in transformers' own class loads and the shipped file is never imported
    config = json.loads((custom_code_checkpoint / "config.json").read_text())
    config.update(model_type="llama", architectures=["LlamaForCausalLM"])
    (custom_code_checkpoint / "config.json").write_text(json.dumps(config))
    assert main(["eval", str(custom_code_checkpoint), "--suites", "math", "--suite-option", "math.variant=organism",
                 "--limit", "2", "--out", str(tmp_path / "r.json"), "--no-cache"]) == 0
    assert not (tmp_path / MARKER).exists()


def test_a_pipeline_config_opts_in_at_its_top_level_only(tmp_path, capsys):
    config = tmp_path / "c.yaml"
    config.write_text("name: x\nbase_model: organism\neval:\n  suites: {math: {variant: organism}}\n"
                      "  backend_options: {trust_remote_code: true}\n"
                      "stages:\n  - {name: sft, method: sft, data: 'organism:sft'}\n")
    assert main(["run", str(config), "--out", str(tmp_path / "run")]) == 2
    assert (f"{config}: eval.backend_options.trust_remote_code: set trust_remote_code at the top level of the "
            "config (it covers training as well)") in capsys.readouterr().err


@pytest.mark.slow
def test_a_pipeline_without_the_opt_in_stops_at_the_custom_code_before_training(custom_code_checkpoint, tmp_path,
                                                                                capsys):
    # ~3 CPU s: the run stops when the base model loads for its first eval
    config = tmp_path / "c.yaml"
    config.write_text(f"name: x\nbase_model: {custom_code_checkpoint}\neval:\n  suites: {{math: {{variant: organism, "
                      f"limit: 2}}}}\nstages:\n  - {{name: sft, method: sft, data: 'organism:sft'}}\n")
    assert main(["run", str(config), "--out", str(tmp_path / "run"), "--no-report"]) == 2
    assert "ships its own Python code (config.json auto_map)" in capsys.readouterr().err
    assert not (tmp_path / MARKER).exists() and not (tmp_path / "run" / "stages").exists()
