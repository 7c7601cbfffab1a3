"""QR codes for part labels: SVG for print, PNG for screens and thermal printers.

**Error correction: Q by default, H on request.** Part labels live on oily,
scuffed, sometimes half-peeled surfaces in workshops. Level Q restores up to
~25 % of damaged codewords, H ~30 %. A part's URI (~190 bytes with the
86-character AI 8030 signature) needs version 12 (65×65 modules) at Q but
version 14 (73×73) at H, so at the same label width Q's modules are 12 %
larger. Bigger modules survive blur, low-resolution printers and cheap phone
cameras better than the last 5 % of redundancy helps against grease, so Q is
the default; ``ecc="H"`` is there for labels that are known to get abraded.
L and M are refused: they are for clean paper, not engine bays.

**Sizes.** The QR symbol needs a quiet zone of at least 4 modules (ISO/IEC
18004 §6.3.8); ``border`` is never allowed below 4. SVG output is sized in
millimetres (``size_mm``, including the quiet zone) with a module-unit
viewBox, so it prints exactly; PNG output has ``scale`` pixels per module and
carries its ``dpi`` in the file. The smallest size documented for print
(docs/scan.md) is 25 mm including the quiet zone at Q (≈ 0.34 mm modules)
and 30 mm at H; the tests decode both with zxing-cpp after blur, noise and
downscaling.

**Caching.** Rendering is a pure function of (URI, format, size, ECC), so
results are memoised by those arguments and carry a strong ETag (SHA-256 of
the bytes); the API serves them as immutable.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

import qrcode
import qrcode.constants
from qrcode.image.pil import PilImage

from ledger.errors import InvalidInput

Ecc = Literal["Q", "H"]
_ECC_LEVELS: dict[str, int] = {
    "Q": qrcode.constants.ERROR_CORRECT_Q,
    "H": qrcode.constants.ERROR_CORRECT_H,
}
MIN_BORDER = 4
MAX_BORDER = 16
MIN_SIZE_MM = 25.0
#: The smallest label width (quiet zone included) documented for print at 300 dpi, per ECC level.
#: At H the symbol is two versions larger, so the same module size needs 30 mm.
MIN_PRINT_MM: dict[str, float] = {"Q": 25.0, "H": 30.0}
MAX_SIZE_MM = 300.0
MIN_SCALE = 2
MAX_SCALE = 40
SVG_MEDIA_TYPE = "image/svg+xml"
PNG_MEDIA_TYPE = "image/png"


@dataclass(frozen=True)
class Rendered:
    """Rendered label bytes with their media type and strong ETag."""

    content: bytes
    media_type: str
    etag: str
    modules: int  # symbol width in modules, quiet zone excluded


def _check(ecc: str, border: int) -> None:
    if ecc not in _ECC_LEVELS:
        raise InvalidInput("ecc: expected Q or H (L and M are too weak for workshop labels)", code="invalid_field",
                           field="ecc")
    if not MIN_BORDER <= border <= MAX_BORDER:
        raise InvalidInput(f"border: the quiet zone is {MIN_BORDER}–{MAX_BORDER} modules", code="invalid_field",
                           field="border")


def _code(data: str, ecc: str) -> qrcode.QRCode:
    if not data or len(data) > 2000:
        raise InvalidInput("QR payload must be 1–2000 characters", code="invalid_field", field="data")
    code = qrcode.QRCode(error_correction=_ECC_LEVELS[ecc], border=0, box_size=1)
    code.add_data(data.encode("utf-8"))
    code.make(fit=True)
    return code


def matrix(data: str, ecc: Ecc = "Q") -> list[list[bool]]:
    """The QR module matrix for ``data`` (True = dark), without quiet zone."""
    _check(ecc, MIN_BORDER)
    return [list(row) for row in _code(data, ecc).get_matrix()]


def _etag(content: bytes) -> str:
    return '"' + hashlib.sha256(content).hexdigest()[:32] + '"'


def _svg(rows: list[list[bool]], size_mm: float, border: int) -> bytes:
    n = len(rows)
    total = n + 2 * border
    runs: list[str] = []
    for y, row in enumerate(rows):
        x = 0
        while x < n:
            if row[x]:
                start = x
                while x < n and row[x]:
                    x += 1
                runs.append(f"M{start + border} {y + border}h{x - start}v1h-{x - start}z")
            else:
                x += 1
    size = f"{size_mm:g}mm"
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{size}" height="{size}" viewBox="0 0 {total} {total}" '
        'shape-rendering="crispEdges">'
        f'<rect width="{total}" height="{total}" fill="#fff"/>'
        f'<path fill="#000" d="{"".join(runs)}"/></svg>\n'
    ).encode("ascii")


@lru_cache(maxsize=2048)
def render_svg(data: str, *, size_mm: float = 30.0, border: int = MIN_BORDER, ecc: Ecc = "Q") -> Rendered:
    """An SVG label ``size_mm`` wide (quiet zone included), one path of horizontal runs of dark modules."""
    _check(ecc, border)
    if not MIN_SIZE_MM <= size_mm <= MAX_SIZE_MM:
        raise InvalidInput(f"size_mm: expected {MIN_SIZE_MM:g}–{MAX_SIZE_MM:g} mm", code="invalid_field",
                           field="size_mm")
    rows = matrix(data, ecc)
    content = _svg(rows, size_mm, border)
    return Rendered(content=content, media_type=SVG_MEDIA_TYPE, etag=_etag(content), modules=len(rows))


@lru_cache(maxsize=2048)
def render_png(data: str, *, scale: int = 10, border: int = MIN_BORDER, ecc: Ecc = "Q", dpi: int = 300) -> Rendered:
    """A 1-bit PNG with ``scale`` pixels per module and ``dpi`` recorded for printing."""
    _check(ecc, border)
    if not MIN_SCALE <= scale <= MAX_SCALE:
        raise InvalidInput(f"scale: expected {MIN_SCALE}–{MAX_SCALE} pixels per module", code="invalid_field",
                           field="scale")
    if not 72 <= dpi <= 2400:
        raise InvalidInput("dpi: expected 72–2400", code="invalid_field", field="dpi")
    code = _code(data, ecc)
    code.box_size = scale
    code.border = border
    image = code.make_image(image_factory=PilImage)
    buffer = io.BytesIO()
    image.get_image().save(buffer, format="PNG", dpi=(dpi, dpi), optimize=True)
    content = buffer.getvalue()
    return Rendered(content=content, media_type=PNG_MEDIA_TYPE, etag=_etag(content), modules=code.modules_count)


def scale_for_print(modules: int, size_mm: float, dpi: int, border: int = MIN_BORDER) -> int:
    """Whole pixels per module so that the PNG prints at most ``size_mm`` wide at ``dpi``."""
    pixels = size_mm / 25.4 * dpi
    return max(MIN_SCALE, int(pixels // (modules + 2 * border)))


__all__ = [
    "MIN_BORDER",
    "MIN_PRINT_MM",
    "MIN_SIZE_MM",
    "PNG_MEDIA_TYPE",
    "SVG_MEDIA_TYPE",
    "Ecc",
    "Rendered",
    "matrix",
    "render_png",
    "render_svg",
    "scale_for_print",
]
