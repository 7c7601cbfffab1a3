"""Recalls (SPEC §4.3): campaigns set and cleared by the brand's OEM, by GTIN and lots or serial ranges.

Body of ``recall.set``::

    {"campaign_id": "RC-2026-001", "gtin": "<GTIN-14>", "lots": ["L2406"],
     "serial_ranges": [{"first": "A000", "last": "A999"}], "reason_code": "thermal_runaway"}

No lots and no ranges recalls every serial of the GTIN. A serial range
covers serials of the same length between ``first`` and ``last`` inclusive
(compared character by character, so numeric and alphanumeric serials
order as printed). ``recall.clear`` (``{"campaign_id", "reason_code"?}``)
closes a campaign; the record stays.
"""

from __future__ import annotations

from typing import Any

from ledger.domain.body import get_str_list, require_keys
from ledger.domain.common import handles, prefix_owner, read_code, read_documents, read_id, repo, require_kind
from ledger.domain.registry import Context
from ledger.errors import Conflict, InvalidInput, NotFound, PolicyRejected
from ledger.gs1 import validate_gtin, validate_lot, validate_serial
from ledger.storage.parts_tables import Part, Recall


def covers(recall: Recall, part: Part) -> bool:
    """True if ``recall`` names ``part`` (same GTIN, and its lot or a serial range, or the whole GTIN)."""
    return covers_id(recall, part.gtin, part.serial, part.lot)


def covers_id(recall: Recall, gtin: str, serial: str, lot: str | None) -> bool:
    """:func:`covers` for the part of this GTIN, serial and lot."""
    if recall.gtin != gtin:
        return False
    if not recall.lots and not recall.serial_ranges:
        return True
    if lot is not None and lot in recall.lots:
        return True
    return any(len(first) == len(serial) and first <= serial <= last for first, last in recall.serial_ranges)


def _ranges(body: dict[str, Any]) -> list[list[str]]:
    raw = body.get("serial_ranges", [])
    if not isinstance(raw, list) or len(raw) > 100:
        raise InvalidInput("body.serial_ranges: expected up to 100 {first, last} objects", code="invalid_body",
                           field="serial_ranges")
    out = []
    for item in raw:
        if not isinstance(item, dict) or set(item) != {"first", "last"}:
            raise InvalidInput("body.serial_ranges[]: expected {first, last}", code="invalid_body",
                               field="serial_ranges")
        first = validate_serial(item["first"], field="body.serial_ranges[].first")
        last = validate_serial(item["last"], field="body.serial_ranges[].last")
        if len(first) != len(last) or last < first:
            raise InvalidInput(f"body.serial_ranges[]: {first}..{last} is not a range of equal-length serials with "
                               "first ≤ last", code="invalid_body", field="serial_ranges")
        out.append([first, last])
    return out


def _require_brand_owner(ctx: Context, gtin: str) -> str:
    require_kind(ctx, "oem")
    owner = prefix_owner(ctx, gtin)
    if owner is None or owner.org_id != ctx.entry.org:
        raise PolicyRejected(f"only the OEM owning GTIN {gtin}'s company prefix "
                             f"({owner.org_id if owner else 'none registered'}) sets or clears its recalls",
                             code="not_authorized", field="gtin")
    return owner.org_id


@handles("recall.set")
def set_recall(ctx: Context) -> None:
    body = ctx.entry.body
    require_keys(body, {"campaign_id", "gtin"}, {"lots", "serial_ranges", "reason_code", "documents"})
    campaign_id = read_id(body, "campaign_id")
    gtin = validate_gtin(body.get("gtin"), field="body.gtin")
    lots = [validate_lot(x, field="body.lots[]") for x in get_str_list(body, "lots", what="lots", max_items=1000)]
    ranges = _ranges(body)
    reason = read_code(body, "reason_code") if body.get("reason_code") is not None else None
    read_documents(body)
    oem = _require_brand_owner(ctx, gtin)
    r = repo(ctx)
    if r.get_recall(campaign_id) is not None:
        raise Conflict(f"recall campaign {campaign_id} already exists", code="conflict", field="campaign_id")
    r.add(Recall(campaign_id=campaign_id, oem=oem, gtin=gtin, lots=lots, serial_ranges=ranges, reason_code=reason,
                 set_seq=ctx.seq))


@handles("recall.clear")
def clear_recall(ctx: Context) -> None:
    body = ctx.entry.body
    require_keys(body, {"campaign_id"}, {"reason_code"})
    campaign_id = read_id(body, "campaign_id")
    if body.get("reason_code") is not None:
        read_code(body, "reason_code")
    r = repo(ctx)
    recall = r.get_recall(campaign_id)
    if recall is None:
        raise NotFound(f"recall campaign {campaign_id} does not exist", code="unknown_recall", field="campaign_id")
    _require_brand_owner(ctx, recall.gtin)
    if recall.cleared_seq is not None:
        raise PolicyRejected(f"recall campaign {campaign_id} was cleared at seq {recall.cleared_seq}",
                             code="invalid_state", field="campaign_id")
    recall.cleared_seq = ctx.seq
    r.save(recall)


def open_recalls_for(ctx: Context, part: Part) -> list[Recall]:
    return [rc for rc in repo(ctx).recalls(gtin=part.gtin, open_only=True) if covers(rc, part)]


__all__ = ["covers", "covers_id", "open_recalls_for"]
