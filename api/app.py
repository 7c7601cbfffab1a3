"""The FastAPI app factory. No import-time singletons: everything hangs off ``create_app``."""

from __future__ import annotations

import asyncio
import gc
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from api.problems import Problem, install_problem_handlers
from api.routes import epcis as epcis_routes
from api.routes import log as log_routes
from api.routes import parts as parts_routes
from api.routes import scan as scan_routes
from api.routes import scanner_page
from api.routes import vehicles as vehicle_routes
from api.routes.vehicles import VinIn
from api.scan_schemas import LinksetOut
from api.schemas import BatchIn, EntryIn
from api.settings import ApiSettings
from ledger.append_process import AppendProcess
from ledger.log import Ledger
from ledger.resolve import VerdictCache
from ledger.service import open_ledger
from ledger.sigpool import start_shared_pool
from ledger.storage.proof_reads import warm_node_cache

DESCRIPTION = """
partsledger is an append-only, hash-chained, Ed25519-signed ledger of automotive
aftermarket parts. Every accepted write returns a receipt (a signed C2SP
checkpoint and an RFC 9162 inclusion proof); every error is an RFC 9457
problem document with a stable `code`.
"""


_startup_frozen = threading.Lock()
#: The collector's generation thresholds in a serving process (CPython's default is 700, 10, 10).
SERVER_GC_THRESHOLDS = (50_000, 20, 100)


def freeze_startup_objects() -> None:
    """Move everything alive now out of the garbage collector's reach, once per process.

    Modules, schemas, the app and the open ledger live as long as the
    process; left tracked, every full collection walks all of them (≈150,000
    objects, ~100 ms: a latency spike every few thousand requests under load).
    Only the first call in a process freezes (tests build many apps).

    It also makes the young generations collect less often (every 50,000
    allocations instead of 700). A collection costs about as much as the
    objects alive at that moment — the requests in flight — so under load the
    default thresholds spent ~14 % of the server's CPU re-examining the same
    in-flight objects (measured with 1,000 appends/s offered: 1.3 s of
    collections in 10 s); with these, 0.4 s. Cyclic garbage still goes, a
    little later.
    """
    if _startup_frozen.acquire(blocking=False):
        gc.collect()
        gc.freeze()
        gc.set_threshold(*SERVER_GC_THRESHOLDS)


def create_app(settings: ApiSettings | None = None, *, ledger: Ledger | None = None) -> FastAPI:
    """Build the ASGI app. Pass ``ledger`` to serve an already-open ledger (tests, benchmarks)."""
    settings = settings or ApiSettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if getattr(app.state, "ledger", None) is None:
            app.state.ledger = open_ledger(settings.ledger)
        appender = None
        if settings.append_process:
            appender = app.state.appender = AppendProcess(settings.ledger, verifier_key=app.state.ledger.verifier_key)
            await appender.start()
        start_shared_pool()  # the batch signature helper, so the first large batch does not wait for it
        # The scans' verdict cache, its node cache filled with the upper levels every proof shares.
        cache = app.state.verdict_cache = VerdictCache()
        await asyncio.to_thread(warm_node_cache, app.state.ledger.db, cache.nodes)
        freeze_startup_objects()
        try:
            yield
        except asyncio.CancelledError:
            # A second Ctrl-C makes uvicorn stop at once, without the shutdown event; the event loop then
            # cancels this task while it waits for that event. The server is going away either way: clean up
            # as a shutdown does (below), and end quietly instead of reporting the cancellation as a failed
            # shutdown with its traceback.
            pass
        finally:
            if appender is not None:
                app.state.appender = None
                await appender.aclose()
            reads = getattr(app.state, "scan_reads", None)  # the scan's private read connections
            if reads is not None:
                await reads.aclose()

    app = FastAPI(title="partsledger", version="1.0.0", description=DESCRIPTION, lifespan=lifespan)
    app.state.settings = settings
    app.state.ledger = ledger
    app.state.appender = None
    install_problem_handlers(app)
    app.include_router(scan_routes.router)  # first: the public scan is the hottest path (fewest routes tried)
    app.include_router(log_routes.router)
    app.include_router(parts_routes.router)
    app.include_router(vehicle_routes.router)
    app.include_router(epcis_routes.router)
    app.include_router(scanner_page.router)
    app.include_router(scan_routes.compressed_router)  # only base64url single segments; keep it last
    if settings.scan_fast_lane:
        app.add_middleware(scan_routes.ScanFastLane)

    # Models used only through openapi_extra must still be in components.
    def _openapi_models() -> None:
        schema = app.openapi()
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        for model in (EntryIn, BatchIn, Problem, LinksetOut, VinIn):
            if model.__name__ not in components:
                components[model.__name__] = model.model_json_schema(ref_template="#/components/schemas/{model}")

    _openapi_models()
    return app


__all__ = ["create_app", "freeze_startup_objects"]
