"""Part commands: ``commission``, ``labels``, ``scan``, ``bundle`` and the generic ``submit``."""

from __future__ import annotations

import csv
import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from clients.cli_common import (
    DEFAULT_HOME,
    DEFAULT_URL,
    EXIT_BAD,
    HomeOption,
    JsonOption,
    KeyOption,
    PinOption,
    UrlOption,
    console,
    emit_json,
    open_client,
    out,
    print_receipt,
    signing_key,
    url_slug,
    user_errors,
)
from clients.journal import Journal
from ledger.entries import SignedEntry, make_signed_entry
from ledger.errors import InvalidInput
from ledger.keys import KeyPair

# GS1 parsing (biip), PDF (reportlab) and QR decoding (zxing-cpp) are imported by the commands that use
# them: together they would triple the start-up time of every other command.

parts_app = typer.Typer(help="Parts.", no_args_is_help=True)


def progress_bar(total_hint: int | None, *, quiet: bool) -> Any:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    return Progress("[progress.description]{task.description}", BarColumn(), MofNCompleteColumn(),
                    TimeRemainingColumn(), console=console, transient=True,
                    disable=quiet or not console.is_terminal)


# --------------------------------------------------------------------------- commission
COMMISSION_FIELDS = ("gtin", "serial", "lot", "category", "brand", "model", "warranty_months", "site")


def read_commission_csv(path: Path) -> list[dict[str, str]]:
    """Rows of ``gtin`` plus optional columns of :data:`COMMISSION_FIELDS`.

    An empty serial gets a fresh random one (≥ 16 characters of 0-9A-Z) when the entry is signed.
    """
    from ledger.gs1 import validate_gtin, validate_lot, validate_serial

    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            fields = [f.strip().lower() for f in reader.fieldnames or []]
            if "gtin" not in fields:
                optional = ", ".join(COMMISSION_FIELDS[1:])
                raise InvalidInput(f"{path}: the CSV needs a 'gtin' column (optional: {optional})",
                                   code="invalid_field", field="gtin")
            unknown = sorted(set(fields) - set(COMMISSION_FIELDS))
            if unknown:
                raise InvalidInput(f"{path}: unknown column(s) {', '.join(unknown)}; expected "
                                   f"{', '.join(COMMISSION_FIELDS)}", code="invalid_field", field=unknown[0])
            rows = []
            for number, raw in enumerate(reader, start=2):
                row = {k.strip().lower(): (v or "").strip() for k, v in raw.items() if k is not None}
                try:
                    validate_gtin(row["gtin"])
                    if row.get("serial"):
                        validate_serial(row["serial"])
                    if row.get("lot"):
                        validate_lot(row["lot"])
                except InvalidInput as exc:
                    raise InvalidInput(f"{path}, line {number}: {exc.message}", code=exc.code,
                                       field=exc.field) from None
                rows.append(row)
    except OSError as exc:
        raise InvalidInput(f"cannot read {path}: {exc.strerror}", code="invalid_field") from None
    if not rows:
        raise InvalidInput(f"{path}: no rows to commission", code="invalid_field")
    return rows


def commission_body(row: dict[str, str], category: str) -> dict[str, Any]:
    """The ``part.commission`` body for one CSV row (``category`` when the row names none)."""
    from ledger.gs1 import new_serial

    body: dict[str, Any] = {"gtin": row["gtin"], "serial": row.get("serial") or new_serial(),
                            "category": row.get("category") or category}
    for name in ("lot", "brand", "model", "site"):
        if row.get(name):
            body[name] = row[name]
    if row.get("warranty_months"):
        try:
            body["warranty_months"] = int(row["warranty_months"])
        except ValueError:
            raise InvalidInput(f"warranty_months {row['warranty_months']!r} is not a whole number",
                               code="invalid_field", field="warranty_months") from None
    return body


def signed_label(pair: KeyPair, body: dict[str, Any]) -> dict[str, Any]:
    """``body`` with ``part_sig``: the commissioning key's AI 8030 signature over ``01<gtin>21<serial>``.

    The server records it and puts it into the part's QR codes, so labels it renders verify offline.
    """
    from ledger.digital_link import sign_part_id

    return {**body, "part_sig": sign_part_id(pair, body["gtin"], body["serial"])}


