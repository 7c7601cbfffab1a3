"""The demo world: realistic, internally consistent, replayable, and its key files private."""

from __future__ import annotations

import stat
from pathlib import Path

from ledger import queries
from ledger.demo import GTIN_BRAKE_PADS, build_demo
from ledger.keys import read_key_file
from ledger.log import Ledger
from ledger.replay import compare_replay
from ledger.storage.domain_tables import OrgKey
from ledger.storage.state import StateStore
from ledger.verify import verify_database


def test_demo_world(ledger: Ledger, tmp_path: Path) -> None:
    data_dir = tmp_path / "data-0"
    demo = build_demo(ledger, read_key_file(data_dir / "operator.key"), data_dir)
    db = ledger.db
    assert demo.records == ledger.size() >= 80

    statuses = {state: queries.get_claim(db, claim_id)["status"] for state, claim_id in demo.claims.items()}
    assert statuses == {"open": "open", "held": "held", "rejected": "rejected", "approved": "approved",
                        "paid": "paid"}
    assert "not_installed_by_claimant" in queries.get_claim(db, demo.claims["held"])["held_reasons"]

    alerts = {a["kind"] for a in queries.alerts_for_org(db, demo.orgs["oem"])}
    assert {"clone_suspected", "independent_service"} <= alerts
    affected = queries.recall_affected(db, demo.recall)
    assert affected["count"] == 4 and affected["recall"]["gtin"] == GTIN_BRAKE_PADS
    recycled = queries.get_part(db, *demo.parts["hv_pack_1"])
    assert recycled["state"] == "recycled" and recycled["attributes"]["recovered_g"]["lithium"] == 5400
    second = queries.get_part(db, *demo.parts["second_life_pack"])
    assert second["predecessor"] == "/".join(demo.parts["hv_pack_2"])
    singapore = queries.workshop_authorization(db, demo.orgs["workshop_singapore_independent"],
                                               GTIN_BRAKE_PADS, "install")
    assert singapore["status"] == "independent"
    for workshop in ("workshop_oslo", "workshop_riyadh", "workshop_mexico_city"):
        assert queries.list_grants(db, grantee=demo.orgs[workshop])

    assert set(demo.key_files) == set(demo.orgs.values()) - {demo.orgs["operator"]}
    for org, path in demo.key_files.items():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert read_key_file(path).kid in {k.kid for k in _keys(ledger, org)}
    verify_database(db, verifier_key=ledger.verifier_key)
    compare_replay(db)


def _keys(ledger: Ledger, org: str) -> list[OrgKey]:
    with ledger.db.read() as session:
        return list(StateStore(session).keys_of(org))
