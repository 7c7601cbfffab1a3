"""``audit`` against a lying server: each lie stops the audit, names what is wrong, and moves nothing forward."""

from __future__ import annotations

import base64
import hashlib
import json
import sqlite3
from pathlib import Path
from typing import Any

import httpx
import pytest

from clients.audit import audit
from clients.errors import LogForked, LogShrunk
from clients.sdk import PartsLedger
from ledger.canonical import canonical_bytes
from ledger.checkpoint import Checkpoint, sign_checkpoint
from ledger.errors import IntegrityError, ProofError
from ledger.gs1 import make_gtin
from ledger.keys import KeyPair, b64encode, read_key_file
from ledger.note import Signer
from tests.clients.conftest import Server

OPERATOR = "partsledger-operator"


@pytest.fixture
def grown(server: Server) -> Server:
    client = PartsLedger("http://testserver", transport=server.transport)
    client.append_batch([client.sign(server.operator, org=OPERATOR, type="org.register", body={
        "org_id": f"shop-{i:03d}", "kind": "workshop", "name": f"Shop {i}",
        "public_keys": [b64encode(KeyPair.generate().public_key)]}) for i in range(1, 40)])
    return server


def _client(server: Server, tmp_path: Path) -> PartsLedger:
    return PartsLedger("http://testserver", state_path=tmp_path / "state.json", transport=server.transport)


def _audited_to(state: Path) -> int:
    with sqlite3.connect(state) as db:
        row = db.execute("SELECT value FROM meta WHERE name = 'next_seq'").fetchone()
    return int(row[0]) if row else 0


def _records_rewrite(change: Any) -> Any:
    def rewrite(request: httpx.Request, response: httpx.Response) -> httpx.Response:
        if request.url.path != "/v1/log/records":
            return response
        page = response.json()
        # The auditor asks for the bytes alone; the edits are made on a decoded copy, then dropped again.
        bare = [item for item in page["records"] if "record" not in item]
        for item in bare:
            item["record"] = json.loads(base64.b64decode(item["canonical"]))
        change(page)
        for item in bare:
            item.pop("record", None)
        return httpx.Response(200, json=page, request=request)

    return rewrite


def _reencode(item: dict[str, Any]) -> None:
    """Make a served record self-consistent again after editing its decoded copy (a careful liar)."""
    raw = canonical_bytes(item["record"])
    item["canonical"] = b64encode(raw)
    item["leaf_hash"] = b64encode(hashlib.sha256(b"\x00" + raw).digest())


def test_honest_server_passes(grown: Server, tmp_path: Path) -> None:
    report = audit(_client(grown, tmp_path), tmp_path / "audit.sqlite3", page=16)
    assert report.size == 40 and report.orgs == 40 and report.compared == ["orgs", "keys", "parts", "installations"]


def test_an_edited_entry_is_named(grown: Server, tmp_path: Path) -> None:
    def edit(page: dict[str, Any]) -> None:
        for item in page["records"]:
            if item["seq"] == 23:
                item["record"]["entry"]["body"]["name"] = "Someone Else"
                _reencode(item)

    grown.rewrite = _records_rewrite(edit)
    with pytest.raises(IntegrityError) as caught:
        audit(_client(grown, tmp_path), tmp_path / "audit.sqlite3", page=16)
    assert caught.value.seq == 23 and "signature" in caught.value.message
    assert _audited_to(tmp_path / "audit.sqlite3") == 16  # pages before the bad one are kept, nothing after


def test_a_dropped_record_is_named(grown: Server, tmp_path: Path) -> None:
    def drop(page: dict[str, Any]) -> None:
        records = page["records"]
        for index, item in enumerate(records):
            if item["seq"] == 30:
                following = records[index + 1:]
                del records[index:]
                for later in following:  # renumber what follows, as a log with seq 30 deleted would
                    later["record"]["seq"] -= 1
                    later["seq"] -= 1
                    _reencode(later)
                    records.append(later)
                break

    grown.rewrite = _records_rewrite(drop)
    with pytest.raises(IntegrityError) as caught:
        audit(_client(grown, tmp_path), tmp_path / "audit.sqlite3", page=64)
    assert caught.value.seq == 30


def test_records_beyond_the_checkpoint_are_refused(grown: Server, tmp_path: Path) -> None:
    older = grown.ledger.checkpoint_at(1).note  # the server claims only genesis ...

    def rewrite(request: httpx.Request, response: httpx.Response) -> httpx.Response:
        if request.url.path == "/v1/log/checkpoint":
            return httpx.Response(200, text=older, request=request)
        if request.url.path == "/v1/log/records":  # ... but serves everything
            honest = grown.client.get("/v1/log/records", params={"start": 0, "limit": 100}).json()
            return httpx.Response(200, json=honest, request=request)
        return response

    grown.rewrite = rewrite
    with pytest.raises(IntegrityError, match="asked for 1 records from 0, server sent 40"):
        audit(_client(grown, tmp_path), tmp_path / "audit.sqlite3")


