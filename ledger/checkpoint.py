"""Checkpoints (SPEC §3.5): C2SP ``tlog-checkpoint`` bodies in signed notes.

A checkpoint body is exactly::

    <origin>\\n
    <tree size in decimal, no leading zeros>\\n
    <base64 of the 32-byte RFC 6962 root hash>\\n
    <optional extension lines, each non-empty>\\n

and the log signs it as a C2SP signed note (:mod:`ledger.note`). Parsing is
strict: anything a conforming log would not write is refused, so every
checkpoint has exactly one byte encoding.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass

from ledger.errors import InvalidInput, ProofError
from ledger.note import Signer, Verifier, _b64decode_canonical, _bad_control, open_note, sign_note

MAX_TREE_SIZE = 2**63 - 1
"""Largest tree size accepted (Go's ``tlog`` counts records in an ``int64``)."""

ROOT_SIZE = 32

_SIZE = re.compile("0|[1-9][0-9]*")


def _check_line(value: object, field: str, what: str) -> str:
    if not isinstance(value, str) or not value:
        raise InvalidInput(f"checkpoint {what} must be a non-empty string", code="invalid_field", field=field)
    if "\n" in value or _bad_control(value) is not None:
        raise InvalidInput(
            f"checkpoint {what} must be a single line without control characters", code="invalid_field", field=field
        )
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidInput(f"checkpoint {what} is not encodable as UTF-8", code="invalid_field", field=field) from None
    return value


@dataclass(frozen=True)
class Checkpoint:
    """A signed tree head: the log's origin, its size and its RFC 6962 root hash."""

    origin: str
    size: int
    root: bytes
    extensions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        _check_line(self.origin, "origin", "origin")
        if isinstance(self.size, bool) or not isinstance(self.size, int) or not 0 <= self.size <= MAX_TREE_SIZE:
            raise InvalidInput(
                f"checkpoint size must be an integer in [0, {MAX_TREE_SIZE}]", code="invalid_field", field="size"
            )
        if not isinstance(self.root, bytes) or len(self.root) != ROOT_SIZE:
            raise InvalidInput(f"checkpoint root must be {ROOT_SIZE} bytes", code="invalid_field", field="root")
        extensions: object = self.extensions
        if isinstance(extensions, str) or not isinstance(extensions, tuple | list):
            raise InvalidInput(
                "checkpoint extensions must be a tuple of lines", code="invalid_field", field="extensions"
            )
        object.__setattr__(self, "extensions", tuple(extensions))
        for line in self.extensions:
            _check_line(line, "extensions", "extension line")

    def body(self) -> str:
        """The note text: ``<origin>\\n<size>\\n<base64 root>\\n`` then the extension lines."""
        lines = [self.origin, str(self.size), base64.b64encode(self.root).decode("ascii"), *self.extensions]
        return "".join(line + "\n" for line in lines)


def _bad(rule: str, field: str) -> ProofError:
    return ProofError(f"malformed checkpoint: {rule}", code="bad_checkpoint", field=field)


def parse_checkpoint_body(text: str) -> Checkpoint:
    """Parse a checkpoint body strictly.

    Raises :class:`ProofError` (code ``bad_checkpoint``) for a body that is
    not exactly what :meth:`Checkpoint.body` would produce, and
    :class:`InvalidInput` if ``text`` is not a string.
    """
    if not isinstance(text, str):
        raise InvalidInput("a checkpoint body is a string", code="invalid_field", field="checkpoint")
    if not text.endswith("\n"):
        raise _bad("the body must end with a newline", "checkpoint")
    position = _bad_control(text)
    if position is not None:
        raise _bad(f"control character {text[position]!r} at offset {position}", "checkpoint")
    lines = text[:-1].split("\n")
    if len(lines) < 3:
        raise _bad("a checkpoint has at least three lines: origin, size and root hash", "checkpoint")
    origin, size_text, root_text, *extensions = lines
    if not origin:
        raise _bad("the origin line is empty", "origin")
    if not _SIZE.fullmatch(size_text):
        raise _bad(f"size {size_text!r} is not a decimal number without leading zeros", "size")
    size = int(size_text)
    if size > MAX_TREE_SIZE:
        raise _bad(f"size {size_text} is larger than {MAX_TREE_SIZE}", "size")
    root = _b64decode_canonical(root_text)
    if root is None:
        raise _bad("the root hash is not canonical base64", "root")
    if len(root) != ROOT_SIZE:
        raise _bad(f"the root hash is {len(root)} bytes, not {ROOT_SIZE}", "root")
    if any(not line for line in extensions):
        raise _bad("extension lines must not be empty", "extensions")
    try:
        return Checkpoint(origin, size, root, tuple(extensions))
    except InvalidInput as exc:  # unencodable text (lone surrogates) lands here
        raise _bad(exc.message, exc.field or "checkpoint") from None


def sign_checkpoint(cp: Checkpoint, signer: Signer) -> str:
    """The checkpoint as a signed note, signed by ``signer``."""
    if not isinstance(cp, Checkpoint):
        raise InvalidInput("cp must be a Checkpoint", code="invalid_field", field="checkpoint")
    return sign_note(cp.body(), [signer])


def verify_checkpoint(note: str | bytes, verifier: Verifier, origin: str | None = None) -> Checkpoint:
    """Open a signed checkpoint with ``verifier`` and parse its body.

    If ``origin`` is given the checkpoint must carry exactly that origin.
    Raises :class:`ProofError` (code ``bad_checkpoint``) otherwise.
    """
    try:
        opened = open_note(note, [verifier])
    except ProofError as exc:
        raise ProofError(f"checkpoint: {exc.message}", code="bad_checkpoint", field=exc.field) from exc
    checkpoint = parse_checkpoint_body(opened.text)
    if origin is not None and checkpoint.origin != origin:
        raise ProofError(
            f"checkpoint origin {checkpoint.origin!r} is not the expected {origin!r}",
            code="bad_checkpoint",
            field="origin",
        )
    return checkpoint


__all__ = [
    "MAX_TREE_SIZE",
    "ROOT_SIZE",
    "Checkpoint",
    "parse_checkpoint_body",
    "sign_checkpoint",
    "verify_checkpoint",
]
