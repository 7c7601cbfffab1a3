"""API fixtures: the real ASGI app over the test ledger, driven through HTTP.

``TestClient`` speaks real HTTP semantics to the app in-process (headers,
status codes, streaming bodies) without a socket, so every test sees exactly
what a remote client would, on whichever database the ``ledger`` fixture
gives (SQLite by default, PostgreSQL with ``PARTSLEDGER_TEST_DB``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.settings import ApiLimits, ApiSettings
from ledger.log import Ledger
from ledger.service import LedgerSettings

ClientFactory = Callable[..., TestClient]


@pytest.fixture
def api_factory(ledger: Ledger) -> Iterator[ClientFactory]:
    """Makes clients of an app serving ``ledger``; pass ``limits=ApiLimits(...)`` for small limits."""
    with ExitStack() as stack:

        def make(limits: ApiLimits | None = None, *, scan_fast_lane: bool = True) -> TestClient:
            settings = ApiSettings(ledger=LedgerSettings(db_url=ledger.db.url, origin=ledger.origin),
                                   limits=limits or ApiLimits(), scan_fast_lane=scan_fast_lane)
            app = create_app(settings, ledger=ledger)
            # Server exceptions propagate into the test: a 5xx is never silently a "response".
            return stack.enter_context(TestClient(app, base_url="http://testserver"))

        yield make


@pytest.fixture
def client(api_factory: ClientFactory) -> TestClient:
    return api_factory()
