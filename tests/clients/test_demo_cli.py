"""``partsledger demo`` builds the demo world into a fresh database and serves it; the audit agrees with it."""

from __future__ import annotations

import json
import re
from pathlib import Path

import httpx

from ledger.digital_link import parse_uri
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
        cdmx = httpx.get(f"{server.url}/v1/grants", params={"grantee": "cdmx-taller-electrico"}, timeout=10).json()
        assert [g["technicians"] for g in cdmx["items"]] == [["MX-TEC-07", "MX-TEC-12"]]  # delegation is served
        # the labels the demo prints to try scanning: each shows the verdict printed beside it
        port = server.url.rsplit(":", 1)[1]
        printed = re.findall(r"^  (\w+)\s+(http://127\.0\.0\.1:\d+/01/\S+)$", server.log.read_text(), re.M)
        assert [verdict for verdict, _ in printed] == ["genuine", "recalled", "suspect", "retired"]
        for verdict, uri in printed:
            assert uri.startswith(f"http://127.0.0.1:{port}/01/")
            assert parse_uri(uri).sig is not None  # signed labels, as printed on the boxes
            answer = httpx.get(uri, headers={"Accept": "application/json"}, timeout=10).json()
            assert answer["verdict"] == verdict, (uri, answer["reasons"])
            assert any(r["code"] == "signature_valid" for r in answer["reasons"])
    finally:
        server.stop()
    again = start_server(tmp_path, db_url, command="demo")  # an existing demo database is served as it is
    try:
        assert "serving it as it is" in again.log.read_text()
    finally:
        again.stop()
