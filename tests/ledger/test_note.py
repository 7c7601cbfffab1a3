"""C2SP signed notes: Go ``sumdb/note`` known answers, strictness and properties."""

from __future__ import annotations

import base64

import nacl.signing
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.errors import InvalidInput, ProofError
from ledger.note import (
    MAX_SIGNATURES,
    Note,
    Signer,
    Verifier,
    key_hash,
    open_note,
    parse_verifier_key,
    sign_note,
    signer_key,
    verifier_key,
)

# The worked example of golang.org/x/mod/sumdb/note (package docs, example_test.go, note_test.go).
PETER_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
PETER_SKEY = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
TEXT = "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n"
PETER_SIG = (
    "— PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n"
)
PETER_NOTE = TEXT + "\n" + PETER_SIG
# Go's ExampleSign_add_signatures: "EnochRoot" generated from an all-zero random stream (seed = 32 zero bytes).
ENOCH_VKEY = "EnochRoot+af0cfe78+ATtqJ7zOtqQtYqOo0CpvDXNlMhV3HeJDpjrASKGLWdop"
ENOCH_SIG = "— EnochRoot rwz+eBzmZa0SO3NbfRGzPCpDckykFXSdeX+MNtCOXm2/5n2tiOHp+vAF1aGrQ5ovTG01oOTGwnWLox33WWd1RvMc+QQ=\n"

PETER = parse_verifier_key(PETER_VKEY)
ENOCH = parse_verifier_key(ENOCH_VKEY)


def _peter_seed() -> bytes:
    return base64.b64decode(PETER_SKEY.split("+", 4)[4])[1:]


# --- known answers -----------------------------------------------------------------------------


def test_parse_go_verifier_key() -> None:
    assert PETER.name == "PeterNeumann"
    assert PETER.key_hash == bytes.fromhex("c74f20a3")
    assert PETER.public_key == base64.b64decode("ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW")[1:]
    assert PETER.verifier_key() == PETER_VKEY


def test_key_hash_and_verifier_key_match_go() -> None:
    assert key_hash("PeterNeumann", PETER.public_key) == bytes.fromhex("c74f20a3")
    assert verifier_key("PeterNeumann", PETER.public_key) == PETER_VKEY
    assert verifier_key("EnochRoot", bytes(nacl.signing.SigningKey(bytes(32)).verify_key)) == ENOCH_VKEY


def test_signer_key_matches_go() -> None:
    assert signer_key("PeterNeumann", _peter_seed()) == PETER_SKEY
    signer = Signer.from_signer_key(PETER_SKEY)
    assert signer.name == "PeterNeumann"
    assert signer.key_hash == bytes.fromhex("c74f20a3")
    assert signer.verifier_key() == PETER_VKEY
    assert signer.verifier() == PETER


def test_sign_matches_go_example_byte_for_byte() -> None:
    signer = Signer("PeterNeumann", nacl.signing.SigningKey(_peter_seed()))
    assert sign_note(TEXT, [signer]) == PETER_NOTE


def test_doubly_signed_note_matches_go_example() -> None:
    peter = Signer.from_signer_key(PETER_SKEY)
    enoch = Signer.from_signer_key(signer_key("EnochRoot", bytes(32)))
    assert sign_note(TEXT, [peter, enoch]) == PETER_NOTE + ENOCH_SIG


def test_open_go_example() -> None:
    note = open_note(PETER_NOTE.encode("utf-8"), [PETER])
    assert note == Note(text=TEXT, verified=(PETER,), unverified_lines=())
    assert open_note(PETER_NOTE, [PETER]) == note


def test_open_one_verified_one_unverified() -> None:
    note = open_note(TEXT + "\n" + PETER_SIG + ENOCH_SIG, [PETER])
    assert note.verified == (PETER,)
    assert note.unverified_lines == (ENOCH_SIG.rstrip("\n"),)


def test_open_both_verified_in_note_order() -> None:
    note = open_note(TEXT + "\n" + PETER_SIG + ENOCH_SIG, [ENOCH, PETER])
    assert note.verified == (PETER, ENOCH)
    assert note.unverified_lines == ()


