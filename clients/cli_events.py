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
    print_receipt,
    signing_key,
    user_errors,
)
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


# --------------------------------------------------------------------------- workshop
GtinArg = Annotated[str, typer.Argument(help="GTIN-14")]
SerialArg = Annotated[str, typer.Argument(help="Serial (GS1 AI 21)")]
VinOption = Annotated[str | None, typer.Option("--vin", help="The vehicle's VIN: sent to the service's vault "
                                                             "for a pseudonym, never written to the log")]
VehicleOption = Annotated[str | None, typer.Option("--vehicle", help="A vehicle pseudonym (veh-...) already known")]


def _vehicle(home: Any, url: str, pin: str | None, vin: str | None, vehicle: str | None,
             required: bool) -> str | None:
    """The vehicle pseudonym: given, or asked of the service for a VIN (the VIN stays off the log)."""
    if vehicle:
        return vehicle
    if vin:
        with open_client(url, home, pin) as client:
            answer = client.post_json("/v1/vehicles/pseudonym", {"vin": vin})
        pseudonym = answer.get("pseudonym") if isinstance(answer, dict) else None
        if not isinstance(pseudonym, str):
            from clients.errors import ServerError

            raise ServerError("POST /v1/vehicles/pseudonym: expected {pseudonym}")
        return pseudonym
    if required:
        from ledger.errors import InvalidInput

        raise InvalidInput("name the vehicle with --vin or --vehicle", code="invalid_field", field="vehicle")
    return None


def _part_body(gtin: str, serial: str, **optional: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"gtin": gtin, "serial": serial}
    body.update({k: v for k, v in optional.items() if v is not None})
    return body


@user_errors
def install(gtin: GtinArg, serial: SerialArg, key: KeyOption, vin: VinOption = None, vehicle: VehicleOption = None,
            site: Annotated[str | None, typer.Option(help="GLN of your site")] = None,
            technician: Annotated[str | None, typer.Option(help="Technician id")] = None,
            odometer_km: Annotated[int | None, typer.Option(help="Odometer reading")] = None,
            url: UrlOption = DEFAULT_URL, home: HomeOption = DEFAULT_HOME, log_key: PinOption = None,
            json_output: JsonOption = False) -> None:
    """Record that your workshop fitted a part to a vehicle (flags, not refusals, for suspicious fits)."""
    car = _vehicle(home, url, log_key, vin, vehicle, required=True)
    body = _part_body(gtin, serial, vehicle=car, site=site, technician=technician, odometer_km=odometer_km)
    _send((home, url, key, log_key), "part.install", body, json_output, f"installed {gtin}/{serial}")


@user_errors
def remove(gtin: GtinArg, serial: SerialArg, key: KeyOption, vin: VinOption = None, vehicle: VehicleOption = None,
           reason: Annotated[str | None, typer.Option(help="Reason code")] = None,
           site: Annotated[str | None, typer.Option(help="GLN of your site")] = None,
           technician: Annotated[str | None, typer.Option(help="Technician id")] = None,
           url: UrlOption = DEFAULT_URL, home: HomeOption = DEFAULT_HOME, log_key: PinOption = None,
           json_output: JsonOption = False) -> None:
    """Record that a part came out of a vehicle."""
    car = _vehicle(home, url, log_key, vin, vehicle, required=False)
    body = _part_body(gtin, serial, vehicle=car, reason_code=reason, site=site, technician=technician)
    _send((home, url, key, log_key), "part.remove", body, json_output, f"removed {gtin}/{serial}")


def _amount(value: str | None) -> dict[str, Any] | None:
    """``EUR:12050`` → ``{"currency": "EUR", "minor": 12050}`` (integer minor units; no floats are signed)."""
    if value is None:
        return None
    currency, _, minor = value.partition(":")
    if not minor.isdigit():
        from ledger.errors import InvalidInput

        raise InvalidInput("--amount: expected CURRENCY:MINOR_UNITS, e.g. EUR:12050 for 120.50 EUR",
                           code="invalid_field", field="amount")
    return {"currency": currency.upper(), "minor": int(minor)}


@user_errors
def claim(gtin: GtinArg, serial: SerialArg, key: KeyOption,
          failure: Annotated[str, typer.Option("--failure", help="Failure code")],
          claim_id: Annotated[str | None, typer.Option(help="Claim id (default: a fresh one)")] = None,
          amount: Annotated[str | None, typer.Option(help="CURRENCY:MINOR_UNITS, e.g. EUR:12050")] = None,
          document: Annotated[list[str] | None, typer.Option("--document", help="SHA-256 hex of an evidence "
                                                                                "document (repeatable)")] = None,
          vin: VinOption = None, vehicle: VehicleOption = None,
          url: UrlOption = DEFAULT_URL, home: HomeOption = DEFAULT_HOME, log_key: PinOption = None,
          json_output: JsonOption = False) -> None:
    """File a warranty claim on a part; the ledger computes its findings."""
    car = _vehicle(home, url, log_key, vin, vehicle, required=False)
    body: dict[str, Any] = {"claim_id": claim_id or _new_id("claim"), "gtin": gtin, "serial": serial,
                            "failure_code": failure}
    if car:
        body["vehicle"] = car
    if document:
        body["documents"] = document
    money = _amount(amount)
    if money:
        body["amount"] = money
    _send((home, url, key, log_key), "warranty.claim", body, json_output, f"claim {body['claim_id']} filed")


@user_errors
def decide(claim_id: Annotated[str, typer.Argument(help="The claim id")], key: KeyOption,
           decision: Annotated[str, typer.Option(help="approve, reject or hold")],
           reason: Annotated[list[str] | None, typer.Option("--reason", help="Reason code (repeatable)")] = None,
           document: Annotated[list[str] | None, typer.Option("--document", help="SHA-256 hex of a document")]
           = None,
           url: UrlOption = DEFAULT_URL, home: HomeOption = DEFAULT_HOME, log_key: PinOption = None,
           json_output: JsonOption = False) -> None:
    """Approve, reject or hold a warranty claim (signed by the brand's OEM)."""
    body: dict[str, Any] = {"claim_id": claim_id, "decision": decision}
    if reason:
        body["reason_codes"] = reason
    if document:
        body["documents"] = document
    _send((home, url, key, log_key), "warranty.decide", body, json_output, f"claim {claim_id}: {decision}")


@user_errors
def pay(claim_id: Annotated[str, typer.Argument(help="The claim id")], key: KeyOption,
        amount: Annotated[str, typer.Option(help="CURRENCY:MINOR_UNITS, e.g. EUR:12050")],
        reference: Annotated[str | None, typer.Option(help="Payment reference")] = None,
        url: UrlOption = DEFAULT_URL, home: HomeOption = DEFAULT_HOME, log_key: PinOption = None,
        json_output: JsonOption = False) -> None:
    """Record the payment of an approved claim."""
    body: dict[str, Any] = {"claim_id": claim_id, "amount": _amount(amount)}
    if reference:
        body["reference"] = reference
    _send((home, url, key, log_key), "warranty.pay", body, json_output, f"claim {claim_id} paid")


WORKSHOP_COMMANDS = (install, remove, claim, decide, pay)

__all__ = ["WORKSHOP_COMMANDS", "grant_app", "recall_app"]
