"""Time the organism demo end to end: each phase, peak memory, and ``demo_seconds`` last.

    python bench/demo.py            # fresh cache, so every generation really runs
    ...
    train sft          35.8 s
    peak_rss_mb: 835
    demo_seconds: 52.8

Targets (issue 2): the whole demo in at most 5 minutes on 2 CPU cores, peak memory under 4 GB.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import peak_rss_gb, use_shared_nltk_data  # noqa: E402


def main() -> int:
    from tunegate.cli.pipeline import go_offline
    from tunegate.training import DEMO_CONFIG
    from tunegate.training.config import load_config
    from tunegate.pipeline import run_pipeline

    go_offline()
    use_shared_nltk_data()
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        result = run_pipeline(load_config(DEMO_CONFIG), Path(tmp) / "run", cache_dir=Path(tmp) / "cache",
                              progress=False)
        seconds = time.perf_counter() - start
    for phase, took in result.phases.items():
        print(f"{phase:<18} {took:6.1f} s")
    for name, comp in result.comparisons.items():
        print(f"{name}: {'passed' if comp.passed else 'FAILED'}")
    print(f"peak_rss_mb: {peak_rss_gb() * 1024:.0f}")
    print(f"demo_seconds: {seconds:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