def test_open_with_no_known_key_fails() -> None:
    with pytest.raises(ProofError) as info:
        open_note(TEXT + "\n" + PETER_SIG + ENOCH_SIG, [])
    assert info.value.code == "bad_note"
    assert "PeterNeumann+c74f20a3" in info.value.message


def test_unknown_key_fails() -> None:
    other = Signer.generate("PeterNeumann")  # same name, different key: must be ignored, not trusted
    with pytest.raises(ProofError):
        open_note(PETER_NOTE, [other.verifier()])


def test_too_many_signatures_fail() -> None:
    with pytest.raises(ProofError, match="more than 100"):
        open_note(TEXT + "\n" + PETER_SIG * (MAX_SIGNATURES + 1), [PETER])
    assert open_note(TEXT + "\n" + PETER_SIG * MAX_SIGNATURES, [PETER]).verified == (PETER,)


def test_invalid_signature_from_known_key_fails() -> None:
    tampered = PETER_SIG[:60] + "ABCD" + PETER_SIG[60:]
    with pytest.raises(ProofError, match="does not verify"):
        open_note(TEXT + "\n" + tampered, [PETER])


def test_duplicate_signatures_are_reported_once() -> None:
    enoch_abcd = ENOCH_SIG[:60] + "ABCD" + ENOCH_SIG[60:]
    msg = TEXT + "\n" + PETER_SIG + PETER_SIG + ENOCH_SIG + ENOCH_SIG + enoch_abcd
    note = open_note(msg, [PETER])
    assert note.verified == (PETER,)
    assert note.unverified_lines == (ENOCH_SIG.rstrip("\n"), enoch_abcd.rstrip("\n"))


def test_every_known_key_signature_is_verified_even_when_repeated() -> None:
    # Go skips a second signature line by the same known key; C2SP says it MUST be verified.
    bad_repeat = PETER_SIG[:60] + "ABCD" + PETER_SIG[60:]
    with pytest.raises(ProofError, match="does not verify"):
        open_note(TEXT + "\n" + PETER_SIG + bad_repeat, [PETER])


@pytest.mark.parametrize(
    "msg",
    [
        TEXT,
        TEXT + "\n",
        TEXT + "\n" + PETER_SIG[:-1],
        "\x01" + TEXT + "\n" + PETER_SIG,
        "\r" + TEXT + "\n" + PETER_SIG,
        "\t" + TEXT + "\n" + PETER_SIG,
        TEXT + "\n" + PETER_SIG.replace("PeterNeumann", "Bad Name")[:-1],
        TEXT + "\n" + PETER_SIG + "Unexpected line.\n",
        TEXT + "\n" + PETER_SIG.replace("— ", "- "),
        TEXT + "\n" + PETER_SIG.replace("— ", "—"),
        TEXT + "\n" + PETER_SIG.replace("PeterNeumann ", "PeterNeumann  "),
        TEXT + "\n" + PETER_SIG.replace("PeterNeumann ", "Peter+Neumann "),
        TEXT + "\n" + PETER_SIG.replace("PeterNeumann ", "Peter\u3000Neumann "),
        TEXT + "\n" + PETER_SIG.replace("— PeterNeumann", "— "),
        TEXT + "\n" + "— PeterNeumann \n",
        TEXT + "\n" + "— PeterNeumann x08go/ZJ\n",  # Peter's key hash with a 2-byte signature
        TEXT + "\n" + "— PeterNeumann x08g\n",  # fewer than 5 bytes
        TEXT + "\n" + PETER_SIG.replace("AM=", "AM"),  # missing padding
        TEXT + "\n" + PETER_SIG.replace("AM=", "AN="),  # non-canonical trailing bits
        TEXT + "\n" + PETER_SIG.replace("AM=", "AM=="),
        TEXT + "\n" + PETER_SIG.replace("JnAM=", "Jn\u00e9AM="),
        TEXT + "\n" + PETER_SIG + "\n",
        "",
        "\n\n",
    ],
)
def test_malformed_notes_are_rejected(msg: str) -> None:
    with pytest.raises(ProofError) as info:
        open_note(msg, [PETER])
    assert info.value.code == "bad_note"


