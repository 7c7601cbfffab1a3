"""The Go interop tool, built once per session (offline, GOPATH mode)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

SOURCE = Path(__file__).parent / "tlogcheck"
GOPATH = Path("/usr/share/gocode")


@pytest.fixture(scope="session")
def tlogcheck(tmp_path_factory: pytest.TempPathFactory) -> Path:
    go = shutil.which("go")
    if go is None:
        pytest.skip("the Go toolchain is not installed (apt-get install golang-go golang-golang-x-mod-dev)")
    if not (GOPATH / "src/golang.org/x/mod/sumdb/tlog").is_dir():
        pytest.fail(f"golang.org/x/mod is missing under {GOPATH}; install golang-golang-x-mod-dev")
    out = tmp_path_factory.mktemp("tlogcheck")
    env = {
        **os.environ,
        "GO111MODULE": "off",
        "GOPATH": str(GOPATH),
        "GOPROXY": "off",
        "GOFLAGS": "",
        "GOCACHE": str(out / "gocache"),
        "CGO_ENABLED": "0",
    }
    binary = out / "tlogcheck"
    subprocess.run([go, "build", "-o", str(binary), "."], cwd=SOURCE, env=env, check=True, timeout=300)
    return binary
