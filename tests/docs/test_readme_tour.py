"""The README's five-minute tour runs, line for line, against a served demo world."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

from tests.clients.running import ROOT, start_server


def tour_script() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    block = re.search(r"<!-- tour -->\n```sh\n(.*?)```", text, re.S)
    assert block is not None, "README has no tour block"
    return block.group(1)


def test_the_readme_tour_runs_against_the_demo(tmp_path: Path, db_url: str) -> None:
    server = start_server(tmp_path, db_url, command="demo", data_dir_name="partsledger-data")
    try:
        labels = dict(re.findall(r"^  (\w+)\s+(http://\S+)$", server.log.read_text(), re.M))
        script = tour_script()
        assert "LABEL='paste" in script and "http://127.0.0.1:8000" in script
        lines = []
        for line in script.splitlines():
            if line.startswith("LABEL="):
                line = f"LABEL={shlex.quote(labels['genuine'])}"
            elif line.startswith("partsledger verify"):
                line = line.replace("partsledger verify", f"partsledger verify --db {shlex.quote(db_url)}", 1)
            line = re.sub(r"^partsledger ", f"{shlex.quote(sys.executable)} -m clients.cli ", line)
            lines.append(line.replace("http://127.0.0.1:8000", server.url))
        result = subprocess.run(["bash", "-euo", "pipefail", "-c", "\n".join(lines)], cwd=tmp_path,
                                capture_output=True, text=True, timeout=300, check=False,
                                env={**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "200",
                                     "PARTSLEDGER_HOME": str(tmp_path / "home")})
    finally:
        server.stop()
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    assert out.count("GENUINE") == 3  # online, for a workshop, offline
    assert '"verdict":"genuine"' in out.replace(" ", "")
    assert "DF-RC-2026-01" in out and "clone_suspected" in out
    assert out.count("ok: ") >= 2  # audit and verify
    assert "replay matches" in out
    assert (tmp_path / "bundle.json").is_file()
