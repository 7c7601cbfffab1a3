"""The whole CLI against a real server process: an OEM, a workshop and an auditor, end to end.

keys → orgs → grant → commission from CSV → labels (PDF and PNG) → scan the PNG →
install → claim → decide → recall → scan shows recalled → audit passes → tamper → audit
names the record. Plus: a commission killed half-way and re-run appends every part once.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from clients.sdk import PartsLedger
from ledger.canonical import canonical_bytes, parse_json
from ledger.gs1 import make_gtin
from ledger.storage.db import normalize_url
from tests.clients.running import ROOT, RunningServer, cli, start_server

GTIN = make_gtin("950600", 4711)
VIN = "LGWEF4A59NA000123"


@pytest.fixture
def running(tmp_path: Path, db_url: str) -> Iterator[RunningServer]:
    server = start_server(tmp_path, db_url)
    yield server
    server.stop()


class Session:
    def __init__(self, home: Path, url: str) -> None:
        self.home, self.url = home, url

    def __call__(self, *args: str, expect: int = 0) -> str:
        result = cli(*args, home=self.home, env={"PARTSLEDGER_URL": self.url})
        assert result.returncode == expect, f"{args}: {result.stdout}{result.stderr}"
        assert "Traceback" not in result.stderr
        return result.stdout

    def json(self, *args: str, expect: int = 0) -> dict[str, object]:
        data: dict[str, object] = json.loads(self(*args, "--json", expect=expect))
        return data


def _setup_orgs(run: Session, server: RunningServer) -> None:
    run("keys", "import", "operator", "--org", "partsledger-operator", "--key-file", str(server.operator_key))
    run("keys", "generate", "acme", "--org", "acme-oem")
    run("keys", "generate", "oslo", "--org", "oslo-garage")
    run("org", "register", "acme-oem", "--kind", "oem", "--name", "Acme Motors", "--public-key", "acme",
        "--prefix", "950600", "--country", "CN", "--key", "operator")
    run("org", "register", "oslo-garage", "--kind", "workshop", "--name", "Oslo Garage", "--public-key", "oslo",
        "--country", "NO", "--key", "operator")


def test_oem_workshop_auditor_end_to_end(running: RunningServer, tmp_path: Path) -> None:
    run = Session(tmp_path / "home", running.url)
    _setup_orgs(run, running)
    grant = run.json("grant", "issue", "oslo-garage", "--key", "acme", "--grant-id", "g-oslo", "--activity",
                     "install", "--activity", "warranty_claim", "--activity", "remove")
    assert grant["duplicate"] is False
    parts_csv = tmp_path / "parts.csv"
    parts_csv.write_text(f"gtin,serial,lot\n{GTIN},SN00000000000001,L1\n{GTIN},,L2\n{GTIN},SN00000000000003,L1\n")
    done = run.json("commission", "--csv", str(parts_csv), "--key", "acme", "--category", "brakes",
                    "--out", str(tmp_path / "out.csv"))
    assert done["appended"] == 3 and done["already_in_log"] == 0
    with (tmp_path / "out.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows[1]["serial"]) >= 16 and rows[1]["serial"].isalnum()  # issued: random, 0-9A-Z
    assert all("8030=" in r["uri"] for r in rows)
    with PartsLedger(running.url) as client:  # the label signature is recorded, so the server's QR carries it
        recorded = {r.record.entry.body["serial"]: r.record.entry.body.get("part_sig") for r in client.iter_records()
                    if r.record.entry.type == "part.commission"}
        served = client.request("GET", f"/v1/parts/{GTIN}/SN00000000000001/qr.svg")
    assert {r["serial"]: r["uri"].split("8030=")[1] for r in rows} == recorded
    assert served.status_code == 200 and served.headers["content-type"].startswith("image/svg+xml")

    sheet = run.json("labels", "--csv", str(tmp_path / "out.csv"), "--out", str(tmp_path / "labels.pdf"))
    pdf = (tmp_path / "labels.pdf").read_bytes()
    assert sheet["pages"] == 1 and pdf.startswith(b"%PDF") and b"SN00000000000001" in pdf and GTIN.encode() in pdf
    pngs = run.json("labels", "--csv", str(tmp_path / "out.csv"), "--png", "--out", str(tmp_path / "png"))
    first_png = str(pngs["files"][0])  # type: ignore[index]

    verdict = run.json("scan", first_png, "--workshop", "oslo-garage")
    assert verdict["verdict"] == "genuine" and verdict["proof_checked"] is True
    assert verdict["uri"] == rows[0]["uri"]
    assert verdict["authorization"]["status"] == "authorized"  # type: ignore[index]
    assert "GENUINE" in run("scan", first_png)

    fitted = run.json("install", GTIN, "SN00000000000001", "--vin", VIN, "--key", "oslo")
    assert fitted["flags"] == []
    with PartsLedger(running.url) as client:  # the VIN went to the vault; the log holds only a pseudonym
        assert not any(VIN.encode() in r.record.canonical for r in client.iter_records())
        vehicle = client.record(fitted["seq"]).record.entry.body["vehicle"]  # type: ignore[arg-type]
    assert vehicle.startswith("veh-") and len(vehicle) == 56
    claim = run.json("claim", GTIN, "SN00000000000001", "--failure", "BRK01", "--claim-id", "c-1",
                     "--amount", "EUR:12050", "--key", "oslo")
    assert claim["duplicate"] is False
    run("decide", "c-1", "--decision", "approve", "--key", "acme")
    run("pay", "c-1", "--amount", "EUR:12050", "--key", "acme")
    refused = run.json("decide", "c-1", "--decision", "reject", "--reason", "misuse", "--key", "acme", expect=2)
    assert refused["code"] == "invalid_state"

    run("recall", "set", GTIN, "--lot", "L2", "--campaign", "rc-1", "--key", "acme")
    recalled = run.json("scan", rows[1]["uri"], expect=1)
    assert recalled["verdict"] == "recalled"
    bundle = run.json("bundle", "--out", str(tmp_path / "bundle.json"))
    assert bundle["recalls"] == 1
    offline = run.json("scan", rows[1]["uri"], "--offline", str(tmp_path / "bundle.json"), "--url",
                       "http://127.0.0.1:9", expect=1)
    assert offline["verdict"] == "recalled"
    genuine_offline = run.json("scan", rows[0]["uri"], "--offline", str(tmp_path / "bundle.json"))
    assert genuine_offline["verdict"] == "genuine"

    report = run.json("audit")
    assert report["ok"] is True and report["records"] == 12
    assert report["compared"] == ["orgs", "keys", "parts", "installations"]

    engine = create_engine(normalize_url(running.db_url))
    with engine.begin() as conn:  # the projections are not append-only: an operator could edit them
        conn.execute(text("UPDATE installations SET vehicle = :v WHERE seq = 7"), {"v": "veh-" + "b" * 52})
    projection = cli("audit", "--json", home=tmp_path / "auditor-2", env={"PARTSLEDGER_URL": running.url})
    assert projection.returncode == 1 and json.loads(projection.stdout)["seq"] == 7
    assert "the server says" in json.loads(projection.stdout)["error"]
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("DROP TRIGGER log_records_append_only ON log_records"))
        else:
            conn.execute(text("DROP TRIGGER log_records_no_update"))
        raw = conn.execute(text("SELECT record FROM log_records WHERE seq = 6")).scalar_one()
        record = parse_json(bytes(raw))
        record["entry"]["body"]["lot"] = "L9"  # a commissioning record quietly moved to another lot
        conn.execute(text("UPDATE log_records SET record = :r WHERE seq = 6"), {"r": canonical_bytes(record)})
    engine.dispose()
    failed = cli("audit", "--json", home=tmp_path / "fresh-auditor", env={"PARTSLEDGER_URL": running.url})
    assert failed.returncode == 1
    assert json.loads(failed.stdout)["seq"] == 6


def test_killed_commission_resumes_and_appends_each_part_once(running: RunningServer, tmp_path: Path) -> None:
    run = Session(tmp_path / "home", running.url)
    _setup_orgs(run, running)
    parts_csv = tmp_path / "parts.csv"
    parts_csv.write_text("gtin,lot\n" + "".join(f"{GTIN},L{i % 3}\n" for i in range(600)))
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PARTSLEDGER_HOME": str(run.home),
           "PARTSLEDGER_PASSPHRASE": "test passphrase", "PARTSLEDGER_URL": running.url}
    process = subprocess.Popen([sys.executable, "-m", "clients.cli", "commission", "--csv", str(parts_csv),
                                "--key", "acme", "--batch", "10"], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    journal_dir = run.home / "journal"
    deadline = time.monotonic() + 60
    sent = 0
    while time.monotonic() < deadline and sent < 100:
        time.sleep(0.1)
        marks = list(journal_dir.glob("*.done")) if journal_dir.exists() else []
        if marks:
            try:
                sent = int(marks[0].read_text() or 0)
            except (OSError, ValueError):
                continue
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert 100 <= sent < 600, sent
    result = run.json("commission", "--csv", str(parts_csv), "--key", "acme", "--batch", "10")
    assert result["parts"] == 600 and result["resumed_at"] >= sent  # type: ignore[operator]
    assert result["appended"] + result["already_in_log"] == 600 - result["resumed_at"]  # type: ignore[operator]
    with PartsLedger(running.url) as client:
        commissioned = [r.record.entry.body["serial"] for r in client.iter_records()
                        if r.record.entry.type == "part.commission"]
    assert len(commissioned) == 600 and max(Counter(commissioned).values()) == 1
    again = run.json("commission", "--csv", str(parts_csv), "--key", "acme")
    assert again["appended"] == 0
