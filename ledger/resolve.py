"""From the domain's projections to what a scan and a trust bundle need.

This is the one adapter between the domain's query module and the scan
path: it reduces parts, flags, recalls and grants to the plain facts of
:mod:`ledger.verdict`, assembles the full verdict document (with the
inclusion proof of the part's latest record against a signed checkpoint),
and exports grants and recalls in the bundle form of :mod:`ledger.trust_bundle`.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from sqlalchemy import (
    ARRAY,
    JSON,
    BindParameter,
    ColumnElement,
    FromClause,
    Select,
    String,
    Table,
    bindparam,
    func,
    literal_column,
    select,
    true,
)
from sqlalchemy.dialects.postgresql import aggregate_order_by

from ledger import directory, merkle
from ledger.canonical import float_free_json, response_json
from ledger.digital_link import PartLink, build_uri, verify_part_sig
from ledger.domain import authz
from ledger.domain.common import subject
from ledger.domain.recalls import covers_id
from ledger.errors import SignatureError
from ledger.keys import b64decode, b64encode
from ledger.log import Ledger
from ledger.storage import proof_reads
from ledger.storage.domain_repo import DomainRepo
from ledger.storage.domain_tables import LedgerFlag, Org, OrgKey
from ledger.storage.grant_tables import Grant
from ledger.storage.log_tables import CHECKPOINTS, NODES, RECORDS
from ledger.storage.parts_tables import Correction, Installation, Part, PartEvent, Recall
from ledger.storage.state import StateStore
from ledger.storage.warranty_tables import Claim
from ledger.verdict import (
    Authorization,
    FlagFact,
    PartFacts,
    RecallFact,
    SigStatus,
    gtin_matches_prefix,
    judge,
)


@dataclass
class PartView:
    """The domain's view of one part, as far as a scan needs it."""

    facts: PartFacts
    latest_seq: int
    commissioned_seq: int
    brand_owner: str
    custodian: str | None = None
    installation: dict[str, Any] | None = None
    history: list[dict[str, Any]] = field(default_factory=list)
    claims: list[dict[str, Any]] = field(default_factory=list)
    signer_keys: list[bytes] = field(default_factory=list)
    latest_record: bytes | None = None  # the record at ``latest_seq``, as stored (read with the facts)


def history_json(event: PartEvent) -> dict[str, Any]:
    return {"seq": event.seq, "type": event.type, "org": event.org_id, "logged": event.logged,
            "state_after": event.state_after, "authorization": event.authorization, "grant_id": event.grant_id}


def claim_json(claim: Claim) -> dict[str, Any]:
    return {"claim_id": claim.claim_id, "status": claim.status, "workshop": claim.workshop,
            "failure_code": claim.failure_code, "filed_seq": claim.filed_seq, "held_reasons": list(claim.held_reasons),
            "reason_codes": list(claim.reason_codes)}


def part_view(ledger: Ledger, gtin: str, serial: str) -> PartView | None:
    """The part's facts from the domain projections (one read transaction), or ``None`` if never commissioned."""
    with ledger.db.read() as session:
        return _part_view(proof_reads.RawReader.of(session), gtin, serial)


T = TypeVar("T")


class Once(Protocol):
    """Computes a value once per key and log size (see :class:`SizeMemo`), or every time (``_every_time``)."""

    def __call__(self, key: tuple[Any, ...], compute: Callable[[], T]) -> T: ...


def _every_time(key: tuple[Any, ...], compute: Callable[[], T]) -> T:
    return compute()


class SizeMemo:
    """Small facts shared by many verdicts (the newest checkpoint, an org and its keys) by (what, log size).

    Like verdicts, they are pure functions of the log, and the log's size
    read in the same snapshot names the state they were read in: never stale.
    """

    def __init__(self, maxsize: int = 1024) -> None:
        self.maxsize = maxsize
        self._items: OrderedDict[tuple[Any, ...], Any] = OrderedDict()
        self._lock = threading.Lock()

    def bind(self, size: proof_reads.LogSize) -> Once:
        def once(key: tuple[Any, ...], compute: Callable[[], T]) -> T:
            known, found = self.peek(key, size)
            if known:
                return found  # type: ignore[no-any-return]
            value = compute()
            self.store(key, size, value)
            return value

        return once

    def peek(self, key: tuple[Any, ...], size: proof_reads.LogSize) -> tuple[bool, Any]:
        """``(True, value)`` if ``key`` is known at ``size``, else ``(False, None)``."""
        full = (*key, size)
        with self._lock:
            if full in self._items:
                self._items.move_to_end(full)
                return True, self._items[full]
        return False, None

    def store(self, key: tuple[Any, ...], size: proof_reads.LogSize, value: Any) -> None:
        with self._lock:
            self._items[(*key, size)] = value
            while len(self._items) > self.maxsize:
                self._items.popitem(last=False)


def _table(model: type) -> Table:
    table: Table = model.__table__  # type: ignore[attr-defined]
    return table


# The scan's reads, built once (SQLAlchemy reuses their compiled form) and run as Core statements: a
# scan reads a handful of small rows, for which building expressions and loading ORM objects would cost
# more than the database does. Same filters and order as the DomainRepo queries they stand for.
_PARTS, _EVENTS, _FLAGS = _table(Part), _table(PartEvent), _table(LedgerFlag)
_INSTALLS, _RECALLS, _CLAIMS = _table(Installation), _table(Recall), _table(Claim)
_KEYS, _ORGS, _CORRECTIONS = _table(OrgKey), _table(Org), _table(Correction)
_G: BindParameter[str] = bindparam("gtin")
_S: BindParameter[str] = bindparam("serial")
_PART_COLUMNS = (_PARTS.c.state, _PARTS.c.commissioned_by, _PARTS.c.commissioned_kid, _PARTS.c.lot,
                 _PARTS.c.last_seq, _PARTS.c.commissioned_seq, _PARTS.c.brand_owner, _PARTS.c.custodian)
