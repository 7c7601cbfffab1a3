"""The AI 8030 label signature a commissioning org may record in its commissioning entry (SPEC §3.7).

``part.commission`` may carry ``body.part_sig``: the commissioning org's
Ed25519 signature over the part's element string ``01<GTIN-14>21<serial>``
(:func:`ledger.digital_link.sign_part_id`), base64url. The server then puts it
into the part's QR code (AI 8030) so that a scanner can check the label
offline with the org keys of the trust bundle. A value that does not verify
with one of the org's unrevoked keys is rejected (``bad_part_sig``): a label
that would fail every offline check must never enter the log.
"""

from __future__ import annotations

from ledger.digital_link import SIG_RE, verify_part_sig
from ledger.domain.registry import Context
from ledger.errors import InvalidInput, SignatureError
from ledger.storage.domain_tables import Org


def check_part_sig(ctx: Context, org: Org, gtin: str, serial: str, *, field: str = "part_sig") -> None:
    """Reject ``body[field]`` unless it is ``org``'s part-id signature of ``gtin``/``serial``; absent is fine."""
    sig = ctx.entry.body.get(field)
    if sig is None:
        return
    if not isinstance(sig, str) or not SIG_RE.match(sig):
        raise InvalidInput(f"body.{field}: expected an Ed25519 signature as 86 base64url characters "
                           "(ledger.digital_link.sign_part_id)", code="invalid_body", field=field)
    for key in ctx.state.keys_of(org.org_id):
        if key.revoked_seq is not None:
            continue
        try:
            verify_part_sig(bytes(key.public_key), gtin, serial, sig)
        except SignatureError:
            continue
        return
    raise SignatureError(f"body.{field}: not a signature of {org.org_id} over the element string "
                         f"01{gtin}21{serial} with any of its current keys (sign it with "
                         "ledger.digital_link.sign_part_id and the commissioning key)", code="bad_part_sig",
                         field=field)


__all__ = ["check_part_sig"]
