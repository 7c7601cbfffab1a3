"""The CLI's keys and org commands against a real server; no private key ever shows up outside the keystore."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from clients.keystore import Keystore
from ledger.keys import KeyPair, b64encode, b64url_encode, read_key_file
from tests.clients.running import RunningServer, cli, start_server


@pytest.fixture
def running(tmp_path: Path, db_url: str) -> Iterator[RunningServer]:
    server = start_server(tmp_path, db_url)
    yield server
    server.stop()


def _forms(pair: KeyPair) -> list[str]:
    seed, full = pair.seed(), bytes(pair.signing_key._signing_key)
    return [seed.hex(), seed.hex().upper(), b64encode(seed), b64url_encode(seed), b64encode(full), full.hex()]


def test_keys_org_register_and_no_secret_anywhere(running: RunningServer, tmp_path: Path) -> None:
    home = tmp_path / "home"
    outputs: list[str] = []

    def run(*args: str, expect: int = 0) -> str:
        result = cli(*args, home=home)
        outputs.extend([result.stdout, result.stderr])
        assert result.returncode == expect, result.stdout + result.stderr
        assert "Traceback" not in result.stderr
        return result.stdout

    op = json.loads(run("keys", "import", "operator", "--org", "partsledger-operator", "--key-file",
                        str(running.operator_key), "--json"))
    oem = json.loads(run("keys", "generate", "acme", "--org", "acme-oem", "--json"))
    assert set(oem) == {"name", "org", "kid", "public_key"}
    assert run("keys", "export-public", "acme").strip() == oem["public_key"]
    listed = json.loads(run("keys", "list", "--json"))
    assert [k["name"] for k in listed] == ["acme", "operator"] and listed[1]["kid"] == op["kid"]
    receipt = json.loads(run("org", "register", "acme-oem", "--kind", "oem", "--name", "Acme Motors",
                             "--public-key", "acme", "--prefix", "950600", "--country", "CN", "--key", "operator",
                             "--url", running.url, "--json"))
    assert receipt["seq"] == 1 and receipt["duplicate"] is False
    human = run("org", "register", "oslo-garage", "--kind", "workshop", "--name", "Oslo Garage",
                "--public-key", b64encode(KeyPair.generate().public_key), "--key", "operator", "--url", running.url)
    assert "registered oslo-garage: record 2 of 3; receipt verified" in human
    refused = run("org", "register", "acme-oem", "--kind", "oem", "--name", "Again", "--public-key", "acme",
                  "--key", "operator", "--url", running.url, "--json", expect=2)
    assert json.loads(refused)["ok"] is False and json.loads(refused)["code"] == "conflict"
    run("audit", "--url", running.url, "--json")

    store = Keystore.open(home / "keystore.json")
    store.unlock("test passphrase")
    secrets = _forms(store.get("acme")) + _forms(read_key_file(running.operator_key))
    files = [p for p in home.rglob("*") if p.is_file() and p.name != "keystore.json"]
    assert files, "the client wrote state files"
    texts = outputs + [p.read_bytes().decode("latin-1") for p in files] + [running.log.read_text()]
    keystore_text = (home / "keystore.json").read_text()
    for secret in secrets:
        assert not any(secret in text for text in texts), "a private key leaked"
        assert secret not in keystore_text  # sealed, not stored in the clear


def test_wrong_passphrase_is_one_clear_line(tmp_path: Path) -> None:
    home = tmp_path / "home"
    assert cli("keys", "generate", "acme", "--org", "acme-oem", home=home).returncode == 0
    wrong = cli("keys", "generate", "other", "--org", "acme-oem", home=home,
                env={"PARTSLEDGER_PASSPHRASE": "not it"})
    assert wrong.returncode == 2
    assert wrong.stderr.strip().startswith("error: wrong_passphrase: wrong passphrase for keystore")
    assert len(wrong.stderr.strip().splitlines()) == 1
    as_json = cli("keys", "generate", "other", "--org", "acme-oem", "--json", home=home,
                  env={"PARTSLEDGER_PASSPHRASE": "not it"})
    assert json.loads(as_json.stdout)["code"] == "wrong_passphrase"
    no_tty = cli("keys", "generate", "other", "--org", "acme-oem", home=home, env={"PARTSLEDGER_PASSPHRASE": ""})
    assert no_tty.returncode == 2 and "PARTSLEDGER_PASSPHRASE" in no_tty.stderr


def test_unreachable_server_exits_3(tmp_path: Path) -> None:
    result = cli("audit", "--url", "http://127.0.0.1:9", home=tmp_path / "home")
    assert result.returncode == 3 and "cannot reach" in result.stderr and "Traceback" not in result.stderr
