"""Vehicle pseudonyms over HTTP: the VIN stays off the log; erasure unlinks it for good."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlmodel import select

from api.app import create_app
from api.settings import ApiSettings
from ledger.log import Ledger
from ledger.privacy import pseudonym_from_key
from ledger.service import LedgerSettings
from ledger.storage.vault_tables import VaultVehicle
from tests.api.test_log_api import assert_problem

VIN = "LGXCE4CB8N0123456"


@pytest.fixture
def vclient(ledger: Ledger, tmp_path: Path) -> Iterator[TestClient]:
    settings = ApiSettings(ledger=LedgerSettings(data_dir=tmp_path / "api", db_url=ledger.db.url,
                                                 origin=ledger.origin))
    with TestClient(create_app(settings, ledger=ledger)) as client:
        yield client


def test_pseudonym_is_stable_and_off_the_log(vclient: TestClient, ledger: Ledger, tmp_path: Path) -> None:
    first = vclient.post("/v1/vehicles/pseudonym", json={"vin": VIN})
    assert first.status_code == 200, first.text
    pseudonym = first.json()["pseudonym"]
    assert pseudonym.startswith("veh-") and len(pseudonym) == 56
    assert vclient.post("/v1/vehicles/pseudonym", json={"vin": VIN.lower()}).json()["pseudonym"] == pseudonym
    assert vclient.post("/v1/vehicles/pseudonym", json={"vin": "LGXCE4CB8N0123457"}).json()["pseudonym"] != pseudonym
    assert (tmp_path / "api" / "vault.secret").exists()
    assert ledger.size() == 1  # nothing was appended to the log


def test_erasure_unlinks_the_vin_forever(vclient: TestClient, ledger: Ledger) -> None:
    pseudonym = vclient.post("/v1/vehicles/pseudonym", json={"vin": VIN}).json()["pseudonym"]
    with ledger.db.read() as session:
        [row] = session.exec(select(VaultVehicle)).all()
        vehicle_key = bytes(row.vehicle_key)
    assert pseudonym_from_key(vehicle_key, VIN) == pseudonym
    erased = vclient.post("/v1/vehicles/erasure", json={"vin": VIN})
    assert erased.status_code == 200 and erased.json() == {"erased": pseudonym}
    with ledger.db.read() as session:  # the random key is gone: nothing can recompute the pseudonym
        assert session.exec(select(VaultVehicle)).all() == []
    if ledger.db.is_sqlite:  # nor does a copy survive in the database files (secure_delete + WAL truncated)
        path = Path(ledger.db.url.removeprefix("sqlite:///"))
        files = [f for f in path.parent.glob(path.name + "*") if f.is_file()]
        assert path in files and not any(vehicle_key in f.read_bytes() for f in files)
    assert_problem(vclient.post("/v1/vehicles/erasure", json={"vin": VIN}), 404, "not_found")
    fresh = vclient.post("/v1/vehicles/pseudonym", json={"vin": VIN}).json()["pseudonym"]
    assert fresh != pseudonym  # the old history can never be linked again
    assert ledger.size() == 1  # nothing was appended to the log


def test_bad_vehicle_requests(vclient: TestClient) -> None:
    assert_problem(vclient.post("/v1/vehicles/pseudonym", json={"vin": "IOQ12345678901234"}), 422, "invalid_field")
    assert_problem(vclient.post("/v1/vehicles/pseudonym", json={"vin": VIN, "x": 1}), 422, "invalid_field")
    assert_problem(vclient.post("/v1/vehicles/pseudonym", content=b"x" * 5000,
                                headers={"content-type": "application/json"}), 413, "body_too_large")
    assert_problem(vclient.post("/v1/vehicles/erasure", content=b"{"), 400, "invalid_json")
