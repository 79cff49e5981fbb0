"""Choosing a backend and its options, from each entry point: ``tunegate eval``/``run`` flags, the pipeline
config's ``eval.backend``/``eval.backend_options``, the plugin's ``--gate-backend``. An option of another
backend, an unknown backend or a backend that cannot run here is one line naming the flag or field."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.conftest import quick_config
from tunegate.cli import main
from tunegate.core.errors import TunegateError
from tunegate.training.config import load_config

pytest_plugins = ["pytester"]


def _error_line(capsys: pytest.CaptureFixture) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


def test_eval_option_of_another_backend_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    code = main(["eval", "organism", "--suites", "math", "--out", str(tmp_path / "r.json"),
                 "--base-url", "http://127.0.0.1:8000/v1"])
    assert code == 2
    assert _error_line(capsys) == "tunegate: error: option 'base_url' (--base-url) is for backend openai, not 'hf'"


def _config(tmp_path: Path, **eval_fields: object) -> Path:
    path = quick_config(tmp_path)
    data = yaml.safe_load(path.read_text())
    data["eval"].update(eval_fields)
    path.write_text(yaml.safe_dump(data))
    return path


def test_config_unknown_backend_names_the_file_and_field(tmp_path: Path) -> None:
    path = _config(tmp_path, backend="tgi")
    with pytest.raises(TunegateError, match=rf"^{path}: eval: unknown backend 'tgi' \(known: hf, openai, vllm\)$"):
        load_config(path)


def test_config_option_of_another_backend_names_the_file_and_field(tmp_path: Path) -> None:
    path = _config(tmp_path, backend="openai", backend_options={"base_url": "http://h/v1", "tensor_parallel_size": 2})
    with pytest.raises(TunegateError, match=rf"^{path}: eval: option 'tensor_parallel_size' \(--tensor-parallel-size\) "
                                            r"is for backend vllm, not 'openai'$"):
        load_config(path)


def test_config_backend_and_options_reach_the_backend(tmp_path: Path) -> None:
    config = load_config(_config(tmp_path, backend="openai", backend_options={"base_url": "http://h/v1", "concurrency": 4}))
    spec = config.eval_spec(config.stages[0])
    assert (spec.backend, spec.backend_options.given()) == ("openai", {"base_url": "http://h/v1", "concurrency": 4})


def test_config_unknown_backend_option_names_the_field_with_a_suggestion(tmp_path: Path) -> None:
    path = _config(tmp_path, backend_options={"bach_size": 8})
    with pytest.raises(TunegateError, match=rf"^{path}: eval: backend_options: unknown field 'bach_size' "
                                            r"\(did you mean 'batch_size'\?\)$"):
        load_config(path)


def test_a_config_with_the_old_batch_size_field_names_its_new_home(tmp_path: Path) -> None:
    path = _config(tmp_path, batch_size=8)
    with pytest.raises(TunegateError, match=rf"^{path}: eval: field 'batch_size' has moved to "
                                            r"eval.backend_options.batch_size$"):
        load_config(path)


def test_run_backend_flag_overrides_the_config_and_fails_in_one_line_without_vllm(
        tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    pytest.importorskip("torch")
    import importlib.util

    import torch

    if importlib.util.find_spec("vllm") is not None and torch.cuda.is_available():
        pytest.skip("vLLM and a GPU are here")
    code = main(["run", str(quick_config(tmp_path)), "--out", str(tmp_path / "run"), "--quiet", "--backend", "vllm"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and err[-1].startswith("tunegate: error: backend 'vllm': ")


def test_plugin_gate_backend_reaches_the_backend(pytester: pytest.Pytester, organism_dir: Path) -> None:
    result = pytester.runpytest("-p", "no:cacheprovider", "--gate-checkpoint", str(organism_dir),
                                "--gate-baseline", str(organism_dir), "--gate-suites", "math",
                                "--gate-backend", "hf", "--gate-base-url", "http://127.0.0.1:8000/v1")
    result.stdout.fnmatch_lines(["*tunegate: option 'base_url' (--base-url) is for backend openai, not 'hf'*"])
    assert result.ret != 0


@pytest.mark.parametrize("value", ["0", "-3"])
def test_a_batch_size_below_one_is_a_usage_error_before_any_model_loads(value, tmp_path, capsys):
    out = tmp_path / "r.json"
    assert main(["eval", "organism", "--suites", "math", "--suite-option", "math.variant=organism", "--limit", "2",
                 "--out", str(out), "--batch-size", value, "--cache-dir", str(tmp_path / "cache")]) == 2
    assert capsys.readouterr().err == f"tunegate: error: option 'batch_size' (--batch-size) must be at least 1, got {value}\n"
    assert not out.exists() and not (tmp_path / "cache").exists()


def test_a_pipeline_config_batch_size_of_zero_names_the_file(tmp_path):
    from tunegate.training import DEMO_CONFIG

    with pytest.raises(TunegateError, match=r"demo.yaml: eval: backend_options: option 'batch_size' \(--batch-size\) "
                                           r"must be at least 1, got 0"):
        load_config(DEMO_CONFIG, sets=["eval.backend_options.batch_size=0"])
