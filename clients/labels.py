"""Print-ready PDF sheets of part labels: a QR code and the human-readable GTIN, serial and lot.

The sheet follows a common A4 label stock of 3 × 8 labels of 70 × 37 mm
(no margins between labels). Each label carries the part's GS1 Digital Link
URI as a QR code of 30 mm including its 4-module quiet zone — above the
25 mm minimum documented for ECC level Q in docs/scan.md — drawn as vector
squares so no printer resolution blurs it, and beside it the element
strings a person can read and type: ``(01) GTIN``, ``(21) serial``,
``(10) lot``, in GS1's human-readable-interpretation style.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from reportlab.lib.pagesizes import A4
from reportlab.lib.units import mm
from reportlab.pdfgen.canvas import Canvas

from ledger.digital_link import parse_uri
from ledger.errors import InvalidInput
from ledger.qr import MIN_BORDER, matrix

COLUMNS, ROWS = 3, 8
LABEL_W, LABEL_H = 70 * mm, 37 * mm
QR_MM = 30.0
PAD = 3.5 * mm


@dataclass(frozen=True)
class Label:
    gtin: str
    serial: str
    lot: str | None
    uri: str


def label_from_uri(uri: str) -> Label:
    link = parse_uri(uri)
    return Label(link.gtin, link.serial, link.lot, uri)


def read_labels_csv(path: Path) -> list[Label]:
    """Labels from a CSV with a ``uri`` column (as written by ``commission --out``)."""
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        if reader.fieldnames is None or "uri" not in reader.fieldnames:
            raise InvalidInput(f"{path}: expected a CSV with a 'uri' column (commission --out writes one)",
                               code="invalid_field", field="uri")
        return [label_from_uri(row["uri"]) for row in reader]


def _draw_qr(canvas: Canvas, uri: str, x: float, y: float, size_mm: float) -> None:
    modules = matrix(uri, "Q")
    count = len(modules) + 2 * MIN_BORDER
    cell = size_mm * mm / count
    canvas.setFillColorRGB(0, 0, 0)
    top = y + size_mm * mm
    for r, row in enumerate(modules):
        c = 0
        while c < len(row):  # one rectangle per horizontal run of dark modules
            if not row[c]:
                c += 1
                continue
            start = c
            while c < len(row) and row[c]:
                c += 1
            canvas.rect(x + (MIN_BORDER + start) * cell, top - (MIN_BORDER + r + 1) * cell,
                        (c - start) * cell, cell, stroke=0, fill=1)


def _fit(canvas: Canvas, text: str, font: str, size: float, width: float) -> float:
    while size > 5 and canvas.stringWidth(text, font, size) > width:
        size -= 0.5
    return size


def render_sheet(labels: Sequence[Label], out: Path, *, title: str = "partsledger labels") -> int:
    """Write ``labels`` to a PDF at ``out``; return the number of pages."""
    if not labels:
        raise InvalidInput("no labels to print", code="invalid_field", field="labels")
    canvas = Canvas(str(out), pagesize=A4, pageCompression=0)  # uncompressed: text stays searchable
    canvas.setTitle(title)
    canvas.setAuthor("partsledger")
    page_w, page_h = A4
    margin_x = (page_w - COLUMNS * LABEL_W) / 2
    margin_y = (page_h - ROWS * LABEL_H) / 2
    per_page = COLUMNS * ROWS
    pages = 0
    for index, label in enumerate(labels):
        slot = index % per_page
        if slot == 0:
            if index:
                canvas.showPage()
            pages += 1
        col, row = slot % COLUMNS, slot // COLUMNS
        x = margin_x + col * LABEL_W
        y = page_h - margin_y - (row + 1) * LABEL_H
        _draw_qr(canvas, label.uri, x + PAD / 2, y + (LABEL_H - QR_MM * mm) / 2, QR_MM)
        text_x = x + PAD / 2 + QR_MM * mm + 1 * mm
        text_w = LABEL_W - (text_x - x) - PAD / 2
        lines = [("(01)", label.gtin), ("(21)", label.serial)] + ([("(10)", label.lot)] if label.lot else [])
        line_y = y + LABEL_H - 9 * mm
        for ai, value in lines:
            canvas.setFont("Helvetica", 6)
            canvas.drawString(text_x, line_y + 3.2 * mm, ai)
            size = _fit(canvas, value, "Courier-Bold", 8.5, text_w)
            canvas.setFont("Courier-Bold", size)
            canvas.drawString(text_x, line_y, value)
            line_y -= 8.5 * mm
    canvas.save()
    return pages


def render_png(label: Label, out: Path, *, scale: int = 8) -> None:
    """One label as a PNG (QR plus the human-readable lines), for screens, thermal printers and tests."""
    import io

    from PIL import Image, ImageDraw, ImageFont

    from ledger.qr import render_png as qr_png

    code = Image.open(io.BytesIO(qr_png(label.uri, scale=scale).content)).convert("RGB")
    lines = [f"(01) {label.gtin}", f"(21) {label.serial}"] + ([f"(10) {label.lot}"] if label.lot else [])
    font = ImageFont.load_default(size=max(12, scale * 3))
    text_h = (scale * 4) * len(lines) + scale * 2
    sheet = Image.new("RGB", (code.width, code.height + text_h), "white")
    sheet.paste(code, (0, 0))
    draw = ImageDraw.Draw(sheet)
    for i, line in enumerate(lines):
        draw.text((scale * 4, code.height + i * scale * 4), line, fill="black", font=font)
    sheet.save(out, format="PNG")


def write_parts_csv(path: Path, rows: Iterable[dict[str, object]]) -> None:
    fields = ["gtin", "serial", "lot", "uri", "seq"]
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields, extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow(row)


__all__ = ["Label", "label_from_uri", "read_labels_csv", "render_png", "render_sheet", "write_parts_csv"]
