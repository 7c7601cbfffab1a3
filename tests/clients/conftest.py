"""Fixtures for client tests: the real app behind an httpx transport, with a hook to corrupt answers.

The SDK speaks ``httpx``; Starlette's ``TestClient`` speaks ``httpx2``. A small
``httpx.MockTransport`` handler forwards each request to the real app through the
TestClient and hands the answer back — optionally through ``Server.rewrite``,
which is how the malicious-server tests turn an honest server into a lying one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from starlette.testclient import TestClient

from api.app import create_app
from ledger.keys import KeyPair, read_key_file
from ledger.log import Ledger

Rewrite = Callable[[httpx.Request, httpx.Response], httpx.Response]


@dataclass
class Server:
    """The real app in process; ``rewrite`` may replace any answer before the client sees it."""

    ledger: Ledger
    operator: KeyPair
    client: TestClient
    rewrite: Rewrite | None = None
    requests: list[str] = field(default_factory=list)
    bodies: list[bytes] = field(default_factory=list)

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(f"{request.method} {request.url.path}?{request.url.query.decode()}")
        self.bodies.append(request.content)
        served = self.client.request(request.method, str(request.url), content=request.content,
                                     headers={k: v for k, v in request.headers.items() if k.lower() != "host"})
        headers = [(k, v) for k, v in served.headers.multi_items()
                   if k.lower() not in {"content-length", "content-encoding", "transfer-encoding"}]
        response = httpx.Response(served.status_code, headers=headers, content=served.content, request=request)
        return self.rewrite(request, response) if self.rewrite else response

    @property
    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)


@pytest.fixture
def server(ledger: Ledger, tmp_path: Path) -> Server:
    app = create_app(ledger=ledger)
    return Server(ledger=ledger, operator=read_key_file(tmp_path / "data-0" / "operator.key"),
                  client=TestClient(app, base_url="http://testserver"))
