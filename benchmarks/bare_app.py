"""The baseline for receipt latency: a bare FastAPI app with one trivial POST endpoint.

It reads and parses the same JSON body the ledger would get and answers 201
with a tiny JSON document — no validation, no signature check, no database.
Its latency is what the HTTP stack alone (uvicorn, Starlette, FastAPI, the
client) costs at the same offered rate on the same machine.
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse


def create_bare_app() -> FastAPI:
    app = FastAPI(title="bare", openapi_url=None, docs_url=None, redoc_url=None)

    @app.post("/v1/entries")
    async def post_entry(request: Request) -> JSONResponse:
        body = await request.json()
        return JSONResponse({"ok": True, "fields": len(body)}, status_code=201)

    @app.get("/ready")
    async def ready() -> JSONResponse:
        return JSONResponse({"ok": True})

    return app
