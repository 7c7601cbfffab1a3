"""docs/formats.md's worked example is exactly what the code produces."""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path

from ledger import merkle
from ledger.checkpoint import verify_checkpoint
from ledger.note import parse_verifier_key
from tests.docs.formats_example import build

DOC = Path(__file__).resolve().parents[2] / "docs" / "formats.md"
TEMPLATE_MARK = "## 8. Worked example"


def render(template: str) -> str:
    values = build()
    head, example = template.split(TEMPLATE_MARK, 1)
    for key, value in values.items():
        example = example.replace("{" + key + "}", value)
    return head + TEMPLATE_MARK + example


def test_worked_example_values_appear_in_the_doc() -> None:
    values = build()
    text = DOC.read_text(encoding="utf-8")
    for key in ("entry_canonical", "entry_sig", "entry_id", "record_canonical", "leaf_hash_hex", "leaf_hash_b64",
                "root_b64", "verifier_key", "operator_kid"):
        assert values[key] in text, f"docs/formats.md is stale: {key} differs; run python -m tests.docs.render_formats"
    assert values["checkpoint"] in text


def test_worked_example_is_self_consistent() -> None:
    values = build()
    record = values["record_canonical"].encode()
    assert hashlib.sha256(b"\x00" + record).hexdigest() == values["leaf_hash_hex"]
    cp = verify_checkpoint(values["checkpoint"], parse_verifier_key(values["verifier_key"]))
    assert cp.size == 2
    proof = [base64.b64decode(p) for p in values["inclusion_proof"].split(", ")]
    merkle.verify_inclusion(base64.b64decode(values["leaf_hash_b64"]), 1, 2, proof, cp.root)
    assert hashlib.sha256(values["entry_canonical"].encode()).hexdigest() == values["entry_id"]
