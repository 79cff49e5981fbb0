"""Two records made with different ``--limit`` values compare on their common items, and compare says so."""

from __future__ import annotations

from pathlib import Path

import pytest

from tunegate.cli import main
from tunegate.evals.records import RunRecord


@pytest.mark.slow
def test_limit_20_and_limit_30_records_compare_on_the_20_common_items(tmp_path: Path, capsys) -> None:
    common = ["eval", "organism", "--suites", "math", "--suite-option", "math.variant=organism", "--quiet",
              "--cache-dir", str(tmp_path / "cache")]
    assert main([*common, "--limit", "20", "--out", str(tmp_path / "20.json")]) == 0
    assert main([*common, "--limit", "30", "--out", str(tmp_path / "30.json")]) == 0
    small, large = (RunRecord.load(tmp_path / f"{n}.json").suites["math"] for n in (20, 30))
    assert {i.item_id for i in small.items} < {i.item_id for i in large.items}
    capsys.readouterr()
    assert main(["compare", str(tmp_path / "20.json"), str(tmp_path / "30.json")]) == 0
    out = capsys.readouterr().out
    assert "math: 20 items compared (those both records hold: baseline 20, candidate 30)" in out
    assert "warning: suite 'math': compared on the 20 items both records hold" in out
    assert "10 only in the candidate" in out
