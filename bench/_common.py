"""What the bench scripts and the tests share: the shared benchmark data (``../shared/data``), peak memory,
a real OpenAI-compatible server on localhost (``transformers serve``).

    from bench._common import SHARED_DATA, TransformersServer, peak_rss_gb
"""

from __future__ import annotations

import os
import resource
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
#: Offline copies of IFEval, GSM8K and MMLU (as conftest.py finds them for the tests).
SHARED_DATA = Path(os.environ.get("TUNEGATE_SHARED_DATA", ROOT.parent / "shared" / "data"))


def peak_rss_gb() -> float:
    """This process's peak resident memory in GB (``ru_maxrss`` is KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 ** 2


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class TransformersServer:
    """``transformers serve MODEL_DIR`` (the installed transformers' OpenAI-compatible server) on 127.0.0.1,
    started as a child process and waited for; ``requests()`` counts the requests its log has seen.

        with TransformersServer(organism_dir) as server:
            tunegate eval organism --backend openai --base-url server.base_url ...
    """

    def __init__(self, model_dir: str | Path, port: int | None = None, log: Path | None = None,
                 extra: tuple[str, ...] = (), startup_s: float = 300.0) -> None:
        import tempfile

        self.model_dir, self.port = str(model_dir), port or free_port()
        self._own_log = log is None  # a log of our own making is removed at stop()
        self.log = log or Path(tempfile.mkstemp(prefix=f"tunegate-serve-{self.port}-", suffix=".log")[1])
        self.extra, self.startup_s = extra, startup_s
        self.process: Any = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> "TransformersServer":
        import subprocess
        import sys
        import time
        import urllib.request

        cli = "import sys; from transformers.cli.transformers import main; sys.argv[0] = 'transformers'; sys.exit(main())"
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
        with open(self.log, "w") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-c", cli, "serve", self.model_dir, "--host", "127.0.0.1", "--port", str(self.port),
                 "--device", "cpu", "--log-level", "warning", *self.extra], stdout=log, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + self.startup_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"transformers serve exited with {self.process.returncode}: {self.log.read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(f"{self.base_url}/models", timeout=2):
                    return self
            except OSError:
                time.sleep(0.5)
        self.stop()
        raise RuntimeError(f"transformers serve did not answer within {self.startup_s:.0f}s: {self.log.read_text()[-2000:]}")

    def requests(self) -> int:
        """Requests the server has received so far (its log line per request)."""
        return self.log.read_text(errors="replace").count("[Request received]")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=30)
        if self._own_log:
            self.log.unlink(missing_ok=True)

    def __enter__(self) -> "TransformersServer":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()