_Q_EVENTS = select(_EVENTS).where(_EVENTS.c.gtin == _G, _EVENTS.c.serial == _S).order_by(_EVENTS.c.seq)
_Q_OPEN_FLAGS = (select(_FLAGS.c.kind, _FLAGS.c.message, _FLAGS.c.seq)
                 .where(_FLAGS.c.entry_id.not_in(select(_CORRECTIONS.c.corrects)),
                        _FLAGS.c.subject == bindparam("subject"))
                 .order_by(_FLAGS.c.seq, _FLAGS.c.kind, _FLAGS.c.subject).limit(1000))
_Q_OPEN_RECALLS = select(_RECALLS).where(_RECALLS.c.gtin == _G, _RECALLS.c.cleared_seq.is_(None)).order_by(
    _RECALLS.c.set_seq)
_Q_CLAIMS = (select(_CLAIMS).where(_CLAIMS.c.gtin == _G, _CLAIMS.c.serial == _S)
             .order_by(_CLAIMS.c.filed_seq).limit(1000))
_Q_OPEN_INSTALLS = (select(_INSTALLS)
                    .where(_INSTALLS.c.gtin == _G, _INSTALLS.c.serial == _S, _INSTALLS.c.removed_seq.is_(None))
                    .order_by(_INSTALLS.c.seq))
_Q_KEYS = (select(_KEYS.c.kid, _KEYS.c.public_key, _KEYS.c.compromised_at)
           .where(_KEYS.c.org_id == bindparam("org")).order_by(_KEYS.c.added_seq))
# Most parts have no flag, claim, open installation or open recall: four indexed existence probes, read
# with the part's row in one statement, decide which of those four lists must be read at all.
def _correlated(query: Select[Any], labels: FromClause | None) -> Select[Any]:
    return query if labels is None else query.correlate(labels)


def _part_present(gtin: ColumnElement[str], serial: ColumnElement[str], about: ColumnElement[str],
                  labels: FromClause | None = None) -> Select[Any]:
    """The part's row with its probes and latest record, for the label ``gtin``, ``serial`` (subject ``about``):
    bound parameters, or columns of ``labels``, a table of the enclosing statement."""
    probes = [
        (select(_FLAGS.c.id).where(_FLAGS.c.subject == about), "flags"),
        (select(_CLAIMS.c.claim_id).where(_CLAIMS.c.gtin == gtin, _CLAIMS.c.serial == serial), "claims"),
        (select(_INSTALLS.c.seq).where(_INSTALLS.c.gtin == gtin, _INSTALLS.c.serial == serial,
                                       _INSTALLS.c.removed_seq.is_(None)), "installs"),
        (select(_RECALLS.c.campaign_id).where(_RECALLS.c.gtin == gtin, _RECALLS.c.cleared_seq.is_(None)), "recalls"),
    ]
    return _correlated(select(
        *_PART_COLUMNS,
        *(_correlated(probe, labels).limit(1).scalar_subquery().label(name) for probe, name in probes),
        # The part's latest record, whose inclusion the verdict proves, in the same statement.
        select(RECORDS.c.record).where(RECORDS.c.seq == _PARTS.c.last_seq).scalar_subquery().label("latest_record"),
    ).where(_PARTS.c.gtin == gtin, _PARTS.c.serial == serial), labels)


_Q_PART_PRESENT = _part_present(_G, _S, bindparam("subject"))
# The scan's one statement (see scan_facts_fast): the log's size, the part's row with its probes and latest
# record, its history and its GTIN's open recalls as JSON arrays, and the stored nodes of the latest record's
# inclusion proof at the lowest levels, which no node cache keeps (PREFETCH_LEVELS). Always one row, the
# part's columns null when there is no such part. One statement is one snapshot on either database.
_EVENT_FIELDS = ("seq", "type", "org_id", "logged", "state_after", "authorization", "grant_id")
_EVENT_PAIRS: list[ColumnElement[Any]] = []
for _name in _EVENT_FIELDS:
    _EVENT_PAIRS += [literal_column(f"'{_name}'"), _EVENTS.c[_name]]
_OPEN_RECALL = _RECALLS.alias("open_recall")  # a name no column has: json_agg(open_recall) is the whole row
_RECALL_PAIRS: list[ColumnElement[Any]] = []
for _column in _OPEN_RECALL.c:  # SQLite has no row-to-JSON: every column by name, JSON columns as JSON
    _RECALL_PAIRS += [literal_column(f"'{_column.name}'"),
                      func.json(_column) if isinstance(_column.type, JSON) else _column]


def _json_lists(dialect: str, gtin: ColumnElement[str], serial: ColumnElement[str],
                labels: FromClause | None = None) -> list[ColumnElement[Any]]:
    """The part's history and its GTIN's open recalls, each as a JSON array (see :func:`_part_present` for
    ``labels``). PostgreSQL orders inside the aggregate; SQLite (before 3.44) cannot, and the reader sorts (by
    seq, set_seq)."""
    this_part = (_EVENTS.c.gtin == gtin) & (_EVENTS.c.serial == serial)
    open_for_gtin = (_OPEN_RECALL.c.gtin == gtin) & _OPEN_RECALL.c.cleared_seq.is_(None)
    if dialect == "postgresql":
        events = select(func.coalesce(
            func.json_agg(aggregate_order_by(func.json_build_object(*_EVENT_PAIRS), _EVENTS.c.seq)),
            literal_column("'[]'::json"))).where(this_part)
        recalls = select(func.coalesce(
            func.json_agg(aggregate_order_by(literal_column(_OPEN_RECALL.name), _OPEN_RECALL.c.set_seq)),
            literal_column("'[]'::json"))).where(open_for_gtin)
    else:
        events = select(func.json_group_array(func.json_object(*_EVENT_PAIRS))).where(this_part)
        recalls = select(func.json_group_array(func.json_object(*_RECALL_PAIRS))).where(open_for_gtin)
    events, recalls = _correlated(events, labels), _correlated(recalls, labels)
    return [events.scalar_subquery().label("events"), recalls.scalar_subquery().label("open_recalls")]


