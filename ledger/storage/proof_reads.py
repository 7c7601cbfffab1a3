"""Log reads inside a caller's session: the latest checkpoint, a record's bytes, Merkle nodes.

:class:`~ledger.log.Ledger` opens one transaction per call; the scan path
needs a checkpoint, the part's latest record and its inclusion proof
*together with* the part's projections, consistently and cheaply, so it
reads them all in one read transaction through these helpers.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from sqlalchemy import and_, or_, select
from sqlmodel import Session

from ledger import merkle
from ledger.storage.log_tables import CHECKPOINTS, NODES, RECORDS


def latest_checkpoint(session: Session) -> tuple[int, bytes, str] | None:
    """``(size, root, signed note)`` of the newest checkpoint, or ``None`` for an empty log."""
    row = session.execute(select(CHECKPOINTS.c.size, CHECKPOINTS.c.root, CHECKPOINTS.c.note)
                          .order_by(CHECKPOINTS.c.size.desc()).limit(1)).first()
    return None if row is None else (int(row[0]), bytes(row[1]), str(row[2]))


def record_bytes(session: Session, seq: int) -> bytes | None:
    raw = session.execute(select(RECORDS.c.record).where(RECORDS.c.seq == seq)).scalar_one_or_none()
    return None if raw is None else bytes(raw)


def inclusion_proof(session: Session, seq: int, size: int) -> tuple[bytes, list[bytes]]:
    """``(leaf hash, RFC 9162 proof)`` of record ``seq`` in the tree of ``size``, from stored nodes."""

    def get(keys: Sequence[merkle.NodeKey]) -> Mapping[merkle.NodeKey, bytes]:
        by_level: dict[int, list[int]] = {}
        for level, idx in dict.fromkeys(keys):
            by_level.setdefault(level, []).append(idx)
        if not by_level:
            return {}
        # One (level = L AND idx IN (...)) term per level: both SQLite and PostgreSQL answer it from the
        # primary key. A row-value IN ((level, idx), ...) makes SQLite scan the whole node table.
        condition = or_(*(and_(NODES.c.level == level, NODES.c.idx.in_(idxs)) for level, idxs in by_level.items()))
        rows = session.execute(select(NODES.c.level, NODES.c.idx, NODES.c.hash).where(condition)).all()
        return {(int(level), int(idx)): bytes(digest) for level, idx, digest in rows}

    leaf = get([(0, seq)])[(0, seq)]
    return leaf, merkle.inclusion_proof(seq, size, get)


__all__ = ["inclusion_proof", "latest_checkpoint", "record_bytes"]
