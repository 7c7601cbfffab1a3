"""The client side verifies with ledger's pure modules only: no server storage, no API, no ORM."""

from __future__ import annotations

import subprocess
import sys

from tests.clients.running import ROOT

CLIENT_MODULES = ["clients.sdk", "clients.audit", "clients.witness", "clients.keystore", "clients.journal",
                  "clients.labels", "clients.errors", "clients.cli_common", "clients.cli_keys", "clients.cli_parts",
                  "clients.cli_events", "clients.cli_reads"]


def test_client_modules_do_not_load_server_code() -> None:
    probe = (f"import sys\nfor name in {CLIENT_MODULES!r}:\n    __import__(name)\n"
             "bad = sorted(m for m in sys.modules if m.split('.')[0] in {'api', 'sqlalchemy', 'sqlmodel', 'fastapi',"
             " 'alembic', 'psycopg'} or m.startswith(('ledger.storage', 'ledger.log', 'ledger.domain')))\n"
             "print(','.join(bad))")
    result = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True)
    assert result.stdout.strip() == ""
