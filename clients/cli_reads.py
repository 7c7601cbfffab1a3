"""Read commands for warranty teams and OEMs: ``claims``, ``part``, ``affected``, ``alerts``.

They page through the API (``?offset=&limit=``) and print one line per item, or
the items as JSON with ``--json``. They show what the server says; ``audit``
is how one checks that the server's state is the log's.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, Any

import typer

from clients.cli_common import (
    DEFAULT_HOME,
    DEFAULT_URL,
    HomeOption,
    JsonOption,
    PinOption,
    UrlOption,
    emit_json,
    open_client,
    out,
    user_errors,
)
from clients.errors import ServerError
from clients.sdk import PartsLedger

PAGE = 200


def _pages(client: PartsLedger, path: str, params: dict[str, Any]) -> Iterator[dict[str, Any]]:
    offset: int | None = 0
    while offset is not None:
        data = client.get_json(path, {**params, "offset": offset, "limit": PAGE})
        if not isinstance(data, dict) or not isinstance(data.get("items"), list):
            raise ServerError(f"GET {path}: expected {{items, next_offset}}")
        yield from data["items"]
        offset = data.get("next_offset")


def _drop_none(params: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in params.items() if v is not None}


@user_errors
def claims(gtin: Annotated[str | None, typer.Option(help="GTIN-14")] = None,
           lot: Annotated[str | None, typer.Option(help="Lot")] = None,
           workshop: Annotated[str | None, typer.Option(help="Claiming workshop")] = None,
           oem: Annotated[str | None, typer.Option(help="Brand owner deciding")] = None,
           status: Annotated[str | None, typer.Option(help="open, held, approved, rejected, paid")] = None,
           url: UrlOption = DEFAULT_URL, home: HomeOption = DEFAULT_HOME, log_key: PinOption = None,
           json_output: JsonOption = False) -> None:
    """Warranty claims with their machine-computed findings."""
    with open_client(url, home, log_key) as client:
        items = list(_pages(client, "/v1/claims", _drop_none(
            {"gtin": gtin, "lot": lot, "workshop": workshop, "oem": oem, "status": status})))
    if json_output:
        emit_json(items)
        return
    for c in items:
        held = f" held: {', '.join(c.get('held_reasons') or [])}" if c.get("held_reasons") else ""
        out.print(f"{c.get('claim_id')}  {c.get('status'):9} {c.get('gtin')}/{c.get('serial')} lot {c.get('lot')} "
                  f"by {c.get('workshop')} failure {c.get('failure_code')}{held}")
    out.print(f"{len(items)} claim(s)")


@user_errors
def part(gtin: Annotated[str, typer.Argument(help="GTIN-14")], serial: Annotated[str, typer.Argument(help="Serial")],
         url: UrlOption = DEFAULT_URL, home: HomeOption = DEFAULT_HOME, log_key: PinOption = None,
         json_output: JsonOption = False) -> None:
    """A part's state and its history as recorded in the ledger."""
    with open_client(url, home, log_key) as client:
        data = client.get_json(f"/v1/parts/{gtin}/{serial}")
    if json_output:
        emit_json(data)
        return
    info = data.get("part", data) if isinstance(data, dict) else {}
    out.print(f"{gtin}/{serial}: {info.get('state')} (lot {info.get('lot')}, {info.get('category')}, "
              f"commissioned by {info.get('commissioned_by')})")
    for event in data.get("history") or [] if isinstance(data, dict) else []:
        out.print(f"  seq {event.get('seq')}: {event.get('type')} by {event.get('org') or event.get('org_id')}")


@user_errors
def affected(campaign: Annotated[str, typer.Argument(help="Recall campaign id")],
             url: UrlOption = DEFAULT_URL, home: HomeOption = DEFAULT_HOME, log_key: PinOption = None,
             json_output: JsonOption = False) -> None:
    """Every part a recall campaign covers: where it is, which vehicle, which workshop."""
    with open_client(url, home, log_key) as client:
        items = list(_pages(client, f"/v1/recalls/{campaign}/affected", {}))
    if json_output:
        emit_json(items)
        return
    for p in items:
        out.print(f"{p.get('gtin')}/{p.get('serial')} lot {p.get('lot')}: {p.get('state')}"
                  + (f" in {p.get('vehicle')}" if p.get("vehicle") else ""))
    out.print(f"{len(items)} part(s) affected by {campaign}")


@user_errors
def alerts(org: Annotated[str, typer.Option(help="The org whose alert queue to show")],
           url: UrlOption = DEFAULT_URL, home: HomeOption = DEFAULT_HOME, log_key: PinOption = None,
           json_output: JsonOption = False) -> None:
    """Open flags raised for an org: clone suspicions, recalled installs, unauthorized work."""
    with open_client(url, home, log_key) as client:
        items = list(_pages(client, "/v1/alerts", {"org": org}))
    if json_output:
        emit_json(items)
        return
    for a in items:
        out.print(f"seq {a.get('seq')}: {a.get('kind')} on {a.get('subject')}: {a.get('message')}")
    out.print(f"{len(items)} open alert(s) for {org}")


READ_COMMANDS = (claims, part, affected, alerts)

__all__ = ["READ_COMMANDS"]
