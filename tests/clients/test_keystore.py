"""The encrypted keystore: sealed seeds, a clear wrong-passphrase error, mode 0600, no key in the clear."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from clients.keystore import Keystore
from ledger.errors import Conflict, InvalidInput, NotFound
from ledger.keys import KeyPair, b64encode, b64url_encode


def _secret_forms(pair: KeyPair) -> list[str]:
    seed = pair.seed()
    full = bytes(pair.signing_key._signing_key)  # libsodium's 64-byte secret key (seed || public)
    return [seed.hex(), b64encode(seed), b64url_encode(seed), full.hex(), b64encode(full)]


def test_keys_round_trip_and_the_file_never_holds_them(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    store = Keystore.open(path)
    store.unlock("correct horse")
    pair = KeyPair.generate()
    info = store.add("acme", pair, org="acme-oem")
    assert info.kid == pair.kid
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    text = path.read_text()
    assert not any(form in text for form in _secret_forms(pair))
    reopened = Keystore.open(path)
    assert [e.name for e in reopened.entries()] == ["acme"]  # listing needs no passphrase
    reopened.unlock("correct horse")
    assert reopened.get("acme").seed() == pair.seed()


def test_wrong_passphrase_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    store = Keystore.open(path)
    store.unlock("right")
    store.add("acme", KeyPair.generate(), org="acme-oem")
    other = Keystore.open(path)
    with pytest.raises(InvalidInput, match="wrong passphrase") as caught:
        other.unlock("wrong")
    assert caught.value.code == "wrong_passphrase"
    with pytest.raises(InvalidInput, match="locked"):
        other.get("acme")


def test_a_key_swapped_between_names_is_detected(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    store = Keystore.open(path)
    store.unlock("pw")
    store.add("a", KeyPair.generate(), org="org-a")
    store.add("b", KeyPair.generate(), org="org-b")
    data = json.loads(path.read_text())
    data["keys"]["a"]["sealed"], data["keys"]["b"]["sealed"] = data["keys"]["b"]["sealed"], data["keys"]["a"]["sealed"]
    path.write_text(json.dumps(data))
    swapped = Keystore.open(path)
    swapped.unlock("pw")
    with pytest.raises(InvalidInput, match="does not match its public key"):
        swapped.get("a")


def test_names_are_unique_and_lookups_name_what_exists(tmp_path: Path) -> None:
    store = Keystore.open(tmp_path / "keys.json")
    store.unlock("pw")
    store.add("a", KeyPair.generate(), org="org-a")
    with pytest.raises(Conflict):
        store.add("a", KeyPair.generate(), org="org-a")
    with pytest.raises(NotFound, match=r"keys: a"):
        store.info("missing")
    with pytest.raises(InvalidInput, match="key name"):
        store.add("../evil", KeyPair.generate(), org="org-a")


def test_a_file_that_is_not_a_keystore(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    path.write_text("{}")
    with pytest.raises(InvalidInput, match="not a partsledger keystore"):
        Keystore.open(path)