_SIZE_ROW = select(select(func.max(RECORDS.c.seq)).scalar_subquery().label("log_last_seq"),
                   select(func.max(CHECKPOINTS.c.size)).scalar_subquery().label("checkpoint_size")).subquery("size")

#: The scan's one statement also reads the leaf of the part's latest record and the proof's siblings at the
#: levels below this one (stored nodes at ``(level, (seq >> level) XOR 1)``): a random scan almost never finds
#: those in a node cache, while the levels from here up (an eighth of the nodes) stay cached.
PREFETCH_LEVELS = 4


#: The columns of the prefetched nodes, in the order of :func:`~ledger.storage.proof_reads.own_path`.
_PREFETCH_COLUMNS = ("node_leaf", *(f"node_s{level}" for level in range(PREFETCH_LEVELS)))


def _node_at(level: int, idx: ColumnElement[Any]) -> ColumnElement[Any]:
    return (select(NODES.c.hash).where(NODES.c.level == literal_column(str(level)), NODES.c.idx == idx)
            .scalar_subquery())


def _prefetched_nodes(seq: ColumnElement[Any]) -> list[ColumnElement[Any]]:
    """The SQL of ``own_path(seq, PREFETCH_LEVELS)``: the leaf, then each level's sibling, as scalar reads."""
    columns: list[ColumnElement[Any]] = [_node_at(0, seq)]
    one: ColumnElement[Any] = literal_column("1")
    for level in range(PREFETCH_LEVELS):
        shifted = seq.bitwise_rshift(literal_column(str(level))) if level else seq
        sibling = shifted.bitwise_or(one) - shifted.bitwise_and(one)  # shifted XOR 1, in SQL both databases speak
        columns.append(_node_at(level, sibling))
    return [column.label(name) for column, name in zip(columns, _PREFETCH_COLUMNS, strict=True)]


def _scan_statement(dialect: str, labels: FromClause | None = None) -> Select[Any]:
    """The scan's one statement for the label in the parameters ``gtin``, ``serial`` and ``subject``, or in the
    columns of the same names of ``labels``, a table of the enclosing statement."""
    gtin: ColumnElement[str] = _G if labels is None else labels.c.gtin
    serial: ColumnElement[str] = _S if labels is None else labels.c.serial
    about: ColumnElement[str] = bindparam("subject") if labels is None else labels.c.subject
    present = _part_present(gtin, serial, about, labels)
    facts = present.subquery("facts") if labels is None else present.lateral("facts")
    return (select(_SIZE_ROW, facts, *_json_lists(dialect, gtin, serial, labels),
                   *_prefetched_nodes(facts.c.last_seq))
            .select_from(_SIZE_ROW.outerjoin(facts, true())))


# PostgreSQL runs the statement for many labels below; its one-label form is what each label's row of that
# statement must equal (the tests compare them).
_Q_SCAN = {name: _scan_statement(name) for name in ("postgresql", "sqlite")}
#: The labels of :data:`_Q_SCAN_MANY`, in the order given (``n`` counts from 1).
_LABELS = (func.unnest(bindparam("gtins", type_=ARRAY(String)), bindparam("serials", type_=ARRAY(String)),
                       bindparam("subjects", type_=ARRAY(String)))
           .table_valued("gtin", "serial", "subject", with_ordinality="n").render_derived(name="labels"))
_SCAN_EACH = _scan_statement("postgresql", _LABELS).lateral("scan")
#: :data:`_Q_SCAN` for several labels at once, on PostgreSQL: one row each, in the order of the arrays
#: ``gtins``, ``serials`` and ``subjects``. Concurrent scans share it
#: (:meth:`~ledger.storage.proof_reads.SnapshotReads.batched_each`).
_LABEL_ARRAYS = ("gtins", "serials", "subjects")
_Q_SCAN_MANY = (select(_LABELS.c.n, *_SCAN_EACH.c).select_from(_LABELS.join(_SCAN_EACH, true()))
                .order_by(_LABELS.c.n))
_Q_ORG = select(_ORGS.c.org_id, _ORGS.c.name, _ORGS.c.kind, _ORGS.c.country).where(_ORGS.c.org_id == bindparam("org"))


def _open_recalls(reader: proof_reads.RawReader, gtin: str, serial: str, lot: str | None) -> list[Recall]:
    """Open recalls covering the part, by the domain's ``covers`` rule."""
    return _covering(reader.rows(_Q_OPEN_RECALLS, {"gtin": gtin}), gtin, serial, lot)


def _covering(recall_rows: list[dict[str, Any]], gtin: str, serial: str, lot: str | None) -> list[Recall]:
    """The recalls among ``recall_rows`` (raw open-recall rows for the part's GTIN) that cover the part."""
    if not recall_rows:
        return []
    recalls = [Recall(**{**row, "lots": proof_reads.json_value(row["lots"]),
                         "serial_ranges": proof_reads.json_value(row["serial_ranges"])}) for row in recall_rows]
    return [r for r in recalls if covers_id(r, gtin, serial, lot)]


def _event_json(row: dict[str, Any]) -> dict[str, Any]:
    """:func:`history_json` of a raw ``part_events`` row."""
    return {"seq": row["seq"], "type": row["type"], "org": row["org_id"], "logged": row["logged"],
            "state_after": row["state_after"], "authorization": row["authorization"], "grant_id": row["grant_id"]}