@pytest.mark.parametrize(
    "raw",
    [
        b"\xff" + PETER_NOTE.encode(),
        PETER_NOTE.encode().replace(b"\xe2\x80\x94", b"\xe2\x80"),
        b"\xed\xa0\x80\n\n" + PETER_SIG.encode(),  # UTF-8 encoded surrogate
        b"\xc0\xaf\n\n" + PETER_SIG.encode(),  # overlong encoding
    ],
)
def test_invalid_utf8_is_rejected(raw: bytes) -> None:
    with pytest.raises(ProofError, match=r"UTF-8|em dash"):
        open_note(raw, [PETER])


def test_oversized_note_is_rejected() -> None:
    with pytest.raises(ProofError, match="larger than"):
        open_note("x" * (1 << 20) + "\n\n" + PETER_SIG, [PETER])


def test_text_may_contain_blank_lines() -> None:
    signer = Signer.generate("example.com/log")
    text = "first\n\nsecond\n\n"
    note = open_note(sign_note(text, [signer]), [signer.verifier()])
    assert note.text == text


# --- verifier keys ----------------------------------------------------------------------------


def _manglings(key: str) -> list[str]:
    out = [key[i:j] for i in range(len(key) + 1) for j in range(i + 1, len(key) + 1) if (i, j) != (0, len(key))]
    out += [key[:i] + chr(ord(key[i]) + 1) + key[i + 1 :] for i in range(len(key))]
    return out


def test_every_mangled_verifier_key_is_rejected() -> None:
    for bad in _manglings(PETER_VKEY):
        with pytest.raises(InvalidInput):
            parse_verifier_key(bad)


@pytest.mark.parametrize(
    "vkey",
    [
        "PeterNeumann+cc469956+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TWBADKEY==",  # wrong length, hash adjusted
        "PeterNeumann+173116ae+ZRpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",  # unknown algorithm, hash adjusted
        "PeterNeumann+c74f20a3",
        "PeterNeumann+c74f20a3+",
        "+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
        "PeterNeumann+0xc74f20+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
        "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW\n",
    ],
)
def test_bad_verifier_keys_are_rejected(vkey: str) -> None:
    with pytest.raises(InvalidInput):
        parse_verifier_key(vkey)


def test_uppercase_hash_is_accepted_like_go() -> None:
    assert parse_verifier_key(PETER_VKEY.replace("c74f20a3", "C74F20A3")) == PETER


def test_verifier_rejects_wrong_key_hash() -> None:
    with pytest.raises(InvalidInput, match="key hash"):
        Verifier("PeterNeumann", bytes.fromhex("c74f20a4"), PETER.public_key)


@pytest.mark.parametrize("name", ["", "a b", "a+b", "a\u00a0b", "a\u2003b", "a\u3000b", "a\x85b", "a\x1fb", "\ud800"])
def test_invalid_names_are_rejected(name: str) -> None:
    with pytest.raises(InvalidInput):
        key_hash(name, PETER.public_key)
    with pytest.raises(InvalidInput):
        Signer(name, nacl.signing.SigningKey.generate())


def test_non_ascii_names_are_allowed() -> None:
    signer = Signer.generate("例え.example/ログ")
    note = open_note(sign_note("hello\n", [signer]), [parse_verifier_key(signer.verifier_key())])
    assert note.verified[0].name == "例え.example/ログ"


def test_conflicting_verifiers_are_refused() -> None:
    other = Signer.generate("x")
    same_id = Verifier.__new__(Verifier)  # bypass the hash check to forge a colliding name+hash
    object.__setattr__(same_id, "name", PETER.name)
    object.__setattr__(same_id, "key_hash", PETER.key_hash)
    object.__setattr__(same_id, "public_key", other.public_key)
    with pytest.raises(InvalidInput, match="share the name and key hash"):
        open_note(PETER_NOTE, [PETER, same_id])
    assert open_note(PETER_NOTE, [PETER, PETER]).verified == (PETER,)


