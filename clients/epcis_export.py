"""``partsledger export epcis``: a ledger's history as one GS1 EPCIS 2.0 EPCISDocument file.

The export is computed *here*, from records the SDK has checked against the
log's signed checkpoint (canonical bytes, leaf hashes, inclusion in the
checkpoint's tree), with the same mapping the server uses
(:mod:`ledger.epcis`). The file therefore does not depend on trusting the
server's own EPCIS view, and every event in it carries its actor's signature
(``pl:signedEntry``), so it can be captured again into a ledger with the same
origin and orgs (``POST /v1/epcis/capture``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer

from clients.cli_common import (
    DEFAULT_HOME,
    DEFAULT_URL,
    HomeOption,
    JsonOption,
    PinOption,
    UrlOption,
    emit_json,
    open_client,
    out,
    user_errors,
)
from ledger.entries import Record
from ledger.epcis import vocab
from ledger.epcis.export import EventIndex, document


@dataclass(frozen=True)
class ExportSummary:
    path: Path
    records: int
    events: int
    corrected: int

    def to_json(self) -> dict[str, Any]:
        return {"ok": True, "path": str(self.path), "records": self.records, "events": self.events,
                "corrected": self.corrected}


def export_document(records: Iterable[Record], *, resolver: str = vocab.GS1_RESOLVER) -> tuple[dict[str, Any], int]:
    """The EPCISDocument of ``records`` (from genesis, in order) and how many records were read."""
    index = EventIndex(resolver=resolver)
    index.feed(records)
    return document(item.event for item in index.events), index.size


def write_document(doc: dict[str, Any], path: Path) -> None:
    """Write atomically: a half-written export never replaces a good one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", encoding="utf-8") as handle:
        json.dump(doc, handle, ensure_ascii=False, indent=2)
        handle.write("\n")
        handle.flush()
        os.fsync(handle.fileno())
    tmp.replace(path)


export_app = typer.Typer(help="Export the ledger in other formats.", no_args_is_help=True)


@export_app.command("epcis")
@user_errors
def export_epcis(
    output: Annotated[Path, typer.Option("--output", "-o", help="EPCISDocument file to write (JSON-LD)")] = Path(
        "partsledger-epcis.jsonld"),
    url: UrlOption = DEFAULT_URL,
    home: HomeOption = DEFAULT_HOME,
    log_key: PinOption = None,
    resolver: Annotated[str, typer.Option(help="Digital Link resolver for part URIs")] = vocab.GS1_RESOLVER,
    json_output: JsonOption = False,
) -> None:
    """Write every event with a supply-chain meaning as one EPCIS 2.0 document (checked records only)."""
    with open_client(url, home, log_key) as client:
        within = client.checkpoint()
        doc, count = export_document((served.record for served in client.iter_records(within=within)),
                                     resolver=resolver)
    write_document(doc, output)
    events = doc["epcisBody"]["eventList"]
    summary = ExportSummary(output, count, len(events), sum(1 for e in events if "errorDeclaration" in e))
    if json_output:
        emit_json(summary.to_json())
        return
    out.print(f"wrote {summary.events} EPCIS events from {summary.records} records to {output}"
              + (f" ({summary.corrected} with error declarations)" if summary.corrected else ""))


__all__ = ["ExportSummary", "export_app", "export_document", "write_document"]
