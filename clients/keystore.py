"""An encrypted file of named Ed25519 private keys (the CLI's keystore).

Each key's 32-byte seed is sealed with XSalsa20-Poly1305 (PyNaCl ``SecretBox``)
under a key derived from the passphrase with Argon2id (``nacl.pwhash.argon2id``,
libsodium's *interactive* limits unless the file says otherwise). Names, org
ids, key ids and public keys are stored in the clear so ``keys list`` and
``keys export-public`` need no passphrase; nothing else about a private key is.
A fixed ``check`` value sealed under the same key lets a wrong passphrase fail
with one clear error before anything is added or read. After unsealing, the
public key is re-derived and compared, so entries cannot be swapped between
names. The file is written atomically with mode 0600::

    {"format": "partsledger-keystore-v1",
     "kdf": {"alg": "argon2id13", "opslimit": 2, "memlimit": 67108864, "salt": "<b64>"},
     "check": "<b64 sealed>",
     "keys": {"<name>": {"org": "...", "kid": "...", "public_key": "<b64>", "sealed": "<b64>"}}}
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nacl.exceptions
import nacl.pwhash
import nacl.secret
import nacl.utils

from ledger.entries import is_valid_org_id
from ledger.errors import Conflict, InvalidInput, NotFound
from ledger.keys import KeyPair, b64decode, b64encode

FORMAT = "partsledger-keystore-v1"
PASSPHRASE_ENV = "PARTSLEDGER_PASSPHRASE"  # noqa: S105 (the variable name, not a secret)
_CHECK = b"partsledger keystore passphrase check v1"
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


@dataclass(frozen=True)
class KeyInfo:
    """What the keystore says about a key without the passphrase."""

    name: str
    org: str
    kid: str
    public_key: bytes

    def to_json(self) -> dict[str, str]:
        return {"name": self.name, "org": self.org, "kid": self.kid, "public_key": b64encode(self.public_key)}


def _corrupt(path: Path, why: str) -> InvalidInput:
    return InvalidInput(f"keystore {path} is not a partsledger keystore ({why})", code="invalid_field",
                        field="keystore")


class Keystore:
    """Named keys in one encrypted file. Open without a passphrase; unseal with one."""

    def __init__(self, path: Path, data: dict[str, Any]) -> None:
        self.path = path
        self._data = data
        self._box: nacl.secret.SecretBox | None = None

    @classmethod
    def open(cls, path: Path) -> Keystore:
        """Open ``path`` (an empty keystore if the file does not exist yet)."""
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return cls(path, {"format": FORMAT, "keys": {}})
        except OSError as exc:
            raise InvalidInput(f"cannot read keystore {path}: {exc.strerror}", code="invalid_field",
                               field="keystore") from None
        try:
            data = json.loads(text)
        except ValueError:
            raise _corrupt(path, "not JSON") from None
        if not isinstance(data, dict) or data.get("format") != FORMAT or not isinstance(data.get("keys"), dict):
            raise _corrupt(path, "unknown format")
        return cls(path, data)

    # public metadata ------------------------------------------------------------------
    def entries(self) -> list[KeyInfo]:
        return [self.info(name) for name in sorted(self._data["keys"])]

    def info(self, name: str) -> KeyInfo:
        item = self._data["keys"].get(name)
        if not isinstance(item, dict):
            known = ", ".join(sorted(self._data["keys"])) or "none"
            raise NotFound(f"no key named {name!r} in keystore {self.path} (keys: {known})", field="name")
        try:
            return KeyInfo(name, str(item["org"]), str(item["kid"]),
                           b64decode(item["public_key"], field="public_key", size=32))
        except (KeyError, InvalidInput):
            raise _corrupt(self.path, f"entry {name!r} is damaged") from None

    def __contains__(self, name: object) -> bool:
        return name in self._data["keys"]

    # the passphrase ------------------------------------------------------------------
    def unlock(self, passphrase: str) -> None:
        """Derive the sealing key; raise ``wrong_passphrase`` if it does not open this keystore."""
        if not passphrase:
            raise InvalidInput("the keystore passphrase must not be empty", code="wrong_passphrase",
                               field="passphrase")
        kdf = self._data.get("kdf")
        if kdf is None:  # a new keystore: choose a salt now
            kdf = {"alg": "argon2id13", "opslimit": nacl.pwhash.argon2id.OPSLIMIT_INTERACTIVE,
                   "memlimit": nacl.pwhash.argon2id.MEMLIMIT_INTERACTIVE,
                   "salt": b64encode(nacl.utils.random(nacl.pwhash.argon2id.SALTBYTES))}
            box = self._derive(passphrase, kdf)
            self._data["kdf"] = kdf
            self._data["check"] = b64encode(box.encrypt(_CHECK))
            self._box = box
            return
        box = self._derive(passphrase, kdf)
        try:
            ok = box.decrypt(b64decode(self._data.get("check", ""), field="check")) == _CHECK
        except (nacl.exceptions.CryptoError, InvalidInput):
            ok = False
        if not ok:
            raise InvalidInput(f"wrong passphrase for keystore {self.path}", code="wrong_passphrase",
                               field="passphrase")
        self._box = box

    def _derive(self, passphrase: str, kdf: Any) -> nacl.secret.SecretBox:
        try:
            if kdf["alg"] != "argon2id13":
                raise _corrupt(self.path, f"unsupported kdf {kdf['alg']!r}")
            salt = b64decode(kdf["salt"], field="salt", size=nacl.pwhash.argon2id.SALTBYTES)
            key = nacl.pwhash.argon2id.kdf(nacl.secret.SecretBox.KEY_SIZE, passphrase.encode("utf-8"), salt,
                                           opslimit=int(kdf["opslimit"]), memlimit=int(kdf["memlimit"]))
        except (KeyError, TypeError, ValueError, nacl.exceptions.RuntimeError):
            raise _corrupt(self.path, "bad kdf parameters") from None
        return nacl.secret.SecretBox(key)

    def _require_box(self) -> nacl.secret.SecretBox:
        if self._box is None:
            raise InvalidInput("the keystore is locked: unlock it with its passphrase first",
                               code="wrong_passphrase", field="passphrase")
        return self._box

    # keys ----------------------------------------------------------------------------------
    def add(self, name: str, pair: KeyPair, *, org: str) -> KeyInfo:
        """Seal ``pair`` under ``name`` and save the file (mode 0600)."""
        if not _NAME_RE.match(name):
            raise InvalidInput("key name: 1–64 characters A-Z a-z 0-9 . _ - starting with a letter or digit",
                               code="invalid_field", field="name")
        if not is_valid_org_id(org):
            raise InvalidInput("org: expected an org id of 3–64 characters a-z, 0-9 and '-'", code="invalid_field",
                               field="org")
        if name in self._data["keys"]:
            raise Conflict(f"keystore {self.path} already holds a key named {name!r}", field="name")
        box = self._require_box()
        self._data["keys"][name] = {"org": org, "kid": pair.kid, "public_key": b64encode(pair.public_key),
                                    "sealed": b64encode(box.encrypt(pair.seed()))}
        self.save()
        return self.info(name)

    def get(self, name: str) -> KeyPair:
        """Unseal the key called ``name`` (the keystore must be unlocked)."""
        info = self.info(name)
        box = self._require_box()
        try:
            seed = box.decrypt(b64decode(self._data["keys"][name]["sealed"], field="sealed"))
            pair = KeyPair.from_seed(seed)
        except (nacl.exceptions.CryptoError, InvalidInput, KeyError):
            raise _corrupt(self.path, f"entry {name!r} does not open") from None
        if pair.public_key != info.public_key:
            raise _corrupt(self.path, f"entry {name!r} does not match its public key")
        return pair

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".keystore-", dir=self.path.parent)
        try:
            os.fchmod(fd, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump(self._data, handle, indent=1, sort_keys=True)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise


__all__ = ["FORMAT", "PASSPHRASE_ENV", "KeyInfo", "Keystore"]
