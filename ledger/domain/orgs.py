"""Orgs and keys (SPEC §4.1): genesis, registration, key addition and revocation."""

from __future__ import annotations

import base64
import re
from typing import Any

from sqlmodel import SQLModel

from ledger.domain.body import COUNTRY_RE, get_opt_str, get_str, get_str_list, require_keys
from ledger.domain.common import flag, handles, repo
from ledger.domain.registry import Context, looks_up
from ledger.entries import Entry, format_time, is_valid_org_id, parse_time
from ledger.errors import Conflict, InvalidInput, LedgerError, NotFound, PolicyRejected
from ledger.keys import b64decode, key_id
from ledger.storage.domain_tables import Org, OrgKey

ORG_KINDS = ("operator", "oem", "supplier", "workshop", "recycler", "test_lab", "authority")
PREFIX_RE = re.compile(r"^\d{6,12}$")
GLN_RE = re.compile(r"^\d{13}$")
MAX_KEYS = 16


def _public_keys(raw: object) -> list[bytes]:
    if not isinstance(raw, list) or not raw or len(raw) > MAX_KEYS:
        raise InvalidInput(f"body.public_keys: expected 1–{MAX_KEYS} base64 Ed25519 public keys",
                           code="invalid_body", field="public_keys")
    keys = [b64decode(item, field="body.public_keys[]", size=32) for item in raw]
    if len(set(keys)) != len(keys):
        raise InvalidInput("body.public_keys: duplicate keys", code="invalid_body", field="public_keys")
    return keys


def _new_org(ctx: Context, body: dict[str, object], *, kind: str) -> Org:
    org_id = body.get("org_id")
    if not is_valid_org_id(org_id):
        raise InvalidInput("body.org_id: expected 3–64 characters a-z, 0-9 and '-'", code="invalid_body",
                           field="org_id")
    assert isinstance(org_id, str)
    if ctx.state.get_org(org_id) is not None:
        raise Conflict(f"org {org_id} is already registered", code="conflict", field="org_id")
    return Org(
        org_id=org_id,
        kind=kind,
        name=get_str(body, "name", max_len=200, what="an org name"),
        country=get_opt_str(body, "country", max_len=2, pattern=COUNTRY_RE, what="an ISO 3166-1 alpha-2 code"),
        gs1_prefixes=get_str_list(body, "gs1_prefixes", pattern=PREFIX_RE, what="GS1 company prefixes (6–12 digits)"),
        glns=get_str_list(body, "glns", pattern=GLN_RE, what="13-digit GLNs"),
        attributes={},
        registered_seq=ctx.seq,
        registered_by=ctx.entry.org,
    )


def _add_keys(ctx: Context, org_id: str, keys: list[bytes]) -> None:
    for public_key in keys:
        kid = key_id(public_key)
        if ctx.state.get_key(kid) is not None:
            raise Conflict(f"key {kid} is already registered", code="conflict", field="public_keys")
        ctx.state.add_key(kid=kid, org_id=org_id, public_key=public_key, added_seq=ctx.seq)


@handles("log.genesis")
def genesis(ctx: Context) -> None:
    """Seq 0: the operator registers itself and its first key (self-signed)."""
    body = ctx.entry.body
    require_keys(body, {"org_id", "name", "public_keys"}, {"country", "gs1_prefixes", "glns"})
    if ctx.seq != 0:
        raise PolicyRejected("log.genesis is only valid as the first record", code="role_forbidden")
    org = _new_org(ctx, body, kind="operator")
    if org.org_id != ctx.entry.org:
        raise InvalidInput("genesis: body.org_id must equal entry.org", code="invalid_body", field="org_id")
    keys = _public_keys(body["public_keys"])
    if ctx.entry.kid not in {key_id(k) for k in keys}:
        raise InvalidInput("genesis: must be signed by one of the keys it registers", code="invalid_body",
                           field="public_keys")
    ctx.state.add_org(org)
    _add_keys(ctx, org.org_id, keys)


