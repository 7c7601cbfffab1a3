"""``audit`` with signatures checked in helper processes names the same first bad record as without them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from clients.audit import audit
from ledger.errors import IntegrityError
from ledger.keys import b64encode
from tests.clients import test_audit_malicious as malicious
from tests.clients.conftest import Server

grown = malicious.grown  # forty records: genesis and 39 org registrations
WORKERS = [0, 1, 2]


def _edit_name(item: dict[str, Any]) -> None:
    item["record"]["entry"]["body"]["name"] = "Someone Else"
    malicious._reencode(item)


def _break_link(item: dict[str, Any]) -> None:
    item["record"]["prev"] = b64encode(b"\x42" * 32)
    malicious._reencode(item)


def _serve_edited(server: Server, edits: dict[int, Any]) -> None:
    def edit(page: dict[str, Any]) -> None:
        for item in page["records"]:
            if item["seq"] in edits:
                edits[item["seq"]](item)

    server.rewrite = malicious._records_rewrite(edit)


@pytest.mark.parametrize("workers", WORKERS)
def test_honest_server_passes(grown: Server, tmp_path: Path, workers: int) -> None:
    report = audit(malicious._client(grown, tmp_path), tmp_path / "audit.sqlite3", page=16,
                   signature_workers=workers)
    assert report.size == 40 and report.orgs == 40


@pytest.mark.parametrize("workers", WORKERS)
def test_a_bad_signature_is_named_and_its_page_not_kept(grown: Server, tmp_path: Path, workers: int) -> None:
    _serve_edited(grown, {23: _edit_name})
    with pytest.raises(IntegrityError) as caught:
        audit(malicious._client(grown, tmp_path), tmp_path / "audit.sqlite3", page=16, signature_workers=workers)
    assert caught.value.seq == 23 and "signature" in caught.value.message
    assert malicious._audited_to(tmp_path / "audit.sqlite3") == 16


@pytest.mark.parametrize("workers", WORKERS)
def test_an_earlier_bad_signature_wins_over_a_later_broken_link(grown: Server, tmp_path: Path, workers: int) -> None:
    """Record 27's broken link is found while record 23's signature may still be queued."""
    _serve_edited(grown, {23: _edit_name, 27: _break_link})
    with pytest.raises(IntegrityError) as caught:
        audit(malicious._client(grown, tmp_path), tmp_path / "audit.sqlite3", page=16, signature_workers=workers)
    assert caught.value.seq == 23 and "signature" in caught.value.message


@pytest.mark.parametrize("workers", WORKERS)
def test_a_later_bad_signature_loses_to_an_earlier_broken_link(grown: Server, tmp_path: Path, workers: int) -> None:
    _serve_edited(grown, {20: _break_link, 29: _edit_name})
    with pytest.raises(IntegrityError) as caught:
        audit(malicious._client(grown, tmp_path), tmp_path / "audit.sqlite3", page=16, signature_workers=workers)
    assert caught.value.seq == 20 and "chain" in caught.value.message