def test_a_forged_checkpoint_signature_stops_the_audit(grown: Server, tmp_path: Path) -> None:
    note = sign_checkpoint(Checkpoint(grown.ledger.origin, 40, bytes(32)), Signer.generate(grown.ledger.origin))
    grown.rewrite = lambda request, response: (httpx.Response(200, text=note, request=request)
                                               if request.url.path == "/v1/log/checkpoint" else response)
    with pytest.raises(ProofError):
        audit(_client(grown, tmp_path), tmp_path / "audit.sqlite3")
    assert _audited_to(tmp_path / "audit.sqlite3") == 0


def test_fork_and_shrink_after_an_audit(grown: Server, tmp_path: Path) -> None:
    state = tmp_path / "audit.sqlite3"
    audit(_client(grown, tmp_path), state)
    signer = Signer(grown.ledger.origin, read_key_file(tmp_path / "data-0" / "log.key").signing_key)
    fork = sign_checkpoint(Checkpoint(grown.ledger.origin, 40, hashlib.sha256(b"fork").digest()), signer)
    grown.rewrite = lambda request, response: (httpx.Response(200, text=fork, request=request)
                                               if request.url.path == "/v1/log/checkpoint" else response)
    with pytest.raises(LogForked) as forked:
        audit(_client(grown, tmp_path), state)
    assert forked.value.offered == fork
    shrunk = grown.ledger.checkpoint_at(1).note
    grown.rewrite = lambda request, response: (httpx.Response(200, text=shrunk, request=request)
                                               if request.url.path == "/v1/log/checkpoint" else response)
    with pytest.raises(LogShrunk):
        audit(_client(grown, tmp_path), state)
    # a second auditor with no memory of the client state still has the audit state's checkpoint
    (tmp_path / "state.json").unlink()
    with pytest.raises(LogShrunk) as caught:
        audit(_client(grown, tmp_path), state)
    assert base64.b64decode(caught.value.remembered.split("\n")[2]) == grown.ledger.checkpoint_at(40).root
    assert _audited_to(state) == 40


@pytest.mark.parametrize("workers", [0, 1])
def test_a_part_row_that_cannot_be_written_is_named_before_a_later_lie(grown: Server, tmp_path: Path,
                                                                        workers: int) -> None:
    """Part rows are written a page at a time; a row that fails still names its own record, ahead of a
    later record's bad signature in the same page (with and without signature helper processes)."""
    from clients.audit import _SCHEMA

    client = PartsLedger("http://testserver", transport=grown.transport)
    oem = KeyPair.generate()
    client.submit(grown.operator, org=OPERATOR, type="org.register",
                  body={"org_id": "acme-oem", "kind": "oem", "name": "Acme", "gs1_prefixes": ["950600"],
                        "public_keys": [b64encode(oem.public_key)]})
    gtin = make_gtin("950600", 42)
    seqs = {client.submit(oem, org="acme-oem", type="part.commission",
                          body={"gtin": gtin, "serial": f"S{i}", "category": "brakes"}).seq: f"S{i}"
            for i in range(12)}
    clash, lie = sorted(seqs)[4], sorted(seqs)[9]
    state = tmp_path / "audit.sqlite3"
    with sqlite3.connect(state) as db:  # an audit state that already holds the part of record `clash`
        db.executescript(_SCHEMA)
        db.execute("INSERT INTO parts (gtin, serial, commissioned_by, commissioned_seq) VALUES (?, ?, 'x', 1)",
                   (gtin, seqs[clash]))
    db.close()

    def edit(page: dict[str, Any]) -> None:
        for item in page["records"]:
            if item["seq"] == lie:
                item["record"]["entry"]["body"]["category"] = "engine"
                _reencode(item)

    grown.rewrite = _records_rewrite(edit)
    with pytest.raises(IntegrityError) as caught:
        audit(_client(grown, tmp_path), state, page=64, signature_workers=workers)
    assert caught.value.seq == clash and "part.commission cannot be applied" in caught.value.message
    assert _audited_to(state) == 0
    grown.rewrite = None
    with pytest.raises(IntegrityError) as caught:
        audit(_client(grown, tmp_path), state, page=64, signature_workers=workers)
    assert caught.value.seq == clash
    with sqlite3.connect(state) as db:
        assert db.execute("DELETE FROM parts WHERE commissioned_by = 'x'").rowcount == 1
    db.close()
    report = audit(_client(grown, tmp_path), state, page=64, signature_workers=workers)
    assert report.size == 53 and report.compared == ["orgs", "keys", "parts", "installations"]


# --------------------------------------------------------------------------- the parts the server lists

GTIN = make_gtin("950600", 7)