def _claim_json(row: dict[str, Any]) -> dict[str, Any]:
    """:func:`claim_json` of a raw ``claims`` row."""
    return {"claim_id": row["claim_id"], "status": row["status"], "workshop": row["workshop"],
            "failure_code": row["failure_code"], "filed_seq": row["filed_seq"],
            "held_reasons": list(proof_reads.json_value(row["held_reasons"])),
            "reason_codes": list(proof_reads.json_value(row["reason_codes"]))}


def _part_view(reader: proof_reads.RawReader, gtin: str, serial: str, once: Once = _every_time) -> PartView | None:
    ids = {"gtin": gtin, "serial": serial}
    about = subject(gtin, serial)
    part = reader.first(_Q_PART_PRESENT, {**ids, "subject": about})
    if part is None:
        return None
    events = reader.rows(_Q_EVENTS, ids)
    flags = reader.rows(_Q_OPEN_FLAGS, {"subject": about}) if part["flags"] is not None else []
    recalls = _open_recalls(reader, gtin, serial, part["lot"]) if part["recalls"] is not None else []
    claims = reader.rows(_Q_CLAIMS, ids) if part["claims"] is not None else []
    installs = reader.rows(_Q_OPEN_INSTALLS, ids) if part["installs"] is not None else []
    org = part["commissioned_by"]
    keys = once(("keys", org), lambda: reader.rows(_Q_KEYS, {"org": org}))
    return _view(gtin, serial, part, events=events, flags=flags, recalls=recalls, claims=claims, installs=installs,
                 keys=keys)


def _view(gtin: str, serial: str, part: Mapping[str, Any], *, events: list[dict[str, Any]],
          flags: list[dict[str, Any]], recalls: list[Recall], claims: list[dict[str, Any]],
          installs: list[dict[str, Any]], keys: list[dict[str, Any]]) -> PartView:
    """The :class:`PartView` of the rows read for a part (the row of ``_Q_PART_PRESENT`` and the lists it
    says exist)."""
    commission_key = next((k for k in keys if k["kid"] == part["commissioned_kid"]), None)
    commissioned_at = events[0]["logged"] if events else None
    compromised_at = commission_key["compromised_at"] if commission_key is not None else None
    compromised = bool(compromised_at is not None and commissioned_at is not None and compromised_at <= commissioned_at)
    installation = None
    if installs:
        inst = installs[-1]
        installation = {k: inst[k] for k in ("vehicle", "workshop", "site", "seq", "logged", "authorization",
                                             "grant_id")}
    facts = PartFacts(
        gtin=gtin, serial=serial, state=part["state"], commissioned_by=part["commissioned_by"], lot=part["lot"],
        open_flags=tuple(FlagFact(kind=f["kind"], message=f["message"], seq=f["seq"]) for f in flags),
        recalls=tuple(RecallFact(campaign_id=r.campaign_id, reason=r.reason_code, seq=r.set_seq) for r in recalls),
        key_compromised=compromised,
    )
    return PartView(facts=facts, latest_seq=part["last_seq"], commissioned_seq=part["commissioned_seq"],
                    brand_owner=part["brand_owner"], custodian=part["custodian"], installation=installation,
                    history=[_event_json(e) for e in events], claims=[_claim_json(c) for c in claims],
                    signer_keys=[bytes(k["public_key"]) for k in keys],
                    latest_record=None if part["latest_record"] is None else bytes(part["latest_record"]))


def label_sig(ledger: Ledger, view: PartView) -> str | None:
    """The AI 8030 value recorded in the commissioning entry (``body.part_sig``), if the org recorded one."""
    value = ledger.record(view.commissioned_seq).entry.body.get("part_sig")
    return value if isinstance(value, str) else None


def grant_json(grant: Grant) -> dict[str, Any]:
    return {"grant_id": grant.grant_id, "kind": grant.kind, "grantor": grant.grantor, "grantee": grant.grantee,
            "activities": list(grant.activities), "gtin_prefixes": list(grant.gtin_prefixes),
            "brands": list(grant.brands), "categories": list(grant.categories), "countries": list(grant.countries),
            "sites": list(grant.sites), "technicians": list(grant.technicians),
            "valid_from": grant.valid_from, "valid_until": grant.valid_until,
            "status": grant.status, "issued_seq": grant.issued_seq, "changed_seq": grant.changed_seq}


def recall_json(recall: Recall) -> dict[str, Any]:
    return {"campaign_id": recall.campaign_id, "oem": recall.oem, "gtin": recall.gtin, "lots": list(recall.lots),
            "serial_ranges": [list(r) for r in recall.serial_ranges], "reason": recall.reason_code,
            "set_seq": recall.set_seq, "cleared_seq": recall.cleared_seq}


def bundle_grants(ledger: Ledger) -> list[dict[str, Any]]:
    """Every workshop and commission grant (all statuses: a revoked grant must be known offline)."""
    with ledger.db.read() as session:
        return [grant_json(g) for g in DomainRepo(session).list_grants(limit=1_000_000)]


def bundle_recalls(ledger: Ledger) -> list[dict[str, Any]]:
    """Every open recall campaign, in trust-bundle form."""
    with ledger.db.read() as session:
        return [recall_json(r) for r in DomainRepo(session).recalls(open_only=True)]


