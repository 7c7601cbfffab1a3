"""Corrections (SPEC §4.3): nothing is edited; a correcting entry references the entry it corrects.

``entry.correct`` body: ``{"corrects": "<entry id>", "reason_code": "wrong_vehicle", "documents"?: [...]}``.

Written by the org that wrote the corrected entry, by the operator, or by
the OEM owning the brand of the part the corrected entry concerns. The
corrected entry stays in the log and in the part's history; flags it raised
are closed (no longer open alerts, no longer counted against the part), and
the ``suspect`` mark of every part concerned (by the corrected entry's body
or by the flags it raised) is recomputed from the flags that remain open.
"""

from __future__ import annotations

import re

from ledger.domain.body import require_keys
from ledger.domain.common import actor, handles, read_code, read_documents, record_event, repo, subject
from ledger.domain.registry import Context
from ledger.domain.warranty import SUSPECT_KINDS
from ledger.errors import InvalidInput, NotFound, PolicyRejected
from ledger.storage.parts_tables import Correction

_ENTRY_ID = re.compile(r"^[0-9a-f]{64}$")


@handles("entry.correct")
def correct(ctx: Context) -> None:
    body = ctx.entry.body
    require_keys(body, {"corrects", "reason_code"}, {"documents"})
    target = body.get("corrects")
    if not isinstance(target, str) or not _ENTRY_ID.match(target):
        raise InvalidInput("body.corrects: expected the 64-hex entry id of a logged entry", code="invalid_body",
                           field="corrects")
    reason = read_code(body, "reason_code")
    read_documents(body)
    org = actor(ctx)
    r = repo(ctx)
    found = r.record_of_entry(target)
    if found is None:
        raise NotFound(f"body.corrects: no logged entry has id {target}", code="unknown_entry", field="corrects")
    seq = found.seq
    part = r.get_part(found.gtin, found.serial) if found.gtin and found.serial else None
    allowed = {found.org_id} | ({part.brand_owner} if part else set())
    if org.kind != "operator" and org.org_id not in allowed:
        raise PolicyRejected(f"entry {target} (seq {seq}) is corrected by its author {found.org_id}"
                             f"{', the brand owner ' + part.brand_owner if part else ''} or the operator",
                             code="not_authorized", field="corrects")
    r.add(Correction(seq=ctx.seq, corrects=target, corrected_seq=seq, org_id=org.org_id, reason_code=reason))
    touched = {(part.gtin, part.serial)} if part is not None else set()
    for raised in r.flags_of_entry(target):
        if raised.subject.startswith("part:"):
            _, gtin_s, serial_s = raised.subject.split(":", 2)
            touched.add((gtin_s, serial_s))
    for gtin_t, serial_t in sorted(touched):
        found_part = r.get_part(gtin_t, serial_t)
        if found_part is None:
            continue
        still = r.open_flags(subject=subject(gtin_t, serial_t))
        found_part.suspect = any(f.kind in SUSPECT_KINDS for f in still)
        record_event(ctx, found_part)
