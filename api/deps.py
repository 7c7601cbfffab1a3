"""Request-scoped access to the app's ledger and settings (set up in the app's lifespan)."""

from __future__ import annotations

from fastapi import Request

from api.settings import ApiSettings
from ledger.log import Ledger


def get_ledger(request: Request) -> Ledger:
    ledger: Ledger = request.app.state.ledger
    return ledger


def api_settings(request: Request) -> ApiSettings:
    settings: ApiSettings = request.app.state.settings
    return settings
