"""The offline authorization from a served trust bundle agrees with the server's, grant by grant.

A real ledger (SQLite or PostgreSQL) holds workshops with grants scoped by
activity, GTIN prefix, brand, category, country, site and validity, one grant
suspended and one revoked; parts of two brands and categories. For every
workshop × part × activity, the verdict the server gives
(:func:`ledger.resolve.workshop_authorization`) and the one a phone computes
from the signed trust bundle alone (:func:`ledger.trust_bundle.offline_verdict`)
must be the same.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from ledger import directory, part_reads, resolve
from ledger.digital_link import build_uri, sign_part_id
from ledger.entries import format_time
from ledger.gs1 import make_gln, make_gtin
from ledger.trust_bundle import offline_verdict
from tests.support import World

ACTIVITIES = ("install", "repair", "warranty_claim", "battery_dismantling")


def test_offline_and_server_authorization_agree(world: World) -> None:
    oem = world.register("dragon-motors", "oem", country="CN", gs1_prefixes=["6901234"])
    other = world.register("other-motors", "oem", country="DE", gs1_prefixes=["6909999"])
    site = make_gln("7080000", 1)
    shops = {name: world.register(name, "workshop", country=country, glns=[site] if name == "oslo" else [])
             for name, country in (("oslo", "NO"), ("riyadh", "SA"), ("lyon", "FR"), ("indie", "NO"),
                                   ("paused", "NO"), ("gone", "NO"), ("later", "NO"), ("dragon-only", "NO"),
                                   ("crew", "NO"))}
    since = "2020-01-01T00:00:00Z"
    grants: dict[str, dict[str, Any]] = {
        "oslo": {"activities": ["install", "repair"], "countries": ["NO"]},
        "riyadh": {"activities": ["install", "repair", "warranty_claim"], "categories": ["brakes"],
                   "countries": ["SA"]},
        "lyon": {"activities": ["install"], "gtin_prefixes": ["69012341"], "countries": ["DE"]},
        "paused": {"activities": ["install"]},
        "gone": {"activities": ["install"]},
        "later": {"activities": ["install"], "valid_from": "2099-01-01T00:00:00Z"},
        "dragon-only": {"activities": ["install", "repair"], "brands": ["Dragon"]},
        "crew": {"activities": ["install"], "technicians": ["T-07"]},
    }
    for name, scope in grants.items():
        world.append(oem, "grant.issue", {"grant_id": f"g-{name}", "kind": "workshop", "grantee": name,
                                          "valid_from": since, **scope})
    world.append(oem, "grant.issue", {"grant_id": "g-oslo-site", "kind": "workshop", "grantee": "oslo",
                                      "activities": ["warranty_claim"], "sites": [site], "valid_from": since})
    world.append(other, "grant.issue", {"grant_id": "g-other-indie", "kind": "workshop", "grantee": "indie",
                                        "activities": ["install"], "valid_from": since})
    world.append(oem, "grant.suspend", {"grant_id": "g-paused"})
    world.append(oem, "grant.revoke", {"grant_id": "g-gone"})
    parts = [(make_gtin("6901234", 100), "BRK1", "brakes", "Dragon"),
             (make_gtin("6901234", 100), "BRK2", "brakes", "Dragon"),
             (make_gtin("6901234", 200), "BAT1", "hv_battery", "Dragon"),
             (make_gtin("6901234", 300), "RAD1", "adas", "Phoenix")]
    for gtin, serial, category, brand in parts:
        world.append(oem, "part.commission", {"gtin": gtin, "serial": serial, "category": category,
                                              "brand": brand})
    ledger = world.ledger
    now = datetime.now(UTC).replace(microsecond=0)
    envelope = directory.trust_bundle(ledger, now=now, grants=lambda: part_reads.bundle_grants(ledger),
                                      recalls=lambda: resolve.bundle_recalls(ledger),
                                      products=lambda: part_reads.bundle_products(ledger))
    assert {p["gtin"]: p["categories"] for p in envelope["bundle"]["products"]} == {
        parts[0][0]: ["brakes"], parts[2][0]: ["hv_battery"], parts[3][0]: ["adas"]}
    seen: set[str] = set()
    for gtin, serial, _, _ in parts:
        uri = build_uri("https://scan.example", gtin, serial, sig=sign_part_id(oem.key, gtin, serial))
        for shop in [*shops, "nobody-registered"]:
            for activity in ACTIVITIES:
                server = resolve.workshop_authorization(ledger, shop, gtin, serial, activity, now=format_time(now))
                offline = offline_verdict(uri, envelope, ledger.verifier_key, now=now, workshop=shop,
                                          activity=activity).authorization
                assert offline is not None
                assert (offline.status, offline.authorized, offline.grant_id) == (
                    server.status, server.authorized, server.grant_id), (shop, serial, activity, offline, server)
                seen.add(server.status)
    assert seen == {"authorized", "out_of_scope", "suspended", "revoked", "expired", "independent", "unknown_org"}