def workshop_authorization(ledger: Ledger, workshop: str, gtin: str, serial: str, activity: str,
                           *, now: str) -> Authorization:
    """The domain's authorization rule for ``workshop`` on this part, judged as of the log's head and ``now``."""
    with ledger.db.read() as session:
        org = StateStore(session).get_org(workshop)
        if org is None:
            return Authorization(workshop, activity, False, None, "unknown_org",
                                 f"{workshop} is not a registered org")
        repo = DomainRepo(session)
        part = repo.get_part(gtin, serial)
        if part is None:
            return Authorization(workshop, activity, False, None, "unknown_part",
                                 f"no part {gtin}/{serial} to authorize {activity} on")
        result = authz.judge(repo, workshop=org, part=part, activity=activity, seq=repo.head_seq() + 1, logged=now)
    return Authorization(workshop, activity, result.authorized, result.grant_id, result.status, result.message)


def _signature(ledger: Ledger, link: PartLink, view: PartView | None) -> tuple[SigStatus, str | None]:
    if link.sig is None:
        return "missing", None
    if view is not None:
        candidates = [(view.facts.commissioned_by, view.signer_keys)]
    else:
        candidates = [(o["org_id"], [b64decode(k["public_key"], field="public_key", size=32) for k in o["keys"]])
                      for o in directory.all_orgs_with_keys(ledger)
                      if any(gtin_matches_prefix(link.gtin, p) for p in o["gs1_prefixes"])]
        if not candidates:
            return "unknown_key", None
    for org_id, keys in candidates:
        for public_key in keys:
            try:
                verify_part_sig(public_key, link.gtin, link.serial, link.sig)
            except SignatureError:
                continue
            return "valid", org_id
    return "invalid", None


def _proof(reader: proof_reads.RawReader, seq: int, raw: bytes | None, nodes: proof_reads.NodeCache | None,
           once: Once = _every_time) -> dict[str, Any] | None:
    """Inclusion of record ``seq`` (its bytes ``raw``, read with the part's facts) in the latest checkpoint,
    read in the same transaction as the facts."""
    checkpoint = once(("checkpoint",), lambda: proof_reads.latest_checkpoint(reader))
    if checkpoint is None or raw is None or seq >= checkpoint[0]:
        return None
    leaf, proof = proof_reads.inclusion_proof(reader, seq, checkpoint[0], nodes)
    return _proof_json(seq, raw, checkpoint, leaf, proof)


def _proof_json(seq: int, raw: bytes, checkpoint: tuple[int, bytes, str], leaf: bytes,
                proof: list[bytes]) -> dict[str, Any]:
    size, _root, note = checkpoint
    return {"seq": seq, "tree_size": size, "leaf_hash": b64encode(leaf), "record": b64encode(raw),
            "inclusion_proof": merkle.encode_proof(proof), "checkpoint": note}


def _org_summary(reader: proof_reads.RawReader, org_id: str, once: Once = _every_time) -> dict[str, Any] | None:
    return _org_json(once(("org", org_id), lambda: reader.first(_Q_ORG, {"org": org_id})))


def _org_json(org: dict[str, Any] | None) -> dict[str, Any] | None:
    return None if org is None else {k: org[k] for k in ("org_id", "name", "kind", "country")}


def _warranty(claims: list[dict[str, Any]]) -> dict[str, Any]:
    if not claims:
        return {"status": "none", "claims": []}
    open_states = {"filed", "open", "held", "pending", "submitted"}
    status = "open_claims" if any(str(c.get("status", "")) in open_states for c in claims) else "claimed"
    return {"status": status, "claims": claims}


@dataclass(frozen=True)
class CachedVerdict:
    """The log-determined part of a verdict, kept only as its JSON without the closing brace.

    Bytes, not a tree of dicts: thousands of cached verdicts are then a few
    thousand objects the garbage collector never traverses, instead of
    hundreds of thousands that every full collection would (a latency spike
    under load).
    """

    json_head: bytes

    @classmethod
    def of(cls, document: dict[str, Any]) -> CachedVerdict:
        return cls(float_free_json(document)[:-1])

    @property
    def document(self) -> dict[str, Any]:
        decoded: dict[str, Any] = json.loads(self.json_head + b"}")
        return decoded

    def to_json(self, *, authorization: dict[str, Any] | None, now: str) -> bytes:
        """The full verdict's JSON: equal to rendering :meth:`complete` (same keys, same order)."""
        rendered = b"null" if authorization is None else response_json(authorization)
        return b"".join((self.json_head, b',"authorization":', rendered, b',"checked_at":', response_json(now), b"}"))

    def complete(self, *, authorization: dict[str, Any] | None, now: str) -> dict[str, Any]:
        return {**self.document, "authorization": authorization, "checked_at": now}


CacheKey = tuple[str, str, str | None, str | None, str, proof_reads.LogSize]


