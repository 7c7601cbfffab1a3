"""``partsledger grant ...``, ``recall ...`` and the workshop and warranty commands.

Each command builds one event body from its options, signs it here with a
keystore key and prints the verified receipt (and any flags the ledger raised).
"""

from __future__ import annotations

import secrets
from typing import Annotated, Any

import typer

from clients.cli_common import (
    DEFAULT_HOME,
    DEFAULT_URL,
    HomeOption,
    JsonOption,
    KeyOption,
    PinOption,
    UrlOption,
    open_client,
    signing_key,
    user_errors,
)
from clients.cli_parts import print_receipt
from ledger.entries import utc_now

grant_app = typer.Typer(help="Grants: an OEM authorizes suppliers (commission) and workshops (activities).",
                        no_args_is_help=True)
recall_app = typer.Typer(help="Recall campaigns, set and cleared by the brand's OEM.", no_args_is_help=True)

Many = Annotated[list[str] | None, typer.Option()]


def _send(home_url_key: tuple[Any, str, str, str | None], event_type: str, body: dict[str, Any],
          json_output: bool, what: str) -> None:
    home, url, key, pin = home_url_key
    pair, org = signing_key(home, key)
    with open_client(url, home, pin) as client:
        receipt = client.submit(pair, org=org, type=event_type, body=body)
    print_receipt(receipt.to_json(), json_output, what)


def _new_id(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(6)}"


@grant_app.command("issue")
@user_errors
def grant_issue(
    grantee: Annotated[str, typer.Argument(help="The workshop or supplier org id")],
    key: KeyOption,
    kind: Annotated[str, typer.Option(help="workshop or commission")] = "workshop",
    grant_id: Annotated[str | None, typer.Option(help="Grant id (default: a fresh one)")] = None,
    activity: Annotated[list[str] | None, typer.Option(
        "--activity", help="install, remove, repair, inspect, warranty_claim, battery_diagnosis, "
        "battery_dismantling (repeatable)")] = None,
    prefix: Annotated[list[str] | None, typer.Option("--prefix", help="GTIN company prefix in scope")] = None,
    category: Annotated[list[str] | None, typer.Option("--category", help="Part category in scope")] = None,
    country: Annotated[list[str] | None, typer.Option("--country", help="Country in scope")] = None,
    site: Annotated[list[str] | None, typer.Option("--site", help="GLN of a site in scope")] = None,
    brand: Annotated[list[str] | None, typer.Option("--brand", help="Brand in scope")] = None,
    technician: Annotated[list[str] | None, typer.Option("--technician", help="Named technician")] = None,
    valid_from: Annotated[str | None, typer.Option(help="RFC 3339 UTC (default: now)")] = None,
    valid_until: Annotated[str | None, typer.Option(help="RFC 3339 UTC (default: open-ended)")] = None,
    url: UrlOption = DEFAULT_URL, home: HomeOption = DEFAULT_HOME, log_key: PinOption = None,
    json_output: JsonOption = False,
) -> None:
    """Issue a grant (signed by the OEM)."""
    body: dict[str, Any] = {"grant_id": grant_id or _new_id("grant"), "kind": kind, "grantee": grantee,
                            "valid_from": valid_from or utc_now()}
    for name, values in (("activities", activity), ("gtin_prefixes", prefix), ("categories", category),
                         ("countries", country), ("sites", site), ("brands", brand), ("technicians", technician)):
        if values:
            body[name] = values
    if valid_until:
        body["valid_until"] = valid_until
    _send((home, url, key, log_key), "grant.issue", body, json_output, f"grant {body['grant_id']} issued to {grantee}")


def _grant_change(event: str, verb: str) -> Any:
    @user_errors
    def command(grant_id: Annotated[str, typer.Argument(help="The grant id")], key: KeyOption,
                reason: Annotated[str | None, typer.Option(help="Reason code")] = None,
                url: UrlOption = DEFAULT_URL, home: HomeOption = DEFAULT_HOME, log_key: PinOption = None,
                json_output: JsonOption = False) -> None:
        body: dict[str, Any] = {"grant_id": grant_id}
        if reason:
            body["reason"] = reason
        _send((home, url, key, log_key), event, body, json_output, f"grant {grant_id} {verb}")

    command.__doc__ = f"Mark a grant {verb} (signed by its grantor)."
    return command


grant_app.command("suspend")(_grant_change("grant.suspend", "suspended"))
grant_app.command("resume")(_grant_change("grant.resume", "resumed"))
grant_app.command("revoke")(_grant_change("grant.revoke", "revoked"))


@recall_app.command("set")
@user_errors
def recall_set(
    gtin: Annotated[str, typer.Argument(help="GTIN-14 recalled")],
    key: KeyOption,
    campaign: Annotated[str | None, typer.Option(help="Campaign id (default: a fresh one)")] = None,
    lot: Annotated[list[str] | None, typer.Option("--lot", help="Recalled lot (repeatable)")] = None,
    serials: Annotated[list[str] | None, typer.Option("--serials", help="Serial range FIRST..LAST (repeatable)")]
    = None,
    reason: Annotated[str | None, typer.Option(help="Reason code")] = None,
    url: UrlOption = DEFAULT_URL, home: HomeOption = DEFAULT_HOME, log_key: PinOption = None,
    json_output: JsonOption = False,
) -> None:
    """Open a recall campaign over a GTIN, optionally narrowed to lots or serial ranges."""
    body: dict[str, Any] = {"campaign_id": campaign or _new_id("recall"), "gtin": gtin}
    if lot:
        body["lots"] = lot
    if serials:
        ranges = []
        for item in serials:
            first, sep, last = item.partition("..")
            ranges.append({"first": first, "last": last if sep else first})
        body["serial_ranges"] = ranges
    if reason:
        body["reason_code"] = reason
    _send((home, url, key, log_key), "recall.set", body, json_output, f"recall {body['campaign_id']} set on {gtin}")


@recall_app.command("clear")
@user_errors
def recall_clear(
    campaign: Annotated[str, typer.Argument(help="Campaign id")], key: KeyOption,
    reason: Annotated[str | None, typer.Option(help="Reason code")] = None,
    url: UrlOption = DEFAULT_URL, home: HomeOption = DEFAULT_HOME, log_key: PinOption = None,
    json_output: JsonOption = False,
) -> None:
    """Close a recall campaign."""
    body: dict[str, Any] = {"campaign_id": campaign}
    if reason:
        body["reason_code"] = reason
    _send((home, url, key, log_key), "recall.clear", body, json_output, f"recall {campaign} cleared")


__all__ = ["grant_app", "recall_app"]
