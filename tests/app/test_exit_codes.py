"""Every way a command stops is one line on stderr and the exit code CI reads right: 0 pass, 1 gate failed
(only that), 2 bad input, 3 internal error. Each case was a traceback with exit 1 ("gate failed") before.

Disk full is made real with ``RLIMIT_FSIZE`` in a subprocess (writes past the limit fail with EFBIG, "File
too large", once SIGXFSZ is ignored), a read-only store by a file the writing process may not write.
"""

from __future__ import annotations

import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import torch

from tunegate.cli import main
from tests.evals.test_compare_records import make_record

REPO = Path(__file__).resolve().parents[2]


def eval_argv(model: Path | str, out: Path, *extra: str) -> list[str]:
    """``tunegate eval`` on two items of the organism's math suite."""
    return ["eval", str(model), "--suites", "math", "--suite-option", "math.variant=organism", "--limit", "2",
            "--out", str(out), *extra]


def one_error_line(err: str) -> str:
    """The error line; there is exactly one tunegate line and no traceback."""
    lines = [line for line in err.splitlines() if line.startswith("tunegate:")]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def tunegate(argv: list[str], *, cwd: Path, fsize: int | None = None, as_nobody: bool = False,
             env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``python -m tunegate ARGV`` in a fresh process: with a file-size limit of ``fsize`` bytes (a full disk
    for every file it writes), or as the user nobody (util-linux's setpriv, which finds the interpreter
    before it drops root's rights)."""
    def limits() -> None:
        if fsize is not None:
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails (EFBIG), not the process
            resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))

    prefix = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"] if as_nobody else []
    return subprocess.run([*prefix, sys.executable, "-m", "tunegate", *argv], cwd=cwd, capture_output=True,
                          text=True, timeout=600, preexec_fn=limits, env={**os.environ, **(env or {})})


def test_unknown_dtype_is_one_line_exit_2(tmp_path, capsys):
    assert main(eval_argv("organism", tmp_path / "r.json", "--dtype", "float8")) == 2
    assert "--dtype 'float8': not one of bfloat16, float16, float32" in one_error_line(capsys.readouterr().err)
    assert not (tmp_path / "r.json").exists()


@pytest.mark.skipif(torch.cuda.device_count() > 7, reason="this machine has a cuda:7")
def test_a_cuda_device_this_machine_lacks_is_one_line_exit_2(tmp_path, capsys):
    assert main(eval_argv("organism", tmp_path / "r.json", "--device", "cuda:7")) == 2
    assert "--device cuda:7: " in one_error_line(capsys.readouterr().err)


def test_a_truncated_safetensors_file_is_one_line_exit_2(organism_copy, tmp_path, capsys):
    weights = organism_copy / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    assert main(eval_argv(organism_copy, tmp_path / "r.json", "--no-cache")) == 2
    line = one_error_line(capsys.readouterr().err)
    assert f"model '{organism_copy}': cannot read its safetensors weights" in line and "truncated or corrupt" in line


