"""The GS1 reference files (read from shared/, never copied) and a helper around GS1's reference hash generator."""

from __future__ import annotations

import json
import logging
import warnings
from pathlib import Path
from typing import Any

from ledger.epcis.validate import standards_dir

STANDARDS = standards_dir()
EXAMPLES = sorted((STANDARDS / "examples").glob("*.jsonld"))
INVALID = sorted((STANDARDS / "invalid").glob("*.json"))
SCHEMA = STANDARDS / "EPCIS-JSON-Schema.json"


def load(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def reference_hashes(document: dict[str, Any]) -> list[str]:
    """eventIDs of ``document``'s events as computed by GS1's ``epcis-event-hash-generator`` (test dependency)."""
    from epcis_event_hash_generator import hash_generator

    return list(hash_generator.calculate_hashes_from_pre_hashes(reference_pre_hashes(document)))


def reference_pre_hashes(document: dict[str, Any]) -> list[str]:
    from epcis_event_hash_generator import hash_generator, json_to_py

    logging.getLogger("root").setLevel(logging.CRITICAL)  # it logs every event at INFO
    with warnings.catch_warnings():  # its context loader uses the deprecated importlib.resources.open_text
        warnings.simplefilter("ignore", DeprecationWarning)
        events = json_to_py.event_list_from_epcis_document_json(json.loads(json.dumps(document)))
    prehashes = list(hash_generator.derive_prehashes_from_events(events))
    assert len(prehashes) == len(events[2]), "the reference generator skipped an event it could not parse"
    return prehashes