@parts_app.command("commission")
@user_errors
def commission(
    csv_file: Annotated[Path, typer.Option("--csv", help="CSV: gtin and optional serial, lot, category, brand, "
                                                         "model, warranty_months, site")],
    key: KeyOption,
    category: Annotated[str, typer.Option(help="Part category for rows without one")] = "other",
    out_csv: Annotated[Path | None, typer.Option("--out", help="Write gtin,serial,lot,uri,seq here")] = None,
    resolver: Annotated[str | None, typer.Option(help="Resolver base for label URIs (default: --url)")] = None,
    batch: Annotated[int, typer.Option(min=1, max=1000, help="Entries per request")] = 200,
    url: UrlOption = DEFAULT_URL, home: HomeOption = DEFAULT_HOME, log_key: PinOption = None,
    json_output: JsonOption = False,
) -> None:
    """Commission parts from a CSV: sign locally, journal, send in batches; re-run to resume.

    The label URIs written by ``--out`` carry the AI 8030 part-id signature, made here with the same key
    (Ed25519 is deterministic, so a resumed run prints the same labels).
    """
    from clients.labels import write_parts_csv
    from ledger.digital_link import build_uri, sign_part_id

    digest = hashlib.sha256(csv_file.read_bytes()).hexdigest()[:16]
    journal_path = home / "journal" / f"commission-{url_slug(url)}-{key}-{digest}.jsonl"
    pair, org = signing_key(home, key)
    with open_client(url, home, log_key) as client:
        if journal_path.exists():
            journal = Journal.load(journal_path)
            resumed = journal.done() % len(journal.entries)  # a complete journal is re-sent from the start
        else:
            rows = read_commission_csv(csv_file)
            entries: list[SignedEntry] = [make_signed_entry(pair, origin=client.origin, type="part.commission",
                                                            org=org, body=signed_label(pair, commission_body(row,
                                                                                                             category)))
                                          for row in rows]
            journal = Journal.create(journal_path, {"kind": "commission", "url": url, "csv": str(csv_file),
                                                    "org": org}, entries)
            resumed = 0
        with progress_bar(len(journal.entries), quiet=json_output) as bar:
            task = bar.add_task("commissioning", total=len(journal.entries), completed=resumed)
            result = journal.send(client, batch=batch,
                                  progress=lambda done, total: bar.update(task, completed=done))
    base = resolver or url
    seqs = {r.entry_id: r.seq for r in result.receipts}
    parts = [{"gtin": e.entry.body["gtin"], "serial": e.entry.body["serial"], "lot": e.entry.body.get("lot"),
              "uri": build_uri(base, e.entry.body["gtin"], e.entry.body["serial"], lot=e.entry.body.get("lot"),
                               sig=e.entry.body.get("part_sig")
                               or sign_part_id(pair, e.entry.body["gtin"], e.entry.body["serial"])),
              "seq": seqs.get(e.entry_id)} for e in journal.entries]
    if out_csv is not None:
        write_parts_csv(out_csv, parts)
    summary = {"ok": True, "parts": len(journal.entries), "resumed_at": resumed, "sent": result.sent,
               "appended": result.appended, "already_in_log": result.duplicates, "journal": str(journal_path),
               "out": str(out_csv) if out_csv else None}
    if json_output:
        emit_json(summary)
        return
    out.print(f"commissioned {len(journal.entries)} parts as {org}: {result.appended} appended now, "
              f"{result.duplicates} already in the log" + (f", resumed at {resumed}" if resumed else "")
              + (f"; labels data in {out_csv}" if out_csv else ""))


# --------------------------------------------------------------------------- labels
@parts_app.command("labels")
@user_errors
def labels(
    csv_file: Annotated[Path, typer.Option("--csv", help="CSV with a 'uri' column (commission --out)")],
    out_file: Annotated[Path, typer.Option("--out", help="PDF file, or a directory with --png")],
    png: Annotated[bool, typer.Option("--png", help="One PNG per label instead of a PDF sheet")] = False,
    json_output: JsonOption = False,
) -> None:
    """Print-ready PDF sheet (A4, 3×8 labels of 70×37 mm) of QR labels with GTIN/serial/lot text."""
    from clients.labels import read_labels_csv, render_png, render_sheet

    items = read_labels_csv(csv_file)
    if png:
        out_file.mkdir(parents=True, exist_ok=True)
        files = []
        for label in items:
            target = out_file / f"{label.gtin}-{label.serial}.png"
            render_png(label, target)
            files.append(str(target))
        summary: dict[str, Any] = {"ok": True, "labels": len(items), "files": files}
    else:
        pages = render_sheet(items, out_file)
        summary = {"ok": True, "labels": len(items), "pages": pages, "file": str(out_file)}
    if json_output:
        emit_json(summary)
    else:
        out.print(f"{len(items)} labels written to {out_file}")


# --------------------------------------------------------------------------- scan
def decode_image(path: Path) -> str:
    """The text of the QR code in an image file (zxing-cpp)."""
    import zxingcpp
    from PIL import Image, UnidentifiedImageError

    try:
        image = Image.open(path)
        image.load()
    except (OSError, UnidentifiedImageError):
        raise InvalidInput(f"{path} is not an image file", code="invalid_field", field="image") from None
    # QR codes only: a label's module pattern can also read as a short 1-D code (ITF) by accident
    qr_only = zxingcpp.BarcodeFormats(zxingcpp.BarcodeFormat.QRCode)
    found = [r.text for r in zxingcpp.read_barcodes(image, formats=qr_only) if r.text]
    if not found:
        raise InvalidInput(f"no QR code found in {path}", code="invalid_uri", field="image")
    return str(found[0])