@pytest.fixture
def with_parts(grown: Server) -> tuple[Server, dict[int, str]]:
    """``grown`` plus an OEM and eleven commissioned parts: {commissioning seq: serial}."""
    client = PartsLedger("http://testserver", transport=grown.transport)
    oem = KeyPair.generate()
    client.submit(grown.operator, org=OPERATOR, type="org.register",
                  body={"org_id": "acme-oem", "kind": "oem", "name": "Acme", "gs1_prefixes": ["950600"],
                        "public_keys": [b64encode(oem.public_key)]})
    serials = {client.submit(oem, org="acme-oem", type="part.commission",
                             body={"gtin": GTIN, "serial": f"P{i}", "category": "brakes",
                                   "lot": "L1"}).seq: f"P{i}" for i in range(11)}
    return grown, serials


def _parts_rewrite(change: Any) -> Any:
    def rewrite(request: httpx.Request, response: httpx.Response) -> httpx.Response:
        if request.url.path != "/v1/parts":
            return response
        page = response.json()
        change(page["items"])
        return httpx.Response(200, json=page, request=request)

    return rewrite


def test_the_listed_parts_are_compared_page_by_page(with_parts: tuple[Server, dict[int, str]],
                                                    tmp_path: Path) -> None:
    server, serials = with_parts
    asked: list[str] = []

    def count(items: list[dict[str, Any]]) -> None:
        asked.append(",".join(item["serial"] for item in items))

    server.rewrite = _parts_rewrite(count)
    report = audit(_client(server, tmp_path), tmp_path / "audit.sqlite3", page=4)
    assert report.compared == ["orgs", "keys", "parts", "installations"]
    in_order = [serials[seq] for seq in sorted(serials)]
    assert in_order == [f"P{i}" for i in range(11)]
    assert asked == [",".join(in_order[i:i + 4]) for i in (0, 4, 8)]  # every page, in commissioning order


def _without(serial: str) -> Any:
    def drop(items: list[dict[str, Any]]) -> None:
        items[:] = [item for item in items if item["serial"] != serial]

    return drop


def _lie_about_parts(server: Server, tmp_path: Path, change: Any) -> IntegrityError:
    server.rewrite = _parts_rewrite(change)
    with pytest.raises(IntegrityError) as caught:
        audit(_client(server, tmp_path), tmp_path / "audit.sqlite3", page=4)
    return caught.value


def test_a_part_left_out_of_the_list_is_named(with_parts: tuple[Server, dict[int, str]], tmp_path: Path) -> None:
    server, serials = with_parts
    seq = sorted(serials)[5]
    error = _lie_about_parts(server, tmp_path, _without(serials[seq]))
    assert error.seq == seq and f"does not list part {GTIN}/{serials[seq]}" in error.message


def test_the_last_part_left_out_is_named(with_parts: tuple[Server, dict[int, str]], tmp_path: Path) -> None:
    server, serials = with_parts
    last = max(serials)
    error = _lie_about_parts(server, tmp_path, _without(serials[last]))
    assert error.seq == last and "does not list part" in error.message


def test_a_part_no_record_commissions_is_named(with_parts: tuple[Server, dict[int, str]], tmp_path: Path) -> None:
    server, _ = with_parts

    def add(items: list[dict[str, Any]]) -> None:
        if items and items[0]["serial"] == "P4":
            items.insert(1, {**items[0], "serial": "FORGED1", "commissioned_seq": items[0]["commissioned_seq"]})

    error = _lie_about_parts(server, tmp_path, add)
    assert f"lists part {GTIN}/FORGED1, which no record commissions" in error.message


@pytest.mark.parametrize(("field", "value"), [("lot", "L2"), ("commissioned_by", "other-oem"), ("category", "engine"),
                                              ("commissioned_seq", 3)])
def test_a_part_listed_with_other_commissioning_facts_is_named(with_parts: tuple[Server, dict[int, str]],
                                                                tmp_path: Path, field: str, value: Any) -> None:
    server, serials = with_parts
    seq = sorted(serials)[6]

    def edit(items: list[dict[str, Any]]) -> None:
        for item in items:
            if item["serial"] == serials[seq]:
                item[field] = value

    error = _lie_about_parts(server, tmp_path, edit)
    assert error.seq == seq and f"part {GTIN}/{serials[seq]}: the log commissions it as" in error.message


def test_a_part_listed_twice_is_named(with_parts: tuple[Server, dict[int, str]], tmp_path: Path) -> None:
    server, serials = with_parts
    seq = sorted(serials)[2]

    def twice(items: list[dict[str, Any]]) -> None:
        for index, item in enumerate(list(items)):
            if item["serial"] == serials[seq]:
                items.insert(index, dict(item))
                return

    error = _lie_about_parts(server, tmp_path, twice)
    assert error.seq == seq and "twice" in error.message


def test_a_part_list_without_an_integer_seq_is_refused(with_parts: tuple[Server, dict[int, str]],
                                                       tmp_path: Path) -> None:
    server, _ = with_parts

    def garble(items: list[dict[str, Any]]) -> None:
        if items:
            items[-1]["commissioned_seq"] = "7"

    error = _lie_about_parts(server, tmp_path, garble)
    assert "without an integer commissioned_seq" in error.message
