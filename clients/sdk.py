"""The partsledger Python SDK: a client that trusts the server for nothing it can check.

Entries are built and signed in this process (:func:`ledger.entries.make_signed_entry`);
only the signed entry travels. Everything that comes back is checked before it
is returned:

* a **receipt**'s checkpoint must be signed by the log's key, must extend the
  newest checkpoint this client has seen (:class:`~clients.witness.Witness`,
  with a consistency proof from the server), and its inclusion proof must lead
  from the entry's leaf hash to that checkpoint's root;
* a **checkpoint** is accepted only if it extends the remembered one; a
  smaller head or a second root for one size raises
  :class:`~clients.errors.LogShrunk` / :class:`~clients.errors.LogForked` with
  both signed notes, and the remembered checkpoint does not move;
* a **record** must be in canonical form, hash to its served leaf hash, say
  what its decoded form says, and lie inside the checkpoint it is read under.

The log's verifier key is pinned by the caller (``log_key=``) or trusted on
first use and then remembered in the state file. Every failure is an exception
from one tree (:mod:`clients.errors`, rooted at :class:`ledger.errors.LedgerError`).

    >>> client = PartsLedger("http://127.0.0.1:8000", state_path=Path("~/.partsledger/state.json"))
    >>> receipt = client.submit(key, org="acme-oem", type="org.register", body={...})
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson

from clients.errors import ServerError, ServerUnreachable, from_problem
from clients.witness import CheckpointStore, Witness
from ledger import merkle
from ledger.checkpoint import Checkpoint
from ledger.digital_link import sign_part_id
from ledger.entries import Record, SignedEntry, make_signed_entry, parse_record, parse_record_json
from ledger.errors import IntegrityError, InvalidInput, LedgerError, ProofError
from ledger.keys import KeyPair
from ledger.note import Verifier, parse_verifier_key

DEFAULT_TIMEOUT = 30.0
MAX_PAGE = 1000


@dataclass(frozen=True)
class VerifiedReceipt:
    """A receipt whose checkpoint and inclusion proof this client has checked."""

    seq: int
    entry_id: str
    leaf_hash: bytes
    tree_size: int
    checkpoint: str
    inclusion_proof: list[bytes]
    duplicate: bool
    flags: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"seq": self.seq, "entry_id": self.entry_id, "leaf_hash": _b64(self.leaf_hash),
                "tree_size": self.tree_size, "checkpoint": self.checkpoint,
                "inclusion_proof": merkle.encode_proof(self.inclusion_proof), "duplicate": self.duplicate,
                "flags": self.flags}


@dataclass(frozen=True)
class VerifiedCheckpoint:
    note: str
    checkpoint: Checkpoint

    @property
    def size(self) -> int:
        return self.checkpoint.size

    @property
    def root(self) -> bytes:
        return self.checkpoint.root


@dataclass(frozen=True)
class ServedRecord:
    """A record whose bytes, leaf hash and decoded form agree (signatures are the auditor's job)."""

    record: Record
    leaf_hash: bytes

    @property
    def seq(self) -> int:
        return self.record.seq


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: Any, what: str) -> bytes:
    if not isinstance(text, str):
        raise ServerError(f"server sent {what} that is not a base64 string")
    try:
        return base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        raise ServerError(f"server sent {what} that is not valid base64") from None


def _proof(items: Any, what: str) -> list[bytes]:
    try:
        return merkle.decode_proof(items)
    except InvalidInput as exc:
        raise ProofError(f"{what}: {exc.message}", code="bad_proof") from None


def with_part_sig(key: KeyPair, body: dict[str, Any]) -> dict[str, Any]:
    """``body`` plus ``part_sig`` (:func:`ledger.digital_link.sign_part_id`) when it names a valid GTIN and serial.

    A body with a bad GTIN or serial is left as it is, for the server to refuse with the field's own code.
    """
    gtin, serial = body.get("gtin"), body.get("serial")
    if not isinstance(gtin, str) or not isinstance(serial, str):
        return body
    try:
        sig = sign_part_id(key, gtin, serial)
    except InvalidInput:
        return body
    return {**body, "part_sig": sig}