@handles("org.register")
def register_org(ctx: Context) -> None:
    body = ctx.entry.body
    require_keys(body, {"org_id", "kind", "name", "public_keys"}, {"country", "gs1_prefixes", "glns"})
    kind = body["kind"]
    if kind not in ORG_KINDS or kind == "operator":
        raise InvalidInput(f"body.kind: expected one of {', '.join(k for k in ORG_KINDS if k != 'operator')}",
                           code="invalid_body", field="kind")
    actor = ctx.state.get_org(ctx.entry.org)
    if actor is None or actor.kind != "operator":
        raise PolicyRejected("only the operator registers orgs", code="role_forbidden")
    org = _new_org(ctx, body, kind=str(kind))
    keys = _public_keys(body["public_keys"])
    ctx.state.add_org(org)
    _add_keys(ctx, org.org_id, keys)


@handles("key.add")
def add_key(ctx: Context) -> None:
    body = ctx.entry.body
    require_keys(body, {"org_id", "public_key"})
    org_id = get_str(body, "org_id", max_len=64)
    org = ctx.state.get_org(org_id)
    if org is None:
        raise NotFound(f"org {org_id} is not registered", code="unknown_org", field="org_id")
    actor = ctx.state.get_org(ctx.entry.org)
    if ctx.entry.org != org_id and (actor is None or actor.kind != "operator"):
        raise PolicyRejected("a key is added by its own org or by the operator", code="role_forbidden")
    _add_keys(ctx, org_id, [b64decode(body["public_key"], field="body.public_key", size=32)])


@looks_up("log.genesis", "org.register", "key.add")
def _key_lookups(entry: Entry) -> list[tuple[type[SQLModel], Any]]:
    """The org and the keys a registration or key.add checks for."""
    body = entry.body
    raw = body.get("public_keys")
    keys = raw if isinstance(raw, list) else [body.get("public_key")]
    found: list[tuple[type[SQLModel], Any]] = []
    if isinstance(body.get("org_id"), str):
        found.append((Org, body["org_id"]))
    for value in keys:
        if isinstance(value, str) and len(value) == 44:  # a hint: the handler checks the encoding strictly
            try:
                found.append((OrgKey, key_id(base64.b64decode(value))))
            except (LedgerError, ValueError):
                continue
    return found


@handles("key.revoke")
def revoke_key(ctx: Context) -> None:
    body = ctx.entry.body
    require_keys(body, {"kid"}, {"compromised_at", "reason"})
    kid = get_str(body, "kid", max_len=32)
    key = ctx.state.get_key(kid)
    if key is None:
        raise NotFound(f"key {kid} is not registered", code="unknown_key", field="kid")
    actor = ctx.state.get_org(ctx.entry.org)
    if ctx.entry.org != key.org_id and (actor is None or actor.kind != "operator"):
        raise PolicyRejected("a key is revoked by its own org or by the operator", code="role_forbidden")
    if key.revoked_seq is not None:
        raise Conflict(f"key {kid} is already revoked", code="conflict", field="kid")
    compromised_at = body.get("compromised_at")
    if compromised_at is not None:
        parse_time(compromised_at, field="body.compromised_at")
    get_opt_str(body, "reason", max_len=500)
    ctx.state.revoke_key(kid, ctx.seq, compromised_at if isinstance(compromised_at, str) else None)
    if isinstance(compromised_at, str):
        _flag_compromised(ctx, key.org_id, kid, format_time(parse_time(compromised_at)))


def _flag_compromised(ctx: Context, org_id: str, kid: str, since: str) -> None:
    """Flag every entry the key signed that was logged at or after its compromise time.

    Those entries stay in the log (history is never rewritten) but can no
    longer be trusted: an entry about a part flags the part (suspect, alert to
    its brand owner); any other entry is flagged under ``entry:<id>`` for the
    key's org.
    """
    r = repo(ctx)
    for ref in r.entries_by_key_since(kid, since):
        part = r.get_part(ref.gtin, ref.serial) if ref.gtin and ref.serial else None
        message = (f"{ref.type} at seq {ref.seq} was signed by key {kid} after its compromise time {since}; "
                   f"entry {ref.entry_id} cannot be trusted")
        if part is not None:
            flag(ctx, part, "key_compromised", message)
            part.suspect = True
            r.save(part)
        else:
            ctx.flag("key_compromised", f"entry:{ref.entry_id}", message, org_id=org_id)
