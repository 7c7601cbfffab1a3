"""C2SP tlog-checkpoint bodies and signed checkpoints."""

from __future__ import annotations

import base64
import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ledger.checkpoint import (
    MAX_TREE_SIZE,
    Checkpoint,
    parse_checkpoint_body,
    sign_checkpoint,
    verify_checkpoint,
)
from ledger.errors import InvalidInput, ProofError
from ledger.note import Signer, open_note, sign_note

ORIGIN = "partsledger.example/log"
ROOT = hashlib.sha256(b"root").digest()
ROOT_B64 = base64.b64encode(ROOT).decode()
LOG = Signer.generate(ORIGIN)


def test_body_format_is_exact() -> None:
    assert Checkpoint(ORIGIN, 20852163, ROOT).body() == f"{ORIGIN}\n20852163\n{ROOT_B64}\n"


def test_body_with_extensions() -> None:
    cp = Checkpoint(ORIGIN, 1, ROOT, ("ext one", "— ext two"))
    assert cp.body() == f"{ORIGIN}\n1\n{ROOT_B64}\next one\n— ext two\n"
    assert parse_checkpoint_body(cp.body()) == cp


def test_empty_tree_size_is_zero() -> None:
    cp = Checkpoint(ORIGIN, 0, hashlib.sha256(b"").digest())
    assert cp.body().split("\n")[1] == "0"
    assert parse_checkpoint_body(cp.body()) == cp


def test_c2sp_example_body_parses() -> None:
    body = "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"
    cp = parse_checkpoint_body(body)
    assert cp.origin == "example.com/behind-the-sofa"
    assert cp.size == 20852163
    assert cp.root == base64.b64decode("CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=")
    assert cp.body() == body


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (f"{ORIGIN}\n007\n{ROOT_B64}\n", "size"),
        (f"{ORIGIN}\n00\n{ROOT_B64}\n", "size"),
        (f"{ORIGIN}\n-1\n{ROOT_B64}\n", "size"),
        (f"{ORIGIN}\n+1\n{ROOT_B64}\n", "size"),
        (f"{ORIGIN}\n 1\n{ROOT_B64}\n", "size"),
        (f"{ORIGIN}\n1_000\n{ROOT_B64}\n", "size"),
        (f"{ORIGIN}\n\u0661\n{ROOT_B64}\n", "size"),  # ARABIC-INDIC DIGIT ONE: int() would accept it
        (f"{ORIGIN}\n0x10\n{ROOT_B64}\n", "size"),
        (f"{ORIGIN}\n\n{ROOT_B64}\n", "size"),
        (f"{ORIGIN}\n{MAX_TREE_SIZE + 1}\n{ROOT_B64}\n", "size"),
        (f"{ORIGIN}\n5\n{ROOT_B64[:-1]}\n", "root"),
        (f"{ORIGIN}\n5\n{ROOT_B64[:-1]}*\n", "root"),
        (f"{ORIGIN}\n5\n{ROOT_B64.rstrip('=')}\n", "root"),
        (f"{ORIGIN}\n5\n{ROOT_B64[:-2]}F=\n", "root"),  # non-canonical trailing bits
        (f"{ORIGIN}\n5\n{base64.b64encode(ROOT[:31]).decode()}\n", "root"),
        (f"{ORIGIN}\n5\n{base64.b64encode(ROOT + b'x').decode()}\n", "root"),
        (f"{ORIGIN}\n5\n{base64.urlsafe_b64encode(bytes([0xFB] * 32)).decode()}\n", "root"),
        (f"{ORIGIN}\n5\n\n", "root"),
        (f"\n5\n{ROOT_B64}\n", "origin"),
        (f"{ORIGIN}\n5\n{ROOT_B64}\n\n", "extensions"),
        (f"{ORIGIN}\n5\n{ROOT_B64}\next\n\nmore\n", "extensions"),
        (f"{ORIGIN}\n5\n{ROOT_B64}", "checkpoint"),
        (f"{ORIGIN}\n5\n", "checkpoint"),
        (f"{ORIGIN}\n5\n{ROOT_B64}\r\n", "checkpoint"),
        (f"{ORIGIN}\r\n5\n{ROOT_B64}\n", "checkpoint"),
        ("", "checkpoint"),
    ],
)
def test_parse_is_strict(body: str, field: str) -> None:
    with pytest.raises(ProofError) as info:
        parse_checkpoint_body(body)
    assert info.value.code == "bad_checkpoint"
    assert info.value.field == field


