"""``partsledger demo`` builds the demo world into a fresh database and serves it; the audit agrees with it."""

from __future__ import annotations

import json
from pathlib import Path

from tests.clients.running import cli, start_server


def test_demo_is_served_and_passes_a_full_audit(tmp_path: Path, db_url: str) -> None:
    server = start_server(tmp_path, db_url, command="demo")
    try:
        result = cli("audit", "--url", server.url, "--json", home=tmp_path / "auditor")
        assert result.returncode == 0, result.stdout + result.stderr
        report = json.loads(result.stdout)
        assert report["records"] > 50 and report["orgs"] >= 8
        assert report["compared"] == ["orgs", "keys", "parts", "installations"]
        alerts = cli("alerts", "--org", "dragonfly-auto", "--url", server.url, "--json", home=tmp_path / "auditor")
        kinds = {a["kind"] for a in json.loads(alerts.stdout)}
        assert "clone_suspected" in kinds  # the demo's clone installation is in the OEM's queue
    finally:
        server.stop()
    again = start_server(tmp_path, db_url, command="demo")  # an existing demo database is served as it is
    try:
        assert "serving it as it is" in again.log.read_text()
    finally:
        again.stop()
