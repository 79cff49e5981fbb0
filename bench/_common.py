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


def cpu_seconds() -> float:
    """This process's user + system CPU seconds so far."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class CountingProxy:
    """A pass-through HTTP proxy on 127.0.0.1 that counts the POST requests it forwards to ``upstream_port``.

    It counts what a client sent, not what a server's log says (whose wording changes between releases:
    transformers 5.25 dropped the per-request line the old counter read). Once stopped, the port is closed
    and requests still in flight lose their connection, as a killed server's would.
    """

    def __init__(self, port: int, upstream_port: int) -> None:
        import http.server
        import threading

        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:  # quiet
                pass

            def _forward(self) -> None:
                import http.client

                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if self.command == "POST":
                    with proxy._lock:
                        proxy.count += 1
                try:
                    upstream = http.client.HTTPConnection("127.0.0.1", upstream_port, timeout=600)
                    headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")}
                    upstream.request(self.command, self.path, body=body or None, headers=headers)
                    response = upstream.getresponse()
                    data = response.read()
                except (OSError, http.client.HTTPException):  # the server is gone: drop the client's connection
                    self.close_connection = True
                    return
                self.send_response(response.status)
                for key, value in response.getheaders():
                    if key.lower() not in ("transfer-encoding", "connection", "content-length"):
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = _forward

        self.count, self._stopped = 0, False
        self._lock = threading.Lock()
        http.server.ThreadingHTTPServer.allow_reuse_address = True
        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if not self._stopped:
            self._stopped = True
            self._server.shutdown()
            self._server.server_close()


class TransformersServer:
    """``transformers serve MODEL_DIR`` (the installed transformers' OpenAI-compatible server) on 127.0.0.1,
    started as a child process and waited for, behind a ``CountingProxy`` on ``port``; ``requests()`` counts
    the requests it has been sent.

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
        self.proxy: CountingProxy | None = None

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
        inner = free_port()
        with open(self.log, "w") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-c", cli, "serve", self.model_dir, "--host", "127.0.0.1", "--port", str(inner),
                 "--device", "cpu", "--log-level", "warning", *self.extra], stdout=log, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + self.startup_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"transformers serve exited with {self.process.returncode}: {self.log.read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{inner}/v1/models", timeout=2):
                    self.proxy = CountingProxy(self.port, inner)
                    return self
            except OSError:
                time.sleep(0.5)
        self.stop()
        raise RuntimeError(f"transformers serve did not answer within {self.startup_s:.0f}s: {self.log.read_text()[-2000:]}")

    def requests(self) -> int:
        """Requests (POSTs) the server has been sent so far."""
        return self.proxy.count if self.proxy is not None else 0

    def stop(self) -> None:
        if self.proxy is not None:
            self.proxy.stop()
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=30)
        if self._own_log:
            self.log.unlink(missing_ok=True)

    def __enter__(self) -> "TransformersServer":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()
