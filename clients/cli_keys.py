"""``partsledger keys ...`` and ``partsledger org ...``: the keystore and org administration."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from clients.cli_common import (
    DEFAULT_HOME,
    DEFAULT_URL,
    HomeOption,
    JsonOption,
    KeyOption,
    PinOption,
    UrlOption,
    emit_json,
    keystore_path,
    open_client,
    out,
    print_receipt,
    signing_key,
    unlocked_keystore,
    user_errors,
)
from clients.keystore import Keystore
from ledger.keys import KeyPair, b64encode, read_key_file

keys_app = typer.Typer(help="Ed25519 keys in the encrypted keystore.", no_args_is_help=True)
org_app = typer.Typer(help="Register orgs and manage their keys (signed by the operator or the org).",
                      no_args_is_help=True)

NameArg = Annotated[str, typer.Argument(help="Name of the key in the keystore")]
OrgOption = Annotated[str, typer.Option("--org", help="The org id this key signs for")]


def _show(info_json: dict[str, str], json_output: bool, verb: str) -> None:
    if json_output:
        emit_json(info_json)
    else:
        out.print(f"{verb} key {info_json['name']!r} for org {info_json['org']}: kid {info_json['kid']}\n"
                  f"public key {info_json['public_key']}")


@keys_app.command("generate")
@user_errors
def keys_generate(name: NameArg, org: OrgOption, home: HomeOption = DEFAULT_HOME,
                  json_output: JsonOption = False) -> None:
    """Generate a key pair and seal it in the keystore; prints only the public half."""
    store = unlocked_keystore(home)
    info = store.add(name, KeyPair.generate(), org=org)
    _show(info.to_json(), json_output, "generated")


@keys_app.command("import")
@user_errors
def keys_import(name: NameArg, org: OrgOption,
                key_file: Annotated[Path, typer.Option("--key-file", help="A key file, e.g. operator.key")],
                home: HomeOption = DEFAULT_HOME, json_output: JsonOption = False) -> None:
    """Seal an existing key file (such as the server's operator.key) in the keystore."""
    pair = read_key_file(key_file)
    store = unlocked_keystore(home)
    info = store.add(name, pair, org=org)
    _show(info.to_json(), json_output, "imported")


@keys_app.command("list")
@user_errors
def keys_list(home: HomeOption = DEFAULT_HOME, json_output: JsonOption = False) -> None:
    """List the keystore's keys (names, orgs, key ids, public keys); needs no passphrase."""
    entries = Keystore.open(keystore_path(home)).entries()
    if json_output:
        emit_json([e.to_json() for e in entries])
        return
    if not entries:
        out.print(f"no keys in {keystore_path(home)}")
    for e in entries:
        out.print(f"{e.name:20} {e.org:24} {e.kid}")


@keys_app.command("export-public")
@user_errors
def keys_export_public(name: NameArg, home: HomeOption = DEFAULT_HOME, json_output: JsonOption = False) -> None:
    """Print a key's public half (base64), to hand to whoever registers your org."""
    info = Keystore.open(keystore_path(home)).info(name)
    if json_output:
        emit_json(info.to_json())
    else:
        out.print(b64encode(info.public_key))


def _public_key_of(home: Path, value: str) -> str:
    """``value`` is a keystore name or a base64 public key."""
    store = Keystore.open(keystore_path(home))
    if value in store:
        return b64encode(store.info(value).public_key)
    return value


@org_app.command("register")
@user_errors
def org_register(
    org_id: Annotated[str, typer.Argument(help="The new org's id (a-z, 0-9, '-')")],
    kind: Annotated[str, typer.Option(help="oem, supplier, workshop, recycler, test_lab or authority")],
    name: Annotated[str, typer.Option(help="Display name")],
    public_key: Annotated[list[str], typer.Option("--public-key",
                                                  help="The org's public key: base64, or a keystore name")],
    key: KeyOption,
    prefix: Annotated[list[str] | None, typer.Option("--prefix", help="GS1 company prefix (repeatable)")] = None,
    gln: Annotated[list[str] | None, typer.Option("--gln", help="GLN of a site (repeatable)")] = None,
    country: Annotated[str | None, typer.Option(help="ISO 3166-1 alpha-2 country")] = None,
    url: UrlOption = DEFAULT_URL, home: HomeOption = DEFAULT_HOME, log_key: PinOption = None,
    json_output: JsonOption = False,
) -> None:
    """Register an org (signed by the operator's key)."""
    body: dict[str, object] = {"org_id": org_id, "kind": kind, "name": name,
                               "public_keys": [_public_key_of(home, k) for k in public_key]}
    if prefix:
        body["gs1_prefixes"] = prefix
    if gln:
        body["glns"] = gln
    if country:
        body["country"] = country
    pair, signer_org = signing_key(home, key)
    with open_client(url, home, log_key) as client:
        receipt = client.submit(pair, org=signer_org, type="org.register", body=body)
    print_receipt(receipt.to_json(), json_output, f"registered {org_id}")


@org_app.command("add-key")
@user_errors
def org_add_key(org_id: Annotated[str, typer.Argument(help="The org that gets the key")],
                public_key: Annotated[str, typer.Option("--public-key", help="base64, or a keystore name")],
                key: KeyOption, url: UrlOption = DEFAULT_URL, home: HomeOption = DEFAULT_HOME,
                log_key: PinOption = None, json_output: JsonOption = False) -> None:
    """Add a key to an org (rotation: add the new key, then revoke the old)."""
    pair, signer_org = signing_key(home, key)
    with open_client(url, home, log_key) as client:
        receipt = client.submit(pair, org=signer_org, type="key.add",
                                body={"org_id": org_id, "public_key": _public_key_of(home, public_key)})
    print_receipt(receipt.to_json(), json_output, f"added a key to {org_id}")


@org_app.command("revoke-key")
@user_errors
def org_revoke_key(kid: Annotated[str, typer.Argument(help="Key id to revoke")], key: KeyOption,
                   compromised_at: Annotated[str | None, typer.Option(help="RFC 3339 UTC time of compromise")] = None,
                   reason: Annotated[str | None, typer.Option(help="Why")] = None,
                   url: UrlOption = DEFAULT_URL, home: HomeOption = DEFAULT_HOME, log_key: PinOption = None,
                   json_output: JsonOption = False) -> None:
    """Revoke a key; entries it signs later are refused."""
    body: dict[str, object] = {"kid": kid}
    if compromised_at:
        body["compromised_at"] = compromised_at
    if reason:
        body["reason"] = reason
    pair, signer_org = signing_key(home, key)
    with open_client(url, home, log_key) as client:
        receipt = client.submit(pair, org=signer_org, type="key.revoke", body=body)
    print_receipt(receipt.to_json(), json_output, f"revoked key {kid}")


__all__ = ["keys_app", "org_app"]