class VerdictCache:
    """Verdicts by (GTIN, serial, label lot, label signature, resolver base, log size), least recently used out.

    Everything in a verdict except ``checked_at`` and the caller's
    authorization is a pure function of the log, and an append-only log is
    fully identified by its size, so an entry keyed by the size read in the
    transaction that computed it is never stale: the first append after it
    changes the key. Repeated scans of the same label (a phone reloading, a
    shelf being checked twice) then cost one small query. It also holds the
    Merkle node cache of the proofs it builds (:class:`~ledger.storage.proof_reads.NodeCache`) and the
    facts many verdicts share (:class:`SizeMemo`).

    It also follows how many of its recent look-ups hit (:attr:`hit_rate`, a moving average over about the
    last :data:`HIT_RATE_SPAN`): a scan reads the log's size on its own first only while that is likely to
    find the verdict here (:attr:`probe_pays`); otherwise the verdict's own statement reads the size, and
    the cache is looked up with it all the same.
    """

    #: How many recent look-ups :attr:`hit_rate` follows (the weight of the newest is its inverse).
    HIT_RATE_SPAN = 64
    #: From this :attr:`hit_rate` up, a separate size probe first saves more than it costs: on a machine of
    #: this project's benchmarks a probe that hits costs about a third of a verdict's statement, and one
    #: that misses comes on top of it; break-even measured near one hit in two.
    PROBE_PAYS_FROM = 0.5

    def __init__(self, maxsize: int = 4096, *, node_cache_size: int = 65_536) -> None:
        self.maxsize = maxsize
        self.nodes = proof_reads.NodeCache(node_cache_size, min_level=PREFETCH_LEVELS)
        self.shared = SizeMemo()
        self._items: OrderedDict[CacheKey, CachedVerdict] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0
        self.hit_rate = 0.0

    @property
    def probe_pays(self) -> bool:
        """Whether a scan should read the log's size first, to look its verdict up before anything else."""
        return self.hit_rate >= self.PROBE_PAYS_FROM

    @staticmethod
    def key(link: PartLink, resolver_base: str, size: proof_reads.LogSize) -> CacheKey:
        return (link.gtin, link.serial, link.lot, link.sig, resolver_base, size)

    def get(self, key: CacheKey, *, count: bool = True) -> CachedVerdict | None:
        """The verdict kept under ``key``; ``count=False``: a look-up not to count (yet: a scan that looks its
        verdict up again later counts once, see :meth:`count_hit`)."""
        with self._lock:
            value = self._items.get(key)
            if count:
                self._count(value is not None)
            if value is not None:
                self._items.move_to_end(key)
            return value

    def count_hit(self) -> None:
        """Count a hit of an uncounted look-up."""
        with self._lock:
            self._count(True)

    def _count(self, hit: bool) -> None:
        if hit:
            self.hits += 1
            self.hit_rate += (1.0 - self.hit_rate) / self.HIT_RATE_SPAN
        else:
            self.misses += 1
            self.hit_rate -= self.hit_rate / self.HIT_RATE_SPAN

    def put(self, key: CacheKey, value: CachedVerdict) -> None:
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self.maxsize:
                self._items.popitem(last=False)


def _facts_document(ledger: Ledger, reader: proof_reads.RawReader, link: PartLink, resolver_base: str,
                    nodes: proof_reads.NodeCache | None, once: Once = _every_time) -> dict[str, Any]:
    view = _part_view(reader, link.gtin, link.serial, once)
    maker = _org_summary(reader, view.facts.commissioned_by, once) if view else None
    proof = _proof(reader, view.latest_seq, view.latest_record, nodes, once) if view else None
    return _document(ledger, link, resolver_base, view, maker, proof)


def _document(ledger: Ledger, link: PartLink, resolver_base: str, view: PartView | None,
              maker: dict[str, Any] | None, proof: dict[str, Any] | None) -> dict[str, Any]:
    """The log-determined verdict document of a scanned label, from the part's view, its maker and the proof."""
    sig, signed_by = _signature(ledger, link, view)
    judgement = judge(view.facts if view else None, sig=sig, label_lot=link.lot, online=True)
    facts = view.facts if view else None
    lot = facts.lot if facts else None
    return {
        **judgement.to_json(),
        "part": {"gtin": link.gtin, "serial": link.serial, "lot": lot, "label_lot": link.lot,
                 "uri": build_uri(resolver_base, link.gtin, link.serial, lot=lot or link.lot, sig=link.sig)},
        "signature": {"status": sig, "signed_by": signed_by},
        "commissioned_by": maker,
        "state": facts.state if facts else None,
        "custodian": view.custodian if view else None,
        "installation": view.installation if view else None,
        "history": view.history if view else [],
        "warranty": _warranty(view.claims if view else []),
        "open_flags": [{"kind": f.kind, "message": f.message, "seq": f.seq} for f in facts.open_flags]
        if facts else [],
        "recalls": [{"campaign_id": r.campaign_id, "reason": r.reason, "seq": r.seq} for r in facts.recalls]
        if facts else [],
        "proof": proof,
    }


@contextmanager
def _session_snapshot(ledger: Ledger) -> Iterator[proof_reads.RawReader]:
    with ledger.db.read() as session:
        yield proof_reads.RawReader.of(session)


def scan_facts(ledger: Ledger, link: PartLink, *, resolver_base: str, cache: VerdictCache | None = None,
               reads: proof_reads.SnapshotReads | None = None, count: bool = True) -> CachedVerdict:
    """The log-determined part of the verdict for a scanned Digital Link, from ``cache`` when the log is unchanged.

    The log's size, the part's facts, the commissioning org, the checkpoint
    and the inclusion proof are read in one read transaction (a snapshot of
    ``reads``, else a session of the ledger's reader), so they describe one
    state of the log, and the entry is cached under that state's size.
    ``count=False``: the scan's look-up in ``cache`` was counted already (:meth:`VerdictCache.get`).
    """
    with (reads.snapshot() if reads is not None else _session_snapshot(ledger)) as reader:
        size = proof_reads.log_size(reader)
        key = VerdictCache.key(link, resolver_base, size)
        found = cache.get(key, count=count) if cache is not None else None
        if found is not None:
            return found
        value = CachedVerdict.of(_facts_document(ledger, reader, link, resolver_base,
                                                 cache.nodes if cache is not None else None,
                                                 cache.shared.bind(size) if cache is not None else _every_time))
    if cache is not None:
        cache.put(key, value)
    return value


class _NodesWanted:
    """A verdict that the scan's one statement decided but whose proof needs stored nodes neither the
    statement nor the node cache had: :attr:`query` reads them, :meth:`finish` completes the verdict."""

    def __init__(self, finish: Callable[[Sequence[Sequence[Any]]], CachedVerdict],
                 query: tuple[Select[Any], dict[str, int]]) -> None:
        self.finish = finish
        self.query = query


_SNAPSHOT = "snapshot"  # the scan's one statement cannot decide this verdict: read it in one snapshot


