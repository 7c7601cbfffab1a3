"""RFC 8032 §7.1 Ed25519 known answers, signed and verified with PyNaCl."""

from __future__ import annotations

import nacl.exceptions
import nacl.signing
import pytest

from ledger.note import Verifier
from tests.vectors import Ed25519Vector, ed25519_vectors

VECTORS = ed25519_vectors()


def test_all_rfc8032_section_7_1_vectors_are_present() -> None:
    assert [v.name for v in VECTORS] == ["TEST 1", "TEST 2", "TEST 3", "TEST 1024", "TEST SHA(abc)"]
    assert len(VECTORS[3].message) == 1023


@pytest.mark.parametrize("vector", VECTORS, ids=lambda v: v.name)
def test_public_key_and_signature_match_byte_for_byte(vector: Ed25519Vector) -> None:
    key = nacl.signing.SigningKey(vector.secret_key)
    assert bytes(key.verify_key) == vector.public_key
    assert key.sign(vector.message).signature == vector.signature


@pytest.mark.parametrize("vector", VECTORS, ids=lambda v: v.name)
def test_signature_verifies(vector: Ed25519Vector) -> None:
    nacl.signing.VerifyKey(vector.public_key).verify(vector.message, vector.signature)
    assert Verifier.from_public_key("rfc8032", vector.public_key).verify(vector.message, vector.signature)


@pytest.mark.parametrize("vector", VECTORS, ids=lambda v: v.name)
@pytest.mark.parametrize("bit", [0, 7, 255, 256, 511])
def test_flipped_signature_bit_fails(vector: Ed25519Vector, bit: int) -> None:
    bad = bytearray(vector.signature)
    bad[bit // 8] ^= 1 << (bit % 8)
    with pytest.raises(nacl.exceptions.BadSignatureError):
        nacl.signing.VerifyKey(vector.public_key).verify(vector.message, bytes(bad))
    assert not Verifier.from_public_key("rfc8032", vector.public_key).verify(vector.message, bytes(bad))


@pytest.mark.parametrize("vector", VECTORS, ids=lambda v: v.name)
def test_changed_message_fails(vector: Ed25519Vector) -> None:
    # Flip the last bit of the message; the empty message of TEST 1 becomes one zero byte.
    changed = vector.message[:-1] + bytes([vector.message[-1] ^ 1]) if vector.message else b"\x00"
    assert not Verifier.from_public_key("rfc8032", vector.public_key).verify(changed, vector.signature)
