"""``GET /scan``: the browser scanner page (static HTML + JS from ``clients/static``; no CDN).

The page lives with the clients (it is one); this router only serves its files. Nothing here
reads the ledger: the page talks to the public API like any other client.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse, Response

router = APIRouter(tags=["scanner"])

STATIC = Path(__file__).resolve().parents[2] / "clients" / "static"
_ASSETS = {
    "scan.js": "text/javascript; charset=utf-8",
    "scan.css": "text/css; charset=utf-8",
    "vendor/jsQR.js": "text/javascript; charset=utf-8",
}
_HEADERS = {"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff",
            "Content-Security-Policy": "default-src 'self'; img-src 'self' data: blob:; media-src 'self' blob:; "
                                       "style-src 'self'; script-src 'self'; connect-src 'self'"}


@router.get("/scan", response_class=FileResponse, summary="The browser scanner page",
            responses={200: {"content": {"text/html": {}}, "description": "HTML page"}})
def scanner_page() -> Response:
    return FileResponse(STATIC / "scan.html", media_type="text/html; charset=utf-8", headers=_HEADERS)


@router.get("/scan/assets/{name:path}", include_in_schema=False)
def scanner_asset(name: str) -> Response:
    media = _ASSETS.get(name)
    if media is None:
        return Response(status_code=404)
    return FileResponse(STATIC / name, media_type=media, headers=_HEADERS)


__all__ = ["router"]
