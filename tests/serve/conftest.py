"""The real server process for the serve tests: `python -m seqshape serve` on 127.0.0.1."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]
START_SECONDS = 90.0  # bound on waiting for a server to answer /healthz


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Live:
    """One `seqshape serve` process on loopback; whoever starts it stops it (stop() or kill())."""

    def __init__(self, args: list[str], log: Path, key: str | None = None) -> None:
        self.args, self.log_path, self.key = args, log, key
        self.proc: subprocess.Popen | None = None
        self.start()

    def start(self) -> None:
        env = {**os.environ, "SEQSHAPE_THREADS": "1", "OMP_NUM_THREADS": "1"}
        for _attempt in range(3):  # a port taken between choosing and binding: choose again
            self.port = free_port()
            self.url = f"http://127.0.0.1:{self.port}"
            cmd = [sys.executable, "-m", "seqshape", "serve", *self.args]
            cmd += ["--host", "127.0.0.1", "--port", str(self.port), "--threads", "1"]
            with open(self.log_path, "a") as log:
                self.proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=log)
            if self._wait_ready():
                headers = {"Authorization": f"Bearer {self.key}"} if self.key else {}
                self.http = httpx.Client(base_url=self.url, timeout=30.0, headers=headers)
                return
            if "address already in use" not in self.log_path.read_text():
                break
        self.stop_process()
        pytest.fail(f"server did not start:\n{self.log_path.read_text()[-3000:]}")

    def _wait_ready(self) -> bool:
        deadline = time.monotonic() + START_SECONDS
        for _ in range(int(START_SECONDS / 0.05)):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                return False
            try:
                if httpx.get(f"{self.url}/healthz", timeout=2.0).status_code == 200:
                    return True
            except httpx.TransportError:
                time.sleep(0.05)
        return False

    def send_unanswered(self, path: str, body: bytes) -> None:
        """POST ``body`` and SIGKILL the server before reading the answer: applied or not,
        the client cannot know (the case a retry after a restart must settle)."""
        head = (
            f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        ).encode()
        with socket.create_connection(("127.0.0.1", self.port), timeout=10) as s:
            s.sendall(head + body)
            self.kill()

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs."""
        self.http.close()
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)

    def stop_process(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=15)

    def stop(self) -> None:
        self.stop_process()
        self.http.close()


@pytest.fixture(scope="session")
def live_server():
    """The `Live` class: ``live_server(args, log_path, key=None)`` starts a server process."""
    return Live
