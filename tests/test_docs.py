"""Docstrings, READMEs, configs and workflows name only files that exist."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
#: A repository path in prose: a top-level folder of this repo, then a path (globs and templates are skipped).
PATH = re.compile(r"(?<![\w/.-])((?:evals|training|reports|organism|tunegate|configs|bench|tests|docs|\.github|\.ci)"
                  r"/[\w./-]*\w)")
SOURCES = ["README.md", "docs/*.md", "configs/README.md", "configs/*.yaml", ".github/workflows/*.yml", "bench/*.py",
           *(f"{folder}/**/*.py" for folder in ("evals", "training", "reports", "organism", "tunegate", "tests"))]
#: Files a test or workflow writes itself, named in prose.
WRITTEN_AT_RUN_TIME = {".github/actionlint.yaml"}


def named_paths(text: str) -> list[str]:
    return [p for p in PATH.findall(text) if not any(ch in p for ch in "*{<")]


@pytest.mark.parametrize("pattern", SOURCES)
def test_every_named_repository_file_exists(pattern: str) -> None:
    missing = [f"{path.relative_to(ROOT)}: {name}" for path in sorted(ROOT.glob(pattern))
               for name in named_paths(path.read_text(encoding="utf-8"))
               if not (ROOT / name).exists() and name not in WRITTEN_AT_RUN_TIME]
    assert not missing, "\n".join(missing)


def test_a_missing_file_is_found() -> None:
    gone = "evals" + "/data.py"  # split so this file does not name it
    assert named_paths(f"see ``{gone}`` and tunegate/pipeline.py") == [gone, "tunegate/pipeline.py"]
    assert not (ROOT / gone).exists()
