"""Single appends committed by a child process (``ApiSettings(append_process=True)``, what ``serve`` runs).

The child must answer exactly as the serving process itself would: the same
receipts (verifying from the served key alone), the same problems for every
bad entry with nothing appended, the original receipt for a duplicate, one
rejected entry never sinking the others of its group. A child that dies
costs the entries it held a 503 (retrying them is safe) and is replaced.
"""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Iterator
from pathlib import Path

import httpx2
import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.settings import ApiSettings
from ledger import errors
from ledger.append_process import AppendProcess, AppendUnavailable, decode_error, encode_error
from ledger.epcis.capture import CaptureRejected, EventError
from ledger.log import Ledger
from ledger.service import LedgerSettings
from tests.api.test_log_api import (
    BAD_ENTRIES,
    assert_problem,
    check_receipt,
    key_add,
    log_state,
    verifier_of,
)
from tests.support import Actor, World


def _settings(ledger: Ledger, tmp_path: Path) -> LedgerSettings:
    # The ``ledger`` fixture's own settings (tests/conftest.py): the child must open that very ledger.
    return LedgerSettings(data_dir=tmp_path / "data-0", db_url=ledger.db.url, origin=ledger.origin)


@pytest.fixture
def shop(world: World) -> Actor:
    return world.register("shop-one", "workshop")


@pytest.fixture
def ap_client(ledger: Ledger, tmp_path: Path) -> Iterator[TestClient]:
    app = create_app(ApiSettings(ledger=_settings(ledger, tmp_path), append_process=True), ledger=ledger)
    with TestClient(app, base_url="http://testserver") as client:
        assert app.state.appender is not None and app.state.appender.pid is not None
        yield client


def test_the_child_gets_its_settings_outside_its_command_line(ap_client: TestClient, ledger: Ledger) -> None:
    """A database URL may carry a password: every local user can read a command line, only this user the
    environment."""
    pid = ap_client.app.state.appender.pid  # type: ignore[attr-defined]
    command_line = Path(f"/proc/{pid}/cmdline").read_bytes()
    assert b"ledger.append_process" in command_line
    assert ledger.db.url.encode() not in command_line and b"db_url" not in command_line
    environment = Path(f"/proc/{pid}/environ").read_bytes()
    assert b"PARTSLEDGER_APPEND_SETTINGS=" in environment and ledger.db.url.encode() in environment


def test_receipts_come_from_the_child_and_verify(ap_client: TestClient, world: World, shop: Actor) -> None:
    before = world.ledger.size()
    signed = key_add(world, shop)
    response = ap_client.post("/v1/entries", json=signed.to_json())
    assert response.status_code == 201, response.text
    assert response.headers["content-type"] == "application/json"
    receipt = response.json()
    assert (receipt["seq"], receipt["entry_id"], receipt["duplicate"]) == (before, signed.entry_id, False)
    cp = check_receipt(receipt, verifier_of(ap_client), world.ledger.origin)
    assert cp.size == world.ledger.size() == before + 1
    # The same bytes the in-process path would have sent for the stored receipt.
    again = ap_client.post("/v1/entries", json=signed.to_json())
    assert again.status_code == 200
    assert again.json() == {**receipt, "duplicate": True}
    assert world.ledger.size() == before + 1


def test_every_bad_entry_gets_the_same_problem_and_appends_nothing(ap_client: TestClient, world: World,
                                                                   shop: Actor) -> None:
    """All of the log API's bad-entry cases, through one child (starting one per case would be slow)."""
    for case in BAD_ENTRIES:
        make, status, code, detail = case.values
        body = make(world, shop)  # some cases register an org first
        before = log_state(world.ledger)
        response = ap_client.post("/v1/entries", content=body, headers={"content-type": "application/json"})
        assert_problem(response, status, code, detail)
        assert log_state(world.ledger) == before, case.id


async def _stopped(pid: int) -> None:
    """Wait until ``pid`` has really stopped (a process woken by SIGSTOP may still finish a read first)."""
    for _ in range(200):
        if Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "T":
            return
        await asyncio.sleep(0.01)
    pytest.fail(f"process {pid} did not stop")


def test_a_rejected_entry_does_not_sink_its_group(ledger: Ledger, tmp_path: Path, world: World,
                                                  shop: Actor) -> None:
    """Entries that reach the child together form one group: the bad one gets its problem, and the others,
    retried without it, are committed together under one checkpoint."""
    app = create_app(ApiSettings(ledger=_settings(ledger, tmp_path), append_process=True), ledger=ledger)
    good = [key_add(world, shop) for _ in range(30)]
    stranger = Actor("shop-one", world.register("shop-two", "workshop").key)  # not a key of shop-one
    bad = key_add(world, stranger)
    bodies = [g.to_json() for g in good[:15]] + [bad.to_json()] + [g.to_json() for g in good[15:]]
    before = ledger.size()

    async def run() -> list[httpx2.Response]:
        async with app.router.lifespan_context(app):
            transport = httpx2.ASGITransport(app=app)
            async with httpx2.AsyncClient(transport=transport, base_url="http://testserver") as client:
                appender: AppendProcess = app.state.appender
                pid = appender.pid
                assert pid is not None
                os.kill(pid, signal.SIGSTOP)  # everything queues in the pipe, to be read at once
                try:
                    await _stopped(pid)
                    posts = [asyncio.ensure_future(client.post("/v1/entries", json=b)) for b in bodies]
                    for _ in range(200):  # until every entry has been sent to the child
                        await asyncio.sleep(0.05)
                        if appender.pending == len(bodies):
                            break
                    assert appender.pending == len(bodies)
                finally:
                    os.kill(pid, signal.SIGCONT)
                return list(await asyncio.gather(*posts))

    responses = asyncio.run(run())
    assert_problem(responses[15], 403, "unknown_key", "not a registered key of org shop-one")
    receipts = [r.json() for i, r in enumerate(responses) if i != 15]
    assert all(r.status_code == 201 for i, r in enumerate(responses) if i != 15)
    assert sorted(r["seq"] for r in receipts) == list(range(before, before + 30))
    assert {r["entry_id"] for r in receipts} == {g.entry_id for g in good}
    assert ledger.size() == before + 30
    assert {r["tree_size"] for r in receipts} == {before + 30}  # one group, one checkpoint
    key = ledger.verifier_key
    from ledger.note import parse_verifier_key

    for receipt in receipts:
        check_receipt(receipt, parse_verifier_key(key), ledger.origin)