def _show_verdict(data: dict[str, Any], uri: str) -> None:
    colour = {"genuine": "green", "recalled": "yellow", "retired": "yellow", "suspect": "red"}.get(
        str(data.get("verdict")), "white")
    part = data.get("part") or {}
    out.print(f"[bold {colour}]{str(data.get('verdict')).upper()}[/]  {part.get('gtin')} / {part.get('serial')}",
              markup=True)
    for reason in data.get("reasons") or []:
        out.print(f"  - {reason.get('message') or reason.get('code')}")
    if data.get("state"):
        out.print(f"  state: {data['state']}")
    auth = data.get("authorization")
    if auth:
        out.print(f"  your workshop: {auth.get('status')} — {auth.get('message')}")
    if data.get("proof_checked"):
        proof = data["proof"]
        out.print(f"  proof: record {proof['seq']} included in the signed checkpoint of {proof['tree_size']} records")
    if data.get("bundle"):
        b = data["bundle"]
        out.print(f"  offline: trust bundle v{b.get('version')}, {b.get('age_seconds')} s old"
                  + (" (EXPIRED)" if b.get("expired") else ""))


@parts_app.command("scan")
@user_errors
def scan(
    target: Annotated[str, typer.Argument(help="An image file with a QR label, or a Digital Link URI")],
    offline: Annotated[Path | None, typer.Option("--offline", help="Judge from this trust bundle, no network")] = None,
    workshop: Annotated[str | None, typer.Option(help="Your workshop's org id (to learn your authorization)")] = None,
    activity: Annotated[str, typer.Option(help="Activity to check authorization for")] = "install",
    url: UrlOption = DEFAULT_URL, home: HomeOption = DEFAULT_HOME, log_key: PinOption = None,
    json_output: JsonOption = False,
) -> None:
    """Decode a QR label (or take a URI) and show the verdict; exit 1 unless the part is genuine."""
    path = Path(target)
    uri = decode_image(path) if "://" not in target and path.exists() else target
    if offline is not None:
        data = _offline(uri, offline, home, log_key, workshop, activity)
    else:
        with open_client(url, home, log_key) as client:
            data = client.verdict(uri, workshop=workshop, activity=activity)
    data["uri"] = uri
    if json_output:
        emit_json(data)
    else:
        _show_verdict(data, uri)
    if data.get("verdict") != "genuine":
        raise typer.Exit(EXIT_BAD)


def _offline(uri: str, bundle_path: Path, home: Path, pin: str | None, workshop: str | None,
             activity: str) -> dict[str, Any]:
    from clients.witness import CheckpointStore
    from ledger.trust_bundle import offline_verdict

    try:
        envelope = json.loads(bundle_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InvalidInput(f"cannot read trust bundle {bundle_path}: {exc}", code="invalid_field") from None
    origin = str((envelope.get("bundle") or {}).get("origin", "")) if isinstance(envelope, dict) else ""
    memory = CheckpointStore(home / "checkpoints.json").memory(origin)
    vkey = pin or (memory.verifier_key if memory else None)
    if vkey is None:
        raise InvalidInput(f"no trusted key for log {origin!r}: pass --log-key, or fetch the bundle with "
                           "'partsledger bundle' first", code="unknown_key", field="log_key")
    result = offline_verdict(uri, envelope, vkey, now=datetime.now(UTC), workshop=workshop, activity=activity)
    return result.to_json()


@parts_app.command("bundle")
@user_errors
def bundle(
    out_file: Annotated[Path, typer.Option("--out", help="Where to save the trust bundle")],
    url: UrlOption = DEFAULT_URL, home: HomeOption = DEFAULT_HOME, log_key: PinOption = None,
    json_output: JsonOption = False,
) -> None:
    """Download the signed offline trust bundle (verified against the trusted log key) for `scan --offline`."""
    with open_client(url, home, log_key) as client:
        envelope = client.trust_bundle()
    out_file.write_text(json.dumps(envelope, ensure_ascii=False, indent=1), encoding="utf-8")
    inner = envelope["bundle"]
    summary = {"ok": True, "file": str(out_file), "version": inner["version"], "expires_at": inner["expires_at"],
               "orgs": len(inner["orgs"]), "grants": len(inner["grants"]), "recalls": len(inner["recalls"])}
    if json_output:
        emit_json(summary)
    else:
        out.print(f"trust bundle v{inner['version']} saved to {out_file}; valid until {inner['expires_at']}")


# --------------------------------------------------------------------------- any event
@parts_app.command("submit")
@user_errors
def submit(
    event_type: Annotated[str, typer.Argument(help="Event type, e.g. part.inspect")],
    body: Annotated[str, typer.Option(help="The body as a JSON object")],
    key: KeyOption,
    url: UrlOption = DEFAULT_URL, home: HomeOption = DEFAULT_HOME, log_key: PinOption = None,
    json_output: JsonOption = False,
) -> None:
    """Sign and append any event (for types without a dedicated command)."""
    try:
        parsed = json.loads(body)
    except ValueError:
        raise InvalidInput("--body: not valid JSON", code="invalid_json", field="body") from None
    if not isinstance(parsed, dict):
        raise InvalidInput("--body: expected a JSON object", code="invalid_body", field="body")
    pair, org = signing_key(home, key)
    with open_client(url, home, log_key) as client:
        receipt = client.submit(pair, org=org, type=event_type, body=parsed)
    print_receipt(receipt.to_json(), json_output, event_type)


__all__ = ["parts_app"]
