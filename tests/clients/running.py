"""A real ``partsledger serve`` in a subprocess, and a way to run the CLI against it."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class RunningServer:
    url: str
    data_dir: Path
    db_url: str
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def operator_key(self) -> Path:
        return self.data_dir / "operator.key"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_server(tmp: Path, db_url: str, *, command: str = "serve", extra: Sequence[str] = (),
                 data_dir_name: str = "server-data", new_session: bool = False) -> RunningServer:
    """``new_session``: run the server in a process group of its own, as a terminal runs a command (its
    helper processes join the group), so a test can signal the whole group like a Ctrl-C does."""
    port = free_port()
    data_dir = tmp / data_dir_name
    log = tmp / "server.log"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with log.open("wb") as handle:  # the child keeps its own copy of the descriptor
        process = subprocess.Popen(
            [sys.executable, "-m", "clients.cli", command, "--data-dir", str(data_dir), "--db", db_url,
             "--port", str(port), "--origin", "audit.test/log", *extra],
            cwd=tmp, env=env, stdout=handle, stderr=subprocess.STDOUT, start_new_session=new_session,
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited: {log.read_text()}")
        try:
            if httpx.get(f"{url}/v1/log/checkpoint", timeout=1).status_code == 200:
                return RunningServer(url, data_dir, db_url, process, log)
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    process.kill()
    raise RuntimeError(f"server did not start: {log.read_text()}")


def cli(*args: str, home: Path, env: dict[str, str] | None = None, timeout: float = 120,
        input_text: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``partsledger ARGS`` as a user would (a fresh process)."""
    full_env = {**os.environ, "PYTHONPATH": str(ROOT), "PARTSLEDGER_HOME": str(home),
                "PARTSLEDGER_PASSPHRASE": "test passphrase", "COLUMNS": "200", **(env or {})}
    return subprocess.run([sys.executable, "-m", "clients.cli", *args], env=full_env, capture_output=True,
                          text=True, timeout=timeout, input=input_text, cwd=home.parent, check=False)