class _Payload:
    """Pickled, this runs ``touch MARKER`` when unpickled (what a malicious pytorch_model.bin does)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_pickled_weights_that_run_code_are_refused_in_one_line(organism_copy, tmp_path, capsys):
    marker = tmp_path / "PWNED"
    (organism_copy / "model.safetensors").unlink()
    torch.save({"model.embed_tokens.weight": _Payload(marker)}, organism_copy / "pytorch_model.bin")
    assert main(eval_argv(organism_copy, tmp_path / "r.json", "--no-cache")) == 2
    line = one_error_line(capsys.readouterr().err)
    assert "refused its pickled weights (*.bin)" in line and "GLOBAL posix.system" in line
    assert not marker.exists()


def test_eval_out_an_existing_directory_is_found_before_the_eval_runs(tmp_path, capsys):
    (tmp_path / "out").mkdir()
    cache = tmp_path / "cache"
    assert main(eval_argv("organism", tmp_path / "out", "--cache-dir", str(cache))) == 2
    assert f"--out {tmp_path / 'out'}: is a directory; give a file path" in one_error_line(capsys.readouterr().err)
    assert not cache.exists()  # no model ran: the response cache was never opened


def test_disk_full_on_out_keeps_the_old_file_and_leaves_no_temporary_file(tmp_path):
    base = make_record(31, suites=("math",)).save(tmp_path / "base.json")
    same = make_record(32, model="same", like=make_record(31, suites=("math",)), suites=("math",))
    same.save(tmp_path / "same.json")
    (tmp_path / "prev.json").write_text('{"old": true}\n')
    proc = tunegate(["compare", str(base), str(tmp_path / "same.json"), "--out", "prev.json"], cwd=tmp_path,
                    fsize=1024)  # the comparison is a few KB
    assert proc.returncode == 2, proc.stderr
    assert f"{Path('prev.json')}: cannot write (File too large)" in one_error_line(proc.stderr)
    assert (tmp_path / "prev.json").read_text() == '{"old": true}\n'
    assert sorted(p.name for p in tmp_path.iterdir()) == ["base.json", "prev.json", "same.json"]


@pytest.mark.slow
def test_a_cache_that_cannot_grow_is_one_warning_and_the_eval_finishes(tmp_path):
    # ~8 CPU s: one organism eval in a fresh process. SQLite's first write (a 4 KiB page) passes the limit;
    # the record (~2.5 KB) does not.
    proc = tunegate(eval_argv("organism", tmp_path / "r.json", "--cache-dir", str(tmp_path / "cache")),
                    cwd=tmp_path, fsize=4000)
    assert proc.returncode == 0, proc.stderr
    warning = [line for line in proc.stderr.splitlines() if "response cache not writable" in line]
    assert len(warning) == 1 and str(tmp_path / "cache" / "responses.sqlite") in warning[0]
    assert "Traceback" not in proc.stderr and (tmp_path / "r.json").is_file()


def test_a_read_only_store_is_one_line_exit_2(tmp_path):
    # root may write any file: the writer then runs as nobody, in a folder nobody may enter
    root = os.geteuid() == 0
    if root and shutil.which("setpriv") is None:
        pytest.skip("running as root without setpriv (util-linux): no way to make a file read-only to the writer")
    folder = Path(tempfile.mkdtemp()) if root else tmp_path
    try:
        record = make_record(41, suites=("math",)).save(folder / "r.json")
        assert main(["store", "add", str(record), "--model-line", "tiny", "--store", str(folder / "s.sqlite")]) == 0
        (folder / "s.sqlite").chmod(0o444)
        folder.chmod(0o777)
        proc = tunegate(["store", "add", str(record), "--model-line", "other", "--store", str(folder / "s.sqlite")],
                        cwd=folder, as_nobody=root, env={"HOME": str(folder)})
        assert proc.returncode == 2, proc.stderr
        line = one_error_line(proc.stderr)
        assert f"{folder / 's.sqlite'}: cannot write the results store (attempt to write a readonly database)" in line
    finally:
        if root:
            shutil.rmtree(folder)


def test_stages_not_a_list_with_limit_is_one_line_exit_2(tmp_path, capsys):
    config = tmp_path / "c.yaml"
    config.write_text("name: x\nbase_model: organism\nstages: 5\n")
    assert main(["run", str(config), "--out", str(tmp_path / "run"), "--limit", "3"]) == 2
    assert f"{config}: field 'stages' must be a list, got int (5)" in one_error_line(capsys.readouterr().err)


def _buggy_suite():
    """A suite registered from outside tunegate whose scorer has a bug (a KeyError)."""
    from tunegate.evals.suites.math import ArithmeticSuite

    class Buggy(ArithmeticSuite):
        name = "buggy"

        def score(self, item, response):
            return {}["no such key"]

    return Buggy


def test_an_unexpected_exception_is_one_line_exit_3_never_1(tmp_path, capsys, monkeypatch):
    from tunegate.evals.suites import SUITES

    monkeypatch.setitem(SUITES._loaded, "buggy", _buggy_suite())
    argv = ["eval", "organism", "--suites", "buggy", "--limit", "2", "--out", str(tmp_path / "r.json"), "--no-cache"]
    assert main(argv) == 3
    line = one_error_line(capsys.readouterr().err)
    assert line == "tunegate: internal error: KeyError: 'no such key' (set TUNEGATE_DEBUG=1 for the traceback)"
    monkeypatch.setenv("TUNEGATE_DEBUG", "1")
    assert main(argv) == 3
    assert "Traceback (most recent call last)" in capsys.readouterr().err