def _from_scan_row(ledger: Ledger, link: PartLink, resolver_base: str, cache: VerdictCache, row: Mapping[str, Any],
                   events: list[dict[str, Any]], recall_rows: list[dict[str, Any]]
                   ) -> CachedVerdict | _NodesWanted | str | None:
    """The verdict from the row of the scan's one statement (:data:`_Q_SCAN`): cached or computed, or the
    node read its proof still needs, or :data:`_SNAPSHOT`, or ``None`` for a part never commissioned."""
    size = proof_reads.size_of((row["log_last_seq"], row["checkpoint_size"]))
    key = VerdictCache.key(link, resolver_base, size)
    cached = cache.get(key)
    if cached is not None or row["commissioned_by"] is None:
        return cached
    org = row["commissioned_by"]
    known = _shared_facts(cache, org, size)
    if any(row[k] is not None for k in ("flags", "claims", "installs")) or not all(
            hit for hit, _ in known.values()):
        return _SNAPSHOT
    recalls = _covering(recall_rows, link.gtin, link.serial, row["lot"])
    view = _view(link.gtin, link.serial, row, events=events, flags=[], recalls=recalls, claims=[], installs=[],
                 keys=known["keys"][1])
    maker = _org_json(known["org"][1])

    def verdict(proof: dict[str, Any] | None) -> CachedVerdict:
        value = CachedVerdict.of(_document(ledger, link, resolver_base, view, maker, proof))
        cache.put(key, value)
        return value

    seq, checkpoint, raw = row["last_seq"], known["checkpoint"][1], row["latest_record"]
    if checkpoint is None or raw is None or seq >= checkpoint[0]:
        return verdict(None)
    plan = proof_reads.ProofPlan(seq, checkpoint[0], cache.nodes)
    nodes, query = proof_reads.nodes_request(plan.nodes(), cache.nodes, known=_prefetched(seq, row))

    def finish(rows: Sequence[Sequence[Any]]) -> CachedVerdict:
        leaf, hashes = plan.proof(proof_reads.nodes_read(nodes, rows, cache.nodes, record=seq))
        return verdict(_proof_json(seq, bytes(raw), checkpoint, leaf, hashes))

    return finish(()) if query is None else _NodesWanted(finish, query)


def _prefetched(seq: int, row: Mapping[str, Any]) -> dict[merkle.NodeKey, bytes]:
    """The stored nodes the scan's one statement read with the part (:func:`~ledger.storage.proof_reads.own_path`;
    absent ones are null)."""
    keys = proof_reads.own_path(seq, PREFETCH_LEVELS)
    return {key: bytes(row[name]) for key, name in zip(keys, _PREFETCH_COLUMNS, strict=True) if row[name] is not None}


def scan_facts_fast(ledger: Ledger, link: PartLink, *, resolver_base: str, cache: VerdictCache,
                    reads: proof_reads.SnapshotReads) -> CachedVerdict:
    """:func:`scan_facts` on a local SQLite file in as few statements as it can (see :func:`scan_facts_async`):
    one read for most parts, a second for the proof's nodes the node cache lacks; :func:`scan_facts` for the
    rest."""
    row = reads.local_rows(_Q_SCAN["sqlite"], {"gtin": link.gtin, "serial": link.serial,
                                               "subject": subject(link.gtin, link.serial)})[0]
    events = sorted(json.loads(row["events"]), key=lambda event: int(event["seq"]))
    recalls = sorted(json.loads(row["open_recalls"]), key=lambda recall: int(recall["set_seq"]))
    step = _from_scan_row(ledger, link, resolver_base, cache, row, events, recalls)
    if isinstance(step, _NodesWanted):
        return step.finish(reads.local_tuples(*step.query))
    if isinstance(step, CachedVerdict):
        return step
    return scan_facts(ledger, link, resolver_base=resolver_base, cache=cache, reads=reads, count=False)


async def scan_facts_async(ledger: Ledger, link: PartLink, *, resolver_base: str, cache: VerdictCache,
                           reads: proof_reads.SnapshotReads) -> CachedVerdict | None:
    """:func:`scan_facts` on PostgreSQL without leaving the event loop, in as few statements as it can.

    One statement (:data:`_Q_SCAN`, one snapshot) reads the log's size, the
    part's row with its existence probes and latest record, its history, its
    GTIN's open recalls and the lowest levels of its proof's stored nodes;
    concurrent scans share one such statement for all their labels
    (:data:`_Q_SCAN_MANY`). For
    most parts that is every fact that changes: when the part has no flag,
    claim or open installation, and its maker, the maker's keys and the newest
    checkpoint are already known at that size, the rest of the proof comes from
    the node cache, or else a second statement reads the nodes it lacks —
    stored subtree hashes, which no append changes, so reading them later is
    as good as in the same snapshot. Otherwise the verdict is read again
    inside one snapshot (:func:`_scan_facts_snapshot`). ``None`` for a label
    of a part never commissioned: its signature is checked against every
    org's keys, which :func:`scan_facts` does.
    """
    label = (link.gtin, link.serial, subject(link.gtin, link.serial))
    row = await reads.batched_each(_Q_SCAN_MANY, _LABEL_ARRAYS, label)
    step = _from_scan_row(ledger, link, resolver_base, cache, row, row["events"], row["open_recalls"])
    if isinstance(step, _NodesWanted):
        return step.finish([(r["level"], r["idx"], r["hash"]) for r in await reads.batched(*step.query)])
    if step == _SNAPSHOT:
        async with reads.async_reads() as db:
            return await _scan_facts_snapshot(ledger, db, link, resolver_base, cache)
    assert step is None or isinstance(step, CachedVerdict)
    return step


