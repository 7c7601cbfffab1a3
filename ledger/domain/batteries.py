"""Batteries (SPEC §4.6): state-of-health reports.

``battery.soh`` body: ``{"gtin", "serial", "soh_pct": 0–100, "cycles"?: int, "site"?: GLN}``.
State of health is an integer percentage (no floats in signed content). The
take-back (``part.collect``), recycling with recovered materials
(``part.recycle``) and repurposing (``part.repurpose``) are part lifecycle
steps in :mod:`ledger.domain.parts`; the passport view is
:func:`ledger.queries.battery_passport`.
"""

from __future__ import annotations

from ledger.domain import authz
from ledger.domain.body import get_int, require_keys
from ledger.domain.common import (
    BATTERY_CATEGORIES,
    handles,
    read_part_ref,
    record_event,
    repo,
    require_kind,
    require_part,
)
from ledger.domain.registry import Context
from ledger.errors import PolicyRejected
from ledger.gs1 import validate_gln
from ledger.storage.parts_tables import BatteryReport


@handles("battery.soh")
def state_of_health(ctx: Context) -> None:
    body = ctx.entry.body
    require_keys(body, {"gtin", "serial", "soh_pct"}, {"cycles", "site"})
    gtin, serial = read_part_ref(body)
    soh = get_int(body, "soh_pct", minimum=0, maximum=100)
    cycles = get_int(body, "cycles", minimum=0, maximum=10_000_000) if body.get("cycles") is not None else None
    org = require_kind(ctx, "workshop", "test_lab", "oem", "recycler")
    site = validate_gln(body["site"], field="body.site") if body.get("site") is not None else None
    part = require_part(ctx, gtin, serial)
    if part.category not in BATTERY_CATEGORIES:
        raise PolicyRejected(f"part {gtin}/{serial} is a {part.category} part, not a battery", code="invalid_state",
                             field="serial")
    if part.state in {"recycled", "repurposed"}:
        raise PolicyRejected(f"battery {gtin}/{serial} is {part.state}: it has no state of health any more",
                             code="invalid_state", field="serial")
    verdict = None
    if org.kind == "workshop":
        verdict = authz.judge(repo(ctx), workshop=org, part=part, activity="battery_diagnosis", seq=ctx.seq,
                              logged=ctx.logged, site=site)
    repo(ctx).add(BatteryReport(seq=ctx.seq, gtin=gtin, serial=serial, org_id=org.org_id, soh_pct=soh,
                                cycles=cycles, logged=ctx.logged))
    part.soh_pct = soh
    record_event(ctx, part, authorization=verdict.status if verdict else None,
                 grant_id=verdict.grant_id if verdict else None)
