"""What the bench scripts and the tests share: the shared benchmark data (``../shared/data``), peak memory.

    from bench._common import SHARED_DATA, peak_rss_gb
"""

from __future__ import annotations

import os
import resource
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: Offline copies of IFEval, GSM8K and MMLU (as conftest.py finds them for the tests).
SHARED_DATA = Path(os.environ.get("TUNEGATE_SHARED_DATA", ROOT.parent / "shared" / "data"))


def peak_rss_gb() -> float:
    """This process's peak resident memory in GB (``ru_maxrss`` is KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 ** 2