# --- signing ----------------------------------------------------------------------------------


def test_sign_rejects_bad_input() -> None:
    signer = Signer.generate("log")
    with pytest.raises(InvalidInput, match="newline"):
        sign_note("no newline", [signer])
    with pytest.raises(InvalidInput, match="control"):
        sign_note("tab\there\n", [signer])
    with pytest.raises(InvalidInput, match="at least one"):
        sign_note("x\n", [])
    with pytest.raises(InvalidInput, match="twice"):
        sign_note("x\n", [signer, signer])
    with pytest.raises(InvalidInput, match="UTF-8"):
        sign_note("\ud800\n", [signer])


def test_round_trip_with_several_signers() -> None:
    signers = [Signer.generate(f"witness{i}.example") for i in range(3)]
    signed = sign_note("tree head\n", signers)
    note = open_note(signed, [s.verifier() for s in signers])
    assert note.text == "tree head\n"
    assert [v.name for v in note.verified] == [s.name for s in signers]
    only_middle = open_note(signed, [signers[1].verifier()])
    assert only_middle.verified == (signers[1].verifier(),)
    assert len(only_middle.unverified_lines) == 2


def test_tampered_text_fails() -> None:
    with pytest.raises(ProofError, match="does not verify"):
        open_note(PETER_NOTE.replace("cryptography", "cryptographY"), [PETER])


def test_tampered_signature_fails() -> None:
    raw = bytearray(PETER_NOTE.encode())
    position = raw.index(b"x08go/") + 20
    raw[position] = ord("A") if raw[position] != ord("A") else ord("B")
    with pytest.raises(ProofError):
        open_note(bytes(raw), [PETER])


# --- secrets stay secret ----------------------------------------------------------------------


def _secret_forms() -> list[str]:
    seed = _peter_seed()
    encoded = PETER_SKEY.split("+", 4)[4]
    return [seed.hex(), encoded, encoded[:12], base64.b64encode(seed).decode()[:12], repr(seed)[2:14]]


def test_signer_repr_and_str_hide_the_key() -> None:
    signer = Signer.from_signer_key(PETER_SKEY)
    for text in (repr(signer), str(signer), f"{signer}"):
        assert "PeterNeumann" in text
        for secret in _secret_forms():
            assert secret not in text


def test_signer_key_errors_never_echo_the_key() -> None:
    for bad in _manglings(PETER_SKEY):
        with pytest.raises(InvalidInput) as info:
            Signer.from_signer_key(bad)
        message = str(info.value) + repr(info.value) + repr(info.value.details)
        for secret in _secret_forms():
            assert secret not in message
        assert info.value.__cause__ is None
        assert info.value.__suppress_context__ or info.value.__context__ is None


def test_signer_rejects_non_signing_key() -> None:
    with pytest.raises(InvalidInput) as info:
        Signer("log", _peter_seed())  # type: ignore[arg-type]
    assert _peter_seed().hex() not in str(info.value)


# --- properties -------------------------------------------------------------------------------

_note_char = st.characters(
    exclude_categories=["Cs"],
    exclude_characters=[chr(c) for c in range(0x20) if c != 0x0A],
)
note_texts = st.text(_note_char, max_size=200).map(lambda s: s + "\n")
SIGNER = Signer.from_signer_key(PETER_SKEY)


@given(note_texts)
def test_any_text_round_trips(text: str) -> None:
    signed = sign_note(text, [SIGNER])
    note = open_note(signed, [PETER])
    assert note.text == text
    assert note.verified == (PETER,)
    assert open_note(signed.encode("utf-8"), [PETER]) == note


@settings(max_examples=300)
@given(note_texts, st.data())
def test_any_single_byte_change_is_detected(text: str, data: st.DataObject) -> None:
    raw = bytearray(sign_note(text, [SIGNER]).encode("utf-8"))
    index = data.draw(st.integers(0, len(raw) - 1), label="index")
    value = data.draw(st.integers(0, 255).filter(lambda b: b != raw[index]), label="value")
    raw[index] = value
    with pytest.raises(ProofError):
        open_note(bytes(raw), [PETER])