def _shared_facts(cache: VerdictCache, org: str, size: proof_reads.LogSize) -> dict[str, tuple[bool, Any]]:
    """What :class:`SizeMemo` knows at ``size`` of the maker's keys and row and of the newest checkpoint."""
    return {name: cache.shared.peek(key, size)
            for name, key in (("keys", ("keys", org)), ("org", ("org", org)), ("checkpoint", ("checkpoint",)))}


async def _scan_facts_snapshot(ledger: Ledger, db: proof_reads.AsyncReads, link: PartLink, resolver_base: str,
                               cache: VerdictCache) -> CachedVerdict | None:
    """The verdict's facts read inside one snapshot, in two pipelined rounds of one round trip each.

    The first round reads the log's size, the part's row (with its existence
    probes and latest record) and its history; the second, whatever those say
    is needed and the caches lack: the part's flags, recalls, claims and open
    installation, its maker and keys, the newest checkpoint (whose size the
    first round read) and the proof's nodes.
    """
    ids = {"gtin": link.gtin, "serial": link.serial}
    about = subject(link.gtin, link.serial)
    size_rows, part_rows, events = await db.round(
        [(proof_reads.SIZE_SQL, None), (_Q_PART_PRESENT, {**ids, "subject": about}), (_Q_EVENTS, ids)])
    size = proof_reads.size_of(tuple(size_rows[0].values()) if size_rows else None)
    key = VerdictCache.key(link, resolver_base, size)
    cached = cache.get(key, count=False)  # counted by the scan's one statement
    if cached is not None or not part_rows:
        await db.round([], last=True)
        return cached
    part = part_rows[0]
    org = part["commissioned_by"]
    requests: dict[str, proof_reads.Request] = {}
    if part["flags"] is not None:
        requests["flags"] = (_Q_OPEN_FLAGS, {"subject": about})
    if part["recalls"] is not None:
        requests["recalls"] = (_Q_OPEN_RECALLS, {"gtin": link.gtin})
    if part["claims"] is not None:
        requests["claims"] = (_Q_CLAIMS, ids)
    if part["installs"] is not None:
        requests["installs"] = (_Q_OPEN_INSTALLS, ids)
    shared = cache.shared
    memo = _shared_facts(cache, org, size)
    for name, request in (("keys", (_Q_KEYS, {"org": org})), ("org", (_Q_ORG, {"org": org})),
                          ("checkpoint", (proof_reads.LATEST_CHECKPOINT, None))):
        if not memo[name][0]:
            requests[name] = request
    seq, tree_size, raw = part["last_seq"], size[1], part["latest_record"]
    proving = raw is not None and seq < tree_size  # the newest checkpoint's size is the size's second half
    nodes: dict[merkle.NodeKey, bytes] = {}
    plan = proof_reads.ProofPlan(seq, tree_size, cache.nodes) if proving else None
    if plan is not None:
        nodes, node_query = proof_reads.nodes_request(plan.nodes(), cache.nodes)
        if node_query is not None:
            requests["nodes"] = node_query
    read = dict(zip(requests, await db.round(list(requests.values()), last=True), strict=True))
    keys = memo["keys"][1] if "keys" not in read else read["keys"]
    org_row = memo["org"][1] if "org" not in read else (read["org"][0] if read["org"] else None)
    checkpoint = memo["checkpoint"][1] if "checkpoint" not in read else proof_reads.checkpoint_of(
        read["checkpoint"][0] if read["checkpoint"] else None)
    for name, value in (("keys", keys), ("org", org_row)):
        if name in read:
            shared.store((name, org), size, value)
    if "checkpoint" in read:
        shared.store(("checkpoint",), size, checkpoint)
    recalls = _covering(read.get("recalls", []), link.gtin, link.serial, part["lot"])
    view = _view(link.gtin, link.serial, part, events=events, flags=read.get("flags", []), recalls=recalls,
                 claims=read.get("claims", []), installs=read.get("installs", []), keys=keys)
    proof = None
    if plan is not None and checkpoint is not None:
        if "nodes" in read:
            nodes = proof_reads.nodes_read(nodes, [tuple(row.values()) for row in read["nodes"]], cache.nodes,
                                           record=seq)
        leaf, hashes = plan.proof(nodes)
        proof = _proof_json(seq, bytes(raw), checkpoint, leaf, hashes)
    value = CachedVerdict.of(_document(ledger, link, resolver_base, view, _org_json(org_row), proof))
    cache.put(key, value)
    return value


def scan_authorization(ledger: Ledger, link: PartLink, *, workshop: str | None, activity: str,
                       now: str) -> dict[str, Any] | None:
    """The caller's authorization part of a verdict (``None`` when the caller named no workshop)."""
    if workshop is None:
        return None
    return workshop_authorization(ledger, workshop, link.gtin, link.serial, activity, now=now).to_json()


def resolve_scan(ledger: Ledger, link: PartLink, *, resolver_base: str, now: str, workshop: str | None = None,
                 activity: str = "install", cache: VerdictCache | None = None) -> dict[str, Any]:
    """The verdict document for a scanned Digital Link (see ``api.scan_schemas.ScanVerdict``)."""
    facts = scan_facts(ledger, link, resolver_base=resolver_base, cache=cache)
    authorization = scan_authorization(ledger, link, workshop=workshop, activity=activity, now=now)
    return facts.complete(authorization=authorization, now=now)


__all__ = [
    "CachedVerdict",
    "PartView",
    "VerdictCache",
    "bundle_grants",
    "bundle_recalls",
    "claim_json",
    "grant_json",
    "history_json",
    "label_sig",
    "part_view",
    "recall_json",
    "resolve_scan",
    "scan_authorization",
    "scan_facts",
    "scan_facts_async",
    "scan_facts_fast",
    "workshop_authorization",
]
