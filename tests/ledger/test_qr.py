"""QR labels decode back to exactly the URI with zxing-cpp — at the smallest print size, degraded too."""

from __future__ import annotations

import io
import random

import pytest
import resvg_py
import zxingcpp
from PIL import Image, ImageFilter

from ledger.digital_link import build_uri, sign_part_id
from ledger.errors import InvalidInput
from ledger.keys import KeyPair
from ledger.qr import MIN_PRINT_MM, Ecc, matrix, render_png, render_svg, scale_for_print

QR_ONLY = zxingcpp.BarcodeFormats(zxingcpp.BarcodeFormat.QRCode)  # a label is a QR code, never a 1-D one

KEY = KeyPair.from_seed(b"\x07" * 32)
GTIN = "09506000134352"
# A worst case for size: a 20-character serial full of characters that need percent-encoding, a lot, the signature.
HARD_SERIAL = "AB/%&+?:;=-_0123XYZz"
URIS = [
    build_uri("https://scan.partsledger.example", GTIN, "Q7K2M9X4P1R8T6W3", lot="LOT-2026-11-A",
              sig=sign_part_id(KEY, GTIN, "Q7K2M9X4P1R8T6W3")),
    build_uri("https://scan.partsledger.example", GTIN, HARD_SERIAL, lot="L/2026/11",
              sig=sign_part_id(KEY, GTIN, HARD_SERIAL)),
]
DPI = 300


def _decode(image: Image.Image) -> list[str]:
    return [r.text for r in zxingcpp.read_barcodes(image, formats=QR_ONLY)]


def _degrade(image: Image.Image, seed: int) -> Image.Image:
    """Blur (ink spread), greasy smudge noise, then a 2× downscale (a far-away phone)."""
    rng = random.Random(seed)
    grey = image.convert("L").filter(ImageFilter.GaussianBlur(0.9))
    pixels = grey.load()
    assert pixels is not None
    width, height = grey.size
    for _ in range(width * height // 12):  # ~8 % of pixels disturbed by ±90 grey levels
        x, y = rng.randrange(width), rng.randrange(height)
        value = pixels[x, y]
        assert isinstance(value, int)
        pixels[x, y] = max(0, min(255, value + rng.choice((-90, 90))))
    return grey.resize((width // 2, height // 2), Image.Resampling.BILINEAR)


@pytest.mark.parametrize("ecc", ["Q", "H"])
@pytest.mark.parametrize("uri", URIS)
def test_png_at_smallest_print_size_decodes_after_degradation(uri: str, ecc: Ecc) -> None:
    modules = len(matrix(uri, ecc))
    scale = scale_for_print(modules, MIN_PRINT_MM[ecc], DPI)
    rendered = render_png(uri, scale=scale, ecc=ecc, dpi=DPI)
    image = Image.open(io.BytesIO(rendered.content))
    width_mm = image.size[0] / DPI * 25.4
    assert width_mm <= MIN_PRINT_MM[ecc]
    assert round(image.info["dpi"][0]) == DPI
    assert _decode(image) == [uri]
    assert _decode(_degrade(image, seed=1)) == [uri]


@pytest.mark.parametrize("ecc", ["Q", "H"])
@pytest.mark.parametrize("uri", URIS)
def test_svg_at_smallest_print_size_decodes_after_degradation(uri: str, ecc: Ecc) -> None:
    size_mm = MIN_PRINT_MM[ecc]
    rendered = render_svg(uri, size_mm=size_mm, ecc=ecc)
    assert rendered.media_type == "image/svg+xml"
    assert f'width="{size_mm:g}mm"'.encode() in rendered.content
    png = resvg_py.svg_to_bytes(svg_string=rendered.content.decode(), dpi=DPI)
    image = Image.open(io.BytesIO(bytes(png)))
    assert abs(image.size[0] - size_mm / 25.4 * DPI) <= 2  # resvg honours the millimetre size
    flat = Image.new("RGB", image.size, "white")
    flat.paste(image, mask=image.getchannel("A") if image.mode == "RGBA" else None)
    assert _decode(flat) == [uri]
    assert _decode(_degrade(flat, seed=2)) == [uri]


def test_damage_beyond_the_quiet_zone_rule_is_refused() -> None:
    with pytest.raises(InvalidInput) as info:
        render_svg(URIS[0], border=3)
    assert info.value.field == "border"
    with pytest.raises(InvalidInput) as info:
        render_png(URIS[0], ecc="L")
    assert info.value.field == "ecc"
    with pytest.raises(InvalidInput):
        render_svg(URIS[0], size_mm=10)
    with pytest.raises(InvalidInput):
        render_png(URIS[0], scale=1)


def test_h_survives_more_damage_than_q_needs_and_both_survive_a_smudge() -> None:
    """Blot out a block of modules in the data area: Q and H both recover it."""
    for ecc in ("Q", "H"):
        rendered = render_png(URIS[0], scale=6, ecc=ecc)
        image = Image.open(io.BytesIO(rendered.content)).convert("L")
        size = image.size[0]
        smudge = Image.new("L", (size // 6, size // 6), 0)
        image.paste(smudge, (size // 2, size // 2 + size // 10))
        assert _decode(image) == [URIS[0]], ecc


def test_rendering_is_cached_by_content_with_a_strong_etag() -> None:
    first = render_png(URIS[0], scale=5)
    assert render_png(URIS[0], scale=5) is first  # memoised: no re-render
    again = render_svg(URIS[0])
    assert render_svg(URIS[0]).etag == again.etag
    assert render_svg(URIS[1]).etag != again.etag
    assert render_svg(URIS[0], size_mm=40).etag != again.etag
    assert first.etag.startswith('"') and len(first.etag) == 34