def test_a_child_that_dies_fails_what_it_held_with_503_and_is_replaced(ledger: Ledger, tmp_path: Path,
                                                                       world: World, shop: Actor) -> None:
    app = create_app(ApiSettings(ledger=_settings(ledger, tmp_path), append_process=True), ledger=ledger)
    held = key_add(world, shop)
    later = key_add(world, shop)

    async def run() -> tuple[httpx2.Response, httpx2.Response, httpx2.Response, int, int]:
        async with app.router.lifespan_context(app):
            appender: AppendProcess = app.state.appender
            first_pid = appender.pid
            assert first_pid is not None
            transport = httpx2.ASGITransport(app=app)
            async with httpx2.AsyncClient(transport=transport, base_url="http://testserver") as client:
                os.kill(first_pid, signal.SIGSTOP)  # the entry reaches a child that will never answer
                await _stopped(first_pid)
                pending = asyncio.ensure_future(client.post("/v1/entries", json=held.to_json()))
                await asyncio.sleep(0.5)
                assert not pending.done()
                os.kill(first_pid, signal.SIGKILL)
                lost = await pending
                retried = await client.post("/v1/entries", json=held.to_json())
                fresh = await client.post("/v1/entries", json=later.to_json())
                second_pid = appender.pid
                assert second_pid is not None
                return lost, retried, fresh, first_pid, second_pid

    lost, retried, fresh, first_pid, second_pid = asyncio.run(run())
    problem = assert_problem(lost, 503, "server_error", "append process ended")
    assert lost.headers["retry-after"] == "1"
    assert problem["status"] == 503
    assert second_pid != first_pid
    assert retried.status_code == 201, retried.text  # the stopped child never committed it
    assert fresh.status_code == 201
    assert ledger.seq_of(held.entry_id) == retried.json()["seq"]


def test_a_child_on_another_log_key_is_refused(ledger: Ledger, tmp_path: Path) -> None:
    elsewhere = LedgerSettings(data_dir=tmp_path / "elsewhere", db_url=ledger.db.url, origin=ledger.origin)
    appender = AppendProcess(elsewhere, verifier_key=ledger.verifier_key)

    async def run() -> None:
        try:
            await appender.start()
        finally:
            await appender.aclose()

    with pytest.raises(AppendUnavailable, match="another log key"):
        asyncio.run(run())


@pytest.mark.parametrize("error", [
    errors.InvalidInput("entry.time: bad", code="invalid_time", field="time"),
    errors.SignatureError("no", code="revoked_key", field="kid"),
    errors.PolicyRejected("outside the grant", code="prefix_not_granted", details={"grant_id": "g-1"}),
    errors.NotFound("no such org", code="unknown_org", field="org_id"),
    errors.Conflict("serial already commissioned", code="duplicate_serial"),
    errors.IntegrityError("broken link", seq=7),
    errors.LimitExceeded("too big", code="batch_too_large"),
])
def test_errors_cross_the_pipe_unchanged(error: errors.LedgerError) -> None:
    back = decode_error(encode_error(error))
    assert type(back) is type(error)
    assert (back.code, back.message, back.field, back.details) == (error.code, error.message, error.field,
                                                                   error.details)
    if isinstance(error, errors.IntegrityError):
        assert isinstance(back, errors.IntegrityError) and back.seq == 7


def test_an_error_subclass_crosses_as_its_nearest_known_class() -> None:
    error = CaptureRejected([EventError(index=2, code="invalid_epcis", message="bad",
                                        pointer="/epcisBody/eventList/2")])
    back = decode_error(encode_error(error))
    assert type(back) is errors.InvalidInput
    assert (back.code, back.message, back.field, back.details) == (error.code, error.message, error.field,
                                                                   error.details)


def test_serving_without_the_child_appends_in_a_thread(client: TestClient, world: World, shop: Actor) -> None:
    """The default app (tests, embedding) has no child; its receipts verify the same way."""
    assert client.app.state.appender is None  # type: ignore[attr-defined]
    response = client.post("/v1/entries", json=key_add(world, shop).to_json())
    assert response.status_code == 201
    check_receipt(response.json(), verifier_of(client), world.ledger.origin)
