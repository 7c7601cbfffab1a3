"""``partsledger export epcis`` against a real server: a schema-valid file equal to the server's own EPCIS view."""

from __future__ import annotations

import json
from pathlib import Path

import httpx

from ledger.epcis.validate import load_validator
from ledger.service import LedgerSettings, open_ledger
from tests.api.epcis_history import build_history
from tests.clients.running import cli, start_server
from tests.ledger.epcis_files import SCHEMA, reference_hashes
from tests.support import World


def test_export_writes_the_history_as_one_valid_document(tmp_path: Path, db_url: str) -> None:
    data_dir = tmp_path / "server-data"
    ledger = open_ledger(LedgerSettings(data_dir=data_dir, db_url=db_url, origin="audit.test/log"))
    history = build_history(World.open(ledger, data_dir / "operator.key"))
    size = ledger.size()
    ledger.db.dispose()
    server = start_server(tmp_path, db_url)
    try:
        home = tmp_path / "home"
        out = tmp_path / "export" / "history.jsonld"
        result = cli("export", "epcis", "--url", server.url, "-o", str(out), "--json", home=home)
        assert result.returncode == 0, result.stdout + result.stderr
        summary = json.loads(result.stdout)
        doc = json.loads(out.read_text(encoding="utf-8"))
        events = doc["epcisBody"]["eventList"]
        assert summary == {"ok": True, "path": str(out), "records": size, "events": len(events),
                           "corrected": 1}
        assert [e["pl:eventType"] for e in events] == history.types
        assert load_validator(SCHEMA).problems(doc) == []
        assert [e["eventID"] for e in events] == reference_hashes(doc)
        served = httpx.get(f"{server.url}/v1/epcis/events", params={"perPage": 1000}).json()
        assert served["epcisBody"]["queryResults"]["resultsBody"]["eventList"] == events
        human = cli("export", "epcis", "--url", server.url, "-o", str(out), home=home)
        assert human.returncode == 0 and f"wrote {len(events)} EPCIS events" in human.stdout
        bad = cli("export", "epcis", "--url", "http://127.0.0.1:9", "-o", str(tmp_path / "x.jsonld"), home=home)
        assert bad.returncode == 3 and "Traceback" not in bad.stderr
        assert not (tmp_path / "x.jsonld").exists()
    finally:
        server.stop()