def test_parse_rejects_non_string() -> None:
    with pytest.raises(InvalidInput):
        parse_checkpoint_body(b"x\n1\n" + ROOT_B64.encode() + b"\n")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"origin": "", "size": 1, "root": ROOT},
        {"origin": "a\nb", "size": 1, "root": ROOT},
        {"origin": "a\tb", "size": 1, "root": ROOT},
        {"origin": ORIGIN, "size": -1, "root": ROOT},
        {"origin": ORIGIN, "size": MAX_TREE_SIZE + 1, "root": ROOT},
        {"origin": ORIGIN, "size": True, "root": ROOT},
        {"origin": ORIGIN, "size": 1.0, "root": ROOT},
        {"origin": ORIGIN, "size": 1, "root": ROOT[:31]},
        {"origin": ORIGIN, "size": 1, "root": ROOT_B64},
        {"origin": ORIGIN, "size": 1, "root": ROOT, "extensions": ("",)},
        {"origin": ORIGIN, "size": 1, "root": ROOT, "extensions": ("a\nb",)},
        {"origin": ORIGIN, "size": 1, "root": ROOT, "extensions": "abc"},
    ],
)
def test_constructor_validates(kwargs: dict[str, object]) -> None:
    with pytest.raises(InvalidInput):
        Checkpoint(**kwargs)  # type: ignore[arg-type]


def test_sign_and_verify_round_trip() -> None:
    cp = Checkpoint(ORIGIN, 42, ROOT)
    signed = sign_checkpoint(cp, LOG)
    assert signed.startswith(cp.body() + "\n— " + ORIGIN + " ")
    assert verify_checkpoint(signed, LOG.verifier()) == cp
    assert verify_checkpoint(signed.encode(), LOG.verifier(), origin=ORIGIN) == cp


def test_wrong_origin_is_rejected() -> None:
    signed = sign_checkpoint(Checkpoint(ORIGIN, 42, ROOT), LOG)
    with pytest.raises(ProofError) as info:
        verify_checkpoint(signed, LOG.verifier(), origin="other.example/log")
    assert info.value.code == "bad_checkpoint"
    assert info.value.field == "origin"


def test_wrong_key_is_rejected() -> None:
    impostor = Signer.generate(ORIGIN)
    signed = sign_checkpoint(Checkpoint(ORIGIN, 42, ROOT), impostor)
    with pytest.raises(ProofError) as info:
        verify_checkpoint(signed, LOG.verifier(), origin=ORIGIN)
    assert info.value.code == "bad_checkpoint"


def test_tampered_size_is_rejected() -> None:
    signed = sign_checkpoint(Checkpoint(ORIGIN, 42, ROOT), LOG)
    with pytest.raises(ProofError) as info:
        verify_checkpoint(signed.replace("\n42\n", "\n43\n", 1), LOG.verifier())
    assert info.value.code == "bad_checkpoint"


def test_cosigned_checkpoint_verifies_with_log_key() -> None:
    witness = Signer.generate("witness.example")
    cosigned = sign_note(Checkpoint(ORIGIN, 7, ROOT).body(), [LOG, witness])
    assert verify_checkpoint(cosigned, LOG.verifier(), ORIGIN).size == 7
    assert len(open_note(cosigned, [LOG.verifier()]).unverified_lines) == 1


def test_signed_malformed_body_is_rejected() -> None:
    signed = sign_note(f"{ORIGIN}\n007\n{ROOT_B64}\n", [LOG])
    with pytest.raises(ProofError) as info:
        verify_checkpoint(signed, LOG.verifier())
    assert info.value.code == "bad_checkpoint"


_line = st.text(st.characters(exclude_categories=["Cs"], exclude_characters=[chr(c) for c in range(0x20)]), min_size=1)


@given(_line, st.integers(0, MAX_TREE_SIZE), st.binary(min_size=32, max_size=32), st.lists(_line, max_size=3))
def test_body_round_trips(origin: str, size: int, root: bytes, extensions: list[str]) -> None:
    cp = Checkpoint(origin, size, root, tuple(extensions))
    assert parse_checkpoint_body(cp.body()) == cp
