"""What the figures were measured on: CPU, memory, disk, library and database versions.

Throughput figures mean little without the machine beside them, so every
run records it in the results file.
"""

from __future__ import annotations

import os
import platform
import sqlite3
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import nacl


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _memory_mb() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) // 1024
    except OSError:
        pass
    return None


def filesystem_of(path: Path) -> dict[str, str]:
    """The mount (device, mount point, type) holding ``path``: tmpfs would make fsync free."""
    best = {"device": "unknown", "mount": "/", "type": "unknown"}
    target = str(path.resolve())
    try:
        mounts = Path("/proc/mounts").read_text().splitlines()
    except OSError:
        return best
    longest = -1
    for line in mounts:
        parts = line.split()
        if len(parts) < 3:
            continue
        device, mount, fstype = parts[0], parts[1], parts[2]
        if (target == mount or target.startswith(mount.rstrip("/") + "/")) and len(mount) > longest:
            longest = len(mount)
            best = {"device": device, "mount": mount, "type": fstype}
    return best


def _git_commit(repo: Path) -> str | None:
    try:
        done = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True, timeout=10,
                              check=False)
    except OSError:
        return None
    return done.stdout.strip() or None


def machine_info(workdir: Path, repo: Path) -> dict[str, Any]:
    return {
        "measured_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "git_commit": _git_commit(repo),
        "cpu_model": _cpu_model(),
        "logical_cpus": os.cpu_count(),
        "load_average_at_start": list(os.getloadavg()),
        "memory_mb": _memory_mb(),
        "os": platform.platform(),
        "python": platform.python_version(),
        "pynacl": nacl.__version__,
        "sqlite": sqlite3.sqlite_version,
        "workdir_filesystem": filesystem_of(workdir),
    }
