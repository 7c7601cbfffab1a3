"""Read model of orgs and keys, and the assembly of the signed trust bundle from live state.

The domain's query module answers questions about parts, grants and claims;
this module answers "who is who and which keys are theirs", which the org
routes, the scan verdict (commissioning org) and the trust bundle all need.
Everything here only *reads* projections, each call in its own read
transaction.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

from ledger.errors import NotFound
from ledger.keys import b64encode
from ledger.log import Ledger
from ledger.note import Signer
from ledger.storage.domain_tables import Org, OrgKey
from ledger.storage.state import StateStore
from ledger.trust_bundle import DEFAULT_TTL, build_bundle, sign_bundle


def _key_json(key: OrgKey) -> dict[str, Any]:
    return {
        "kid": key.kid,
        "public_key": b64encode(bytes(key.public_key)),
        "added_seq": key.added_seq,
        "revoked_seq": key.revoked_seq,
        "compromised_at": key.compromised_at,
    }


def _org_json(org: Org, keys: Sequence[OrgKey] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "org_id": org.org_id,
        "kind": org.kind,
        "name": org.name,
        "country": org.country,
        "gs1_prefixes": list(org.gs1_prefixes),
        "glns": list(org.glns),
        "registered_seq": org.registered_seq,
    }
    if keys is not None:
        out["keys"] = [_key_json(k) for k in keys]
    return out


def list_orgs(ledger: Ledger, *, kind: str | None = None, offset: int = 0, limit: int = 100) -> list[dict[str, Any]]:
    """Orgs in registration order (without keys)."""
    with ledger.db.read() as session:
        return [_org_json(o) for o in StateStore(session).list_orgs(kind=kind, offset=offset, limit=limit)]


def get_org(ledger: Ledger, org_id: str) -> dict[str, Any]:
    """One org with all its keys (revoked ones included, with when and whether compromised)."""
    with ledger.db.read() as session:
        store = StateStore(session)
        org = store.get_org(org_id)
        if org is None:
            raise NotFound(f"no org {org_id!r}", code="unknown_org", field="org_id")
        return _org_json(org, store.keys_of(org_id))


def org_summary(ledger: Ledger, org_id: str) -> dict[str, Any] | None:
    """``{org_id, name, kind, country}`` or ``None`` if the org is not registered."""
    with ledger.db.read() as session:
        org = StateStore(session).get_org(org_id)
        if org is None:
            return None
        return {"org_id": org.org_id, "name": org.name, "kind": org.kind, "country": org.country}


def all_orgs_with_keys(ledger: Ledger) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    offset = 0
    with ledger.db.read() as session:
        store = StateStore(session)
        while True:
            page = store.list_orgs(offset=offset, limit=500)
            out.extend(_org_json(o, store.keys_of(o.org_id)) for o in page)
            if len(page) < 500:
                return out
            offset += 500


def log_signer(ledger: Ledger) -> Signer:
    """The log's signer, which also signs trust bundles (purpose ``trust-bundle``).

    Adapter: :class:`~ledger.log.Ledger` keeps its signer private and offers no
    method to sign anything but checkpoints, so this reads the attribute.
    """
    signer: Signer = ledger._signer
    return signer


def trust_bundle(ledger: Ledger, *, now: datetime, grants: Callable[[], list[dict[str, Any]]],
                 recalls: Callable[[], list[dict[str, Any]]], ttl: timedelta = DEFAULT_TTL,
                 products: Callable[[], list[dict[str, Any]]] | None = None) -> dict[str, Any]:
    """Build and sign the trust bundle from live state at the latest checkpoint.

    ``grants``, ``recalls`` and ``products`` supply the domain's grants, open
    recalls and per-GTIN brands and categories in bundle form (see
    :mod:`ledger.trust_bundle`).
    """
    checkpoint = ledger.latest_checkpoint()
    if checkpoint is None:
        raise NotFound("the log is empty")
    bundle = build_bundle(origin=ledger.origin, version=checkpoint.size, checkpoint=checkpoint.note,
                          orgs=all_orgs_with_keys(ledger), grants=grants(), recalls=recalls(), now=now, ttl=ttl,
                          products=products() if products is not None else ())
    return sign_bundle(bundle, log_signer(ledger))


__all__ = ["all_orgs_with_keys", "get_org", "list_orgs", "log_signer", "org_summary", "trust_bundle"]
