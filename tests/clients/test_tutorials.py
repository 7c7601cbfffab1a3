"""The role tutorials in docs/ are executed: OEM, workshop, warranty team and auditor, in that order."""

from __future__ import annotations

from pathlib import Path

from tests.clients.running import start_server
from tests.clients.tutorials import ROOT, run, shim

TUTORIALS = ["tutorial-oem.md", "tutorial-workshop.md", "tutorial-warranty.md", "tutorial-auditor.md"]


def test_tutorials_run_as_written(tmp_path: Path, db_url: str) -> None:
    work = tmp_path / "work"
    work.mkdir()
    server = start_server(work, db_url, data_dir_name="partsledger-data")
    try:
        env = {"PATH": f"{shim(tmp_path / 'bin')}:/usr/bin:/bin", "PARTSLEDGER_URL": server.url,
               "PARTSLEDGER_HOME": str(tmp_path / "home"), "PARTSLEDGER_PASSPHRASE": "correct horse battery staple"}
        ran = 0
        for name in TUTORIALS:
            failures = run(ROOT / "docs" / name, env, work)
            assert not failures, "\n\n".join(failures)
            ran += 1
        assert ran == len(TUTORIALS)
    finally:
        server.stop()
