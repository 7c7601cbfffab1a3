"""The ASGI app as each uvicorn worker process builds it (``partsledger serve --workers N``).

Worker processes cannot share the parent's open ledger, so each opens its own
from the ``PARTSLEDGER_*`` environment that ``serve`` sets before starting them.
The database serialises appends across processes (``BEGIN IMMEDIATE`` on
SQLite, an advisory lock on PostgreSQL); group commit works within each process.
"""

from __future__ import annotations

import os

from fastapi import FastAPI

from api.app import create_app
from api.settings import ApiSettings
from ledger.service import LedgerSettings


def app_from_env() -> FastAPI:
    """A fresh app over the ledger that the ``PARTSLEDGER_*`` environment names (single appends committed by
    a child process unless ``PARTSLEDGER_APPEND_PROCESS=0``)."""
    append_process = os.environ.get("PARTSLEDGER_APPEND_PROCESS", "1") != "0"
    return create_app(ApiSettings(ledger=LedgerSettings.from_env(), append_process=append_process))


__all__ = ["app_from_env"]