def check_served_record(item: Any, *, expected_seq: int | None = None) -> ServedRecord:
    """Check one ``RecordOut`` from the API: canonical bytes, leaf hash, decoded copy, seq.

    Raises :class:`IntegrityError` naming the seq.
    """
    if not isinstance(item, dict):
        raise ServerError("server sent a record that is not a JSON object")
    seq = item.get("seq")
    if not isinstance(seq, int) or isinstance(seq, bool):
        raise ServerError("server sent a record without an integer seq")
    if expected_seq is not None and seq != expected_seq:
        raise IntegrityError(f"expected record {expected_seq}, server sent record {seq}", seq=expected_seq)
    raw = _unb64(item.get("canonical"), f"record {seq} bytes")
    try:
        record, decoded = parse_record_json(raw)
    except LedgerError as exc:
        raise IntegrityError(f"record {seq}: {exc.message}", seq=seq) from None
    if record.seq != seq:
        raise IntegrityError(f"record {seq}: its bytes say seq {record.seq}", seq=seq)
    leaf = _unb64(item.get("leaf_hash"), f"record {seq} leaf hash")
    if leaf != record.leaf_hash:
        raise IntegrityError(f"record {seq}: leaf hash does not match SHA-256(0x00 || record bytes)", seq=seq)
    if "record" in item and item["record"] != decoded:
        raise IntegrityError(f"record {seq}: decoded copy differs from the canonical bytes", seq=seq)
    return ServedRecord(record=record, leaf_hash=leaf)


