"""The built wheel installs one import package, ``tunegate``, holding every module and data file of the repo's folders."""

from __future__ import annotations

import configparser
import os
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE_DIRS: dict[str, str] = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-dir"]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(out), str(ROOT)], check=True, capture_output=True, text=True)
    (path,) = out.glob("tunegate-*.whl")
    return path


@pytest.fixture(scope="module")
def fresh_venv(tmp_path_factory: pytest.TempPathFactory, wheel: Path) -> Path:
    """A new virtual environment with only the wheel installed (no dependencies): its site-packages."""
    venv = tmp_path_factory.mktemp("venv")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    before = set(_site_packages(python).iterdir())
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "-q", str(wheel)],
                   check=True, capture_output=True, text=True)
    site = _site_packages(python)
    (site / ".before").write_text("\n".join(sorted(p.name for p in before)))
    return site


def _site_packages(python: Path) -> Path:
    out = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                         check=True, capture_output=True, text=True, env={"PATH": os.environ["PATH"]})
    return Path(out.stdout.strip())


def test_fresh_venv_gets_only_tunegate_and_its_dist_info(fresh_venv: Path) -> None:
    before = set((fresh_venv / ".before").read_text().split("\n")) | {".before", ""}
    added = sorted(p.name for p in fresh_venv.iterdir() if p.name not in before)
    assert [n for n in added if not n.endswith(".dist-info")] == ["tunegate"]
    assert [n for n in added if n.endswith(".dist-info")] == ["tunegate-0.1.0.dist-info"]


def test_wheel_holds_every_module_and_data_file_of_the_package_folders(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    missing = []
    for package, folder in PACKAGE_DIRS.items():
        prefix = package.replace(".", "/")
        for path in (ROOT / folder).rglob("*"):
            if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc":
                rel = path.relative_to(ROOT / folder).as_posix()
                if f"{prefix}/{rel}" not in names:
                    missing.append(f"{folder}/{rel}")
    assert not missing, f"not in the wheel: {missing}"


def test_entry_points_name_the_package_modules(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as zf:
        text = zf.read("tunegate-0.1.0.dist-info/entry_points.txt").decode()
    entry_points = configparser.ConfigParser()
    entry_points.read_string(text)
    assert entry_points["console_scripts"]["tunegate"] == "tunegate.cli:main"
    assert entry_points["pytest11"]["tunegate"] == "tunegate.pytest_plugin"
    assert entry_points["tunegate.providers"]["organism"] == "tunegate.organism.provider"


def test_installed_package_imports_from_the_fresh_venv(fresh_venv: Path) -> None:
    """The wheel's layout imports (no dependencies needed for these light modules), from its own files."""
    code = ("import tunegate.core.errors as e, tunegate.organism as o; "
            "print(e.__file__); print(o.base_checkpoint())")
    out = subprocess.run([sys.executable, "-S", "-c", f"import sys; sys.path.insert(0, {str(fresh_venv)!r}); {code}"],
                         check=True, capture_output=True, text=True, cwd=fresh_venv.parent)
    errors_file, base = out.stdout.split()
    assert errors_file.startswith(str(fresh_venv)) and base.startswith(str(fresh_venv))
    assert (Path(base) / "model.safetensors").is_file()


def test_shipped_gates_resolve_by_name_from_the_installed_package(fresh_venv: Path, tmp_path: Path) -> None:
    """`--gate dpo` finds the wheel's own copy of configs/gate.yaml, from a directory that holds no configs/."""
    code = ("import sys; sys.path.insert(0, sys.argv[1]); from tunegate.evals.gate import SHIPPED_GATES, GateConfig, gate_path; "
            "[print(gate_path(n), len(GateConfig.from_yaml(n).rules)) for n in SHIPPED_GATES]")
    out = subprocess.run([sys.executable, "-c", code, str(fresh_venv)], check=True, capture_output=True, text=True,
                         cwd=tmp_path)
    lines = [line.split() for line in out.stdout.splitlines()]
    assert [Path(path).name for path, _ in lines] == ["gate.yaml", "gate-sft.yaml"]
    assert all(path.startswith(str(fresh_venv / "tunegate" / "configs")) and int(n) > 0 for path, n in lines)