class PartsLedger:
    """A verifying client for one partsledger server.

    ``state_path`` keeps the log key and newest checkpoint across runs (memory only when None);
    ``log_key`` pins the log's note verifier key; ``transport`` swaps the network (tests).
    """

    def __init__(self, base_url: str, *, state_path: Path | None = None, log_key: str | None = None,
                 transport: httpx.BaseTransport | None = None, timeout: float = DEFAULT_TIMEOUT,
                 headers: dict[str, str] | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.store = CheckpointStore(state_path)
        self.pinned_key = log_key
        if log_key is not None:
            parse_verifier_key(log_key)
        self._http = httpx.Client(base_url=self.base_url, transport=transport, timeout=timeout,
                                  headers=headers or {}, follow_redirects=False)
        self._witness: Witness | None = None

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> PartsLedger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # transport ------------------------------------------------------------------------
    def request(self, method: str, path: str, *, params: dict[str, Any] | None = None,
                json_body: Any = None, accept: str = "application/json") -> httpx.Response:
        """One HTTP exchange; problems become exceptions of the tree, network failures ServerUnreachable."""
        try:
            response = self._http.request(method, path, params=params, json=json_body, headers={"Accept": accept})
        except httpx.TransportError as exc:
            raise ServerUnreachable(f"cannot reach {self.base_url}: {exc}") from None
        if response.status_code >= 400:
            try:
                problem = response.json()
            except ValueError:
                problem = None
            if isinstance(problem, dict):
                raise from_problem(response.status_code, problem)
            raise ServerError(f"{method} {path}: HTTP {response.status_code} without a problem document")
        return response

    def get_json(self, path: str, params: dict[str, Any] | None = None) -> Any:
        response = self.request("GET", path, params=params)
        try:
            return orjson.loads(response.content)  # a records page parses about twice as fast as with json
        except orjson.JSONDecodeError:
            raise ServerError(f"GET {path}: the answer is not JSON") from None

    def post_json(self, path: str, body: Any) -> Any:
        response = self.request("POST", path, json_body=body)
        try:
            return response.json()
        except ValueError:
            raise ServerError(f"POST {path}: the answer is not JSON") from None

    # trust ------------------------------------------------------------------------------
    @property
    def witness(self) -> Witness:
        """The log's identity, fetched once: pinned key, remembered key, or trusted on first use."""
        if self._witness is None:
            info = self.get_json("/v1/log/key")
            if not isinstance(info, dict) or not isinstance(info.get("origin"), str):
                raise ServerError("GET /v1/log/key: expected {origin, verifier_key}")
            origin, served = info["origin"], str(info.get("verifier_key"))
            memory = self.store.memory(origin)
            vkey = self.pinned_key or (memory.verifier_key if memory else served)
            if served != vkey:
                raise IntegrityError(f"the server's log key {served} is not the trusted key {vkey}",
                                     code="bad_checkpoint")
            verifier = parse_verifier_key(vkey)
            self.store.trust(self.base_url, origin, vkey)
            self._witness = Witness(self.store, origin, verifier)
        return self._witness

    @property
    def origin(self) -> str:
        return self.witness.origin

    @property
    def verifier(self) -> Verifier:
        return self.witness.verifier

    def remembered_checkpoint(self) -> VerifiedCheckpoint | None:
        held = self.witness.remembered()
        return None if held is None else VerifiedCheckpoint(*held)

    # log reads ------------------------------------------------------------------------------
    def consistency_proof(self, old_size: int, new_size: int) -> list[bytes]:
        data = self.get_json("/v1/log/proof/consistency", {"from": old_size, "to": new_size})
        if not isinstance(data, dict) or data.get("from") != old_size or data.get("to") != new_size:
            raise ProofError(f"the server answered a consistency proof for other sizes than {old_size}→{new_size}")
        return _proof(data.get("proof"), f"consistency proof {old_size}→{new_size}")

    def observe(self, note: str, *, head: bool = False) -> VerifiedCheckpoint:
        """Accept a signed checkpoint only if it is consistent with everything seen before."""
        return VerifiedCheckpoint(note, self.witness.observe(note, self.consistency_proof, head=head))

    def checkpoint(self) -> VerifiedCheckpoint:
        """The log's latest checkpoint, verified and proven to extend the remembered one."""
        note = self.request("GET", "/v1/log/checkpoint", accept="text/plain").text
        return self.observe(note, head=True)

    def inclusion_proof(self, seq: int, size: int) -> tuple[bytes, list[bytes]]:
        data = self.get_json("/v1/log/proof/inclusion", {"seq": seq, "size": size})
        if not isinstance(data, dict) or data.get("seq") != seq or data.get("tree_size") != size:
            raise ProofError(f"the server answered an inclusion proof for another seq or size than {seq}@{size}")
        leaf = _unb64(data.get("leaf_hash"), "leaf hash")
        return leaf, _proof(data.get("proof"), f"inclusion proof of {seq}")

    def prove_leaf(self, seq: int, leaf: bytes, within: VerifiedCheckpoint) -> None:
        """Check that ``leaf`` is leaf ``seq`` of the tree ``within`` signs."""
        if seq >= within.size:
            raise ProofError(f"record {seq} is outside checkpoint size {within.size}")
        served_leaf, proof = self.inclusion_proof(seq, within.size)
        if served_leaf != leaf:
            raise ProofError(f"the server's leaf hash for record {seq} is not the record's")
        merkle.verify_inclusion(leaf, seq, within.size, proof, within.root)

    def records(self, start: int, limit: int = 100, *, within: VerifiedCheckpoint | None = None,
                ) -> list[ServedRecord]:
        """One page of records, each checked; refuses records beyond the ``within`` checkpoint."""
        within = within or self.checkpoint()
        if start >= within.size:
            return []
        limit = min(limit, within.size - start, MAX_PAGE)
        # Only the exact bytes: the decoded copy would be parsed and compared for nothing, since the
        # record checked and returned is the one the bytes say (a server that sends it anyway is checked).
        data = self.get_json("/v1/log/records", {"start": start, "limit": limit, "decoded": "false"})
        items = data.get("records") if isinstance(data, dict) else None
        if not isinstance(items, list):
            raise ServerError("GET /v1/log/records: expected {records: [...]}")
        if len(items) > limit:
            raise IntegrityError(f"asked for {limit} records from {start}, server sent {len(items)}", seq=start + limit)
        out: list[ServedRecord] = []
        for offset, item in enumerate(items):
            served = check_served_record(item, expected_seq=start + offset)
            if served.seq >= within.size:
                raise IntegrityError(f"record {served.seq} is outside what checkpoint size {within.size} covers",
                                     seq=served.seq)
            out.append(served)
        return out

    def iter_records(self, start: int = 0, *, within: VerifiedCheckpoint | None = None,
                     page: int = MAX_PAGE) -> Iterator[ServedRecord]:
        """Every record from ``start`` up to the checkpoint, page by page (memory flat)."""
        within = within or self.checkpoint()
        seq = start
        while seq < within.size:
            batch = self.records(seq, page, within=within)
            if not batch:
                raise IntegrityError(f"the server stopped at record {seq} of {within.size}", seq=seq)
            yield from batch
            seq = batch[-1].seq + 1

    def record(self, seq: int) -> ServedRecord:
        """One record, proven included in the log's current checkpoint."""
        within = self.checkpoint()
        served = check_served_record(self.get_json(f"/v1/log/records/{seq}"), expected_seq=seq)
        self.prove_leaf(seq, served.leaf_hash, within)
        return served

    # the scan -------------------------------------------------------------------------------
    def verdict(self, uri: str, *, workshop: str | None = None, activity: str = "install") -> dict[str, Any]:
        """The server's JSON verdict for a scanned Digital Link URI, its proof checked here.

        The answer's ``proof`` must carry canonical record bytes that hash to its leaf, name this part,
        and be included in a signed checkpoint consistent with what this client has seen. Adds
        ``proof_checked: true`` to the returned dict; raises otherwise.
        """
        from urllib.parse import parse_qsl, urlsplit

        from ledger.digital_link import parse_uri

        link = parse_uri(uri)
        parts = urlsplit(uri)
        params: dict[str, Any] = {"activity": activity}
        if workshop:
            params["workshop"] = workshop
        path = parts.path  # httpx replaces a URL's query with ``params``: carry the label's query as params
        params.update(parse_qsl(parts.query, keep_blank_values=True))
        if link.compressed:
            path = f"/01/{link.gtin}/21/{link.serial}"
            params.update({k: v for k, v in (("10", link.lot), ("8030", link.sig)) if v})
        data = self.get_json(path, params)
        if not isinstance(data, dict) or "verdict" not in data:
            raise ServerError("the scan answer has no verdict")
        proof = data.get("proof")
        if proof is not None:
            self._check_part_proof(proof, link.gtin, link.serial)
        data["proof_checked"] = proof is not None
        return data

    def _check_part_proof(self, proof: Any, gtin: str, serial: str) -> None:
        if not isinstance(proof, dict):
            raise ServerError("the verdict's proof is not an object")
        raw = _unb64(proof.get("record"), "proof record")
        try:
            record = parse_record(raw)
        except LedgerError as exc:
            raise ProofError(f"the verdict's record is malformed: {exc.message}") from None
        leaf = merkle.leaf_hash(raw)
        if _unb64(proof.get("leaf_hash"), "proof leaf hash") != leaf or record.seq != proof.get("seq"):
            raise ProofError("the verdict's record does not hash to its leaf hash or has another seq")
        body = record.entry.body
        if ("gtin" in body and body.get("gtin") != gtin) or ("serial" in body and body.get("serial") != serial):
            raise ProofError(f"the verdict's proof is about another part than {gtin}/{serial}")
        cp = self.observe(str(proof.get("checkpoint")))
        if cp.size != proof.get("tree_size"):
            raise ProofError("the verdict's proof names another tree size than its checkpoint")
        merkle.verify_inclusion(leaf, record.seq, cp.size, _proof(proof.get("inclusion_proof"), "verdict proof"),
                                cp.root)

    def trust_bundle(self) -> dict[str, Any]:
        """The signed offline trust bundle, verified against this client's trusted log key."""
        from datetime import UTC, datetime

        from ledger.trust_bundle import verify_bundle

        envelope = self.get_json("/v1/trust-bundle")
        if not isinstance(envelope, dict):
            raise ServerError("the trust bundle is not a JSON object")
        verified = verify_bundle(envelope, self.verifier.verifier_key(), now=datetime.now(UTC))
        self.observe(str(verified.bundle["checkpoint"]))
        return envelope

    # writes ---------------------------------------------------------------------------------
    def sign(self, key: KeyPair, *, org: str, type: str, body: dict[str, Any], time: str | None = None,
             nonce: str | None = None) -> SignedEntry:
        """Build and sign an entry for this log, here; the private key is used nowhere else.

        A ``part.commission`` body without ``part_sig`` gets one: ``key``'s AI 8030 signature over the
        element string ``01<gtin>21<serial>``, which the server puts into the part's QR codes; a
        ``part.repurpose`` body gets one over its new identity ``01<new_gtin>21<new_serial>``.
        """
        if type == "part.commission" and "part_sig" not in body:
            body = with_part_sig(key, body)
        elif type == "part.repurpose" and "part_sig" not in body:  # the new identity's label
            signed = with_part_sig(key, {"gtin": body.get("new_gtin"), "serial": body.get("new_serial")})
            if "part_sig" in signed:
                body = {**body, "part_sig": signed["part_sig"]}
        return make_signed_entry(key, origin=self.origin, type=type, org=org, body=body, time=time, nonce=nonce)

    def submit(self, key: KeyPair, *, org: str, type: str, body: dict[str, Any],
               time: str | None = None) -> VerifiedReceipt:
        return self.append(self.sign(key, org=org, type=type, body=body, time=time))

    def append(self, signed: SignedEntry) -> VerifiedReceipt:
        data = self.post_json("/v1/entries", signed.to_json())
        return self._verified_receipts([signed], [data])[0]

    def append_batch(self, items: Sequence[SignedEntry]) -> list[VerifiedReceipt]:
        """Append many entries in one transaction (all or nothing); every receipt verified."""
        if not items:
            return []
        data = self.post_json("/v1/entries/batch", {"entries": [item.to_json() for item in items]})
        receipts = data.get("receipts") if isinstance(data, dict) else None
        if not isinstance(receipts, list) or len(receipts) != len(items):
            raise ServerError(f"POST /v1/entries/batch: expected {len(items)} receipts")
        return self._verified_receipts(items, receipts)

    def _verified_receipts(self, items: Sequence[SignedEntry], raw: Sequence[Any]) -> list[VerifiedReceipt]:
        """Signature, then every inclusion proof, then history: a bad receipt moves nothing."""
        parsed = [self._parse_receipt(item, data) for item, data in zip(items, raw, strict=True)]
        signed = {r.checkpoint: self.witness.verify(r.checkpoint) for r in parsed}
        for receipt in parsed:
            cp = signed[receipt.checkpoint]
            if cp.size != receipt.tree_size:
                raise ProofError(f"receipt for seq {receipt.seq}: tree size {receipt.tree_size} is not its "
                                 f"checkpoint's size {cp.size}")
            try:
                merkle.verify_inclusion(receipt.leaf_hash, receipt.seq, cp.size, receipt.inclusion_proof, cp.root)
            except ProofError as exc:
                raise ProofError(f"receipt for seq {receipt.seq}: {exc.message}", code="bad_proof") from None
        for note in sorted(signed, key=lambda n: signed[n].size):
            self.observe(note)
        return parsed

    @staticmethod
    def _parse_receipt(item: SignedEntry, data: Any) -> VerifiedReceipt:
        if not isinstance(data, dict):
            raise ServerError("a receipt is a JSON object")
        try:
            receipt = VerifiedReceipt(
                seq=int(data["seq"]), entry_id=str(data["entry_id"]),
                leaf_hash=merkle.decode_hash(data["leaf_hash"], "leaf_hash"), tree_size=int(data["tree_size"]),
                checkpoint=str(data["checkpoint"]), inclusion_proof=_proof(data["inclusion_proof"], "receipt"),
                duplicate=bool(data.get("duplicate", False)), flags=list(data.get("flags") or []))
        except (KeyError, TypeError, ValueError, InvalidInput) as exc:
            raise ServerError(f"malformed receipt: {exc}") from None
        if receipt.entry_id != item.entry_id:
            raise ProofError(f"receipt names entry {receipt.entry_id}, not the entry sent ({item.entry_id})")
        return receipt


__all__ = [
    "PartsLedger",
    "ServedRecord",
    "VerifiedCheckpoint",
    "VerifiedReceipt",
    "check_served_record",
    "with_part_sig",
]
