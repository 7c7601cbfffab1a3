"""The scan's fast paths give exactly the fresh answer: the cached JSON response equals rendering a verdict
computed without any cache, it changes with every append that touches the part, the Merkle node cache
never serves a proof that fails against the newer checkpoint, and the raw reads agree with the domain's."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

import psycopg
import pytest
from fastapi.responses import JSONResponse
from fastapi.testclient import TestClient

from ledger.digital_link import PartLink, parse_uri
from ledger.part_reads import part_detail
from ledger.resolve import VerdictCache, part_view, resolve_scan, scan_facts, scan_facts_async
from ledger.storage.proof_reads import RawReader, SnapshotReads, log_size
from tests.api.test_scan_parts import CASES, GTIN, JSON, Shop, _doc_snippet, make_shop, scan, vehicle
from tests.support import World

BASE = "http://testserver"
NOW = "2026-11-29T06:00:00Z"


@pytest.fixture
def shop(world: World) -> Shop:
    return make_shop(world)


def _link(path: str) -> PartLink:
    return parse_uri(BASE + path)


def _fresh(shop: Shop, path: str, workshop: str | None = None) -> dict[str, Any]:
    """The verdict computed from the database with no cache at all."""
    return resolve_scan(shop.world.ledger, _link(path), resolver_base=BASE, now=NOW, workshop=workshop)


def _same_but_time(served: dict[str, Any], fresh: dict[str, Any]) -> None:
    assert {**served, "checked_at": NOW} == fresh


@pytest.mark.parametrize("serial", [case[0] for case in CASES])
@pytest.mark.parametrize("workshop", [None, "riyadh-ws", "oslo-ws"])
def test_cached_bytes_are_the_rendering_of_a_fresh_verdict(client: TestClient, shop: Shop, serial: str,
                                                           workshop: str | None) -> None:
    path = shop.label(serial)
    cache = VerdictCache()
    facts = scan_facts(shop.world.ledger, _link(path), resolver_base=BASE, cache=cache)
    again = scan_facts(shop.world.ledger, _link(path), resolver_base=BASE, cache=cache)
    assert again is facts and cache.hits == 1
    fresh = _fresh(shop, path, workshop)
    authorization = fresh["authorization"]
    assert facts.to_json(authorization=authorization, now=NOW) == JSONResponse(fresh).body
    assert json.loads(facts.to_json(authorization=authorization, now=NOW)) == fresh

    headers = {**JSON, **({"X-Workshop-Org": workshop} if workshop else {})}
    first = client.get(path, headers=headers)
    second = client.get(path, headers=headers)
    served_cache: VerdictCache = client.app.state.verdict_cache  # type: ignore[attr-defined]
    assert served_cache.hits >= 1, "the second request is answered from the cache"
    for response in (first, second):
        assert response.status_code == 200 and response.headers["content-type"] == "application/json"
        _same_but_time(response.json(), fresh)
        assert response.headers["vary"] == "Accept, Accept-Language"


def test_scans_read_the_size_first_only_while_repeats_are_common(api_factory: Any, shop: Shop,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """A scan reads the log's size on its own first only while most recent look-ups hit; either way each scan
    counts one look-up, a repeated label is answered from the cache, and the answer is the fresh one."""
    from api.settings import ApiLimits

    client = api_factory(limits=ApiLimits(scan_rate_per_minute=10**6, scan_burst=10**6))
    cache = VerdictCache()
    assert cache.hit_rate == 0.0 and not cache.probe_pays
    for _ in range(VerdictCache.HIT_RATE_SPAN):
        cache.count_hit()
    assert cache.probe_pays and 0.5 < cache.hit_rate < 1.0
    for _ in range(VerdictCache.HIT_RATE_SPAN):
        cache.get(("no", "such", "key"))  # type: ignore[arg-type]
    assert not cache.probe_pays and cache.misses == VerdictCache.HIT_RATE_SPAN

    probes: list[int] = []
    size_async = SnapshotReads.size_async

    async def counted(self: SnapshotReads) -> Any:
        probes.append(1)
        return await size_async(self)

    monkeypatch.setattr(SnapshotReads, "size_async", counted)
    served: VerdictCache = client.app.state.verdict_cache  # type: ignore[attr-defined]
    path = shop.label("GEN0K1")
    fresh = _fresh(shop, path)
    answers = [client.get(path, headers=JSON) for _ in range(80)]
    for response in answers:
        assert response.status_code == 200
        _same_but_time(response.json(), fresh)
    assert served.misses == 1 and served.hits == 79, "one look-up counted per scan"
    assert served.probe_pays and 0 < len(probes) < 80, "no probe while repeats were rare, probes once common"
    before = len(probes)
    for serial, lot, *_ in CASES:  # new labels: misses, until probing no longer pays
        for _ in range(3):
            client.get(shop.label(serial, lot), headers=JSON)
    assert len(probes) > before
    for _ in range(VerdictCache.HIT_RATE_SPAN):  # scans at a new log size miss: probing soon stops paying
        if not served.probe_pays:
            break
        shop.world.append(shop.riyadh, "part.install", {"gtin": GTIN, "serial": "GEN0K1", "vehicle": vehicle(8)})
        client.get(shop.label("CLN0K1"), headers=JSON)
        shop.world.append(shop.riyadh, "part.remove", {"gtin": GTIN, "serial": "GEN0K1", "vehicle": vehicle(8)})
        client.get(shop.label("CLN0K1"), headers=JSON)
    assert not served.probe_pays
    before = len(probes)
    changed = client.get(path, headers=JSON)
    assert len(probes) == before, "a scan after mostly misses reads no size first"
    _same_but_time(changed.json(), _fresh(shop, path))


def test_cached_response_changes_with_an_append_to_the_part(client: TestClient, shop: Shop) -> None:
    path = shop.label("GEN0K1")
    before = scan(client, path)
    again = scan(client, path)  # the same verdict but the time it was checked at (which may be a second later)
    assert again == {**before, "checked_at": again["checked_at"]}
    shop.world.append(shop.riyadh, "part.install", {"gtin": GTIN, "serial": "GEN0K1", "vehicle": vehicle(5)})
    after = scan(client, path)
    assert after["state"] == "installed" != before["state"]
    assert len(after["history"]) == len(before["history"]) + 1
    assert after["proof"]["seq"] == after["history"][-1]["seq"] > before["proof"]["seq"]
    _same_but_time(after, _fresh(shop, path))
    shop.world.append(shop.riyadh, "warranty.claim", {"claim_id": "WC-9", "gtin": GTIN, "serial": "GEN0K1",
                                                      "failure_code": "F1"})
    claimed = scan(client, path)
    assert [c["claim_id"] for c in claimed["warranty"]["claims"]] == ["WC-9"]
    _same_but_time(claimed, _fresh(shop, path))


def test_unrelated_append_gives_a_newer_proof_that_verifies(client: TestClient, shop: Shop) -> None:
    check = _doc_snippet()
    vkey = client.get("/v1/log/key").json()["verifier_key"]
    origin = shop.world.ledger.origin
    path = shop.label("RCL0K1", lot="BAD1")
    before = scan(client, path)
    check(before, vkey, origin)
    for n in range(5):  # several appends: the tree grows past new complete subtrees
        shop.commission(f"OTHER{n}K1")
        after = scan(client, path)
        assert after["proof"]["tree_size"] > before["proof"]["tree_size"]
        assert after["proof"]["seq"] == before["proof"]["seq"] and after["verdict"] == before["verdict"]
        check(after, vkey, origin)  # proof and checkpoint verify against the newer tree (node cache reused)
        _same_but_time(after, _fresh(shop, path))
        before = after


def test_node_reads_of_every_width_return_exactly_the_stored_nodes(shop: Shop) -> None:
    """Node queries come in a few fixed widths, padded with a key no node has: every request, of any length,
    with absent and repeated keys, reads exactly the stored nodes it names, from the cache or the table."""
    import random

    from ledger.storage.log_tables import NODES
    from ledger.storage.proof_reads import NODE_QUERY_STEP, NodeCache, read_nodes

    ledger = shop.world.ledger
    rng = random.Random(5)
    with ledger.db.read() as session:
        reader = RawReader.of(session)
        stored = {(int(level), int(idx)): bytes(value)
                  for level, idx, value in session.connection().execute(NODES.select()).fetchall()}
        assert len(stored) > 3 * NODE_QUERY_STEP
        absent = [(0, ledger.size() + k) for k in range(5)] + [(40, 0)]
        cache = NodeCache(maxsize=7)
        for length in range(1, 3 * NODE_QUERY_STEP + 2):
            keys = [*rng.sample(sorted(stored), length - 1), rng.choice(absent)]
            keys += rng.sample(keys, min(3, len(keys)))  # repeats
            for node_cache in (None, cache):
                assert read_nodes(reader, keys, node_cache) == {k: stored[k] for k in keys if k in stored}


def test_raw_scan_reads_agree_with_the_domain_repository(shop: Shop) -> None:
    shop.world.append(shop.riyadh, "warranty.claim", {"claim_id": "WC-1", "gtin": GTIN, "serial": "CLN0K1",
                                                      "failure_code": "F1"})
    ledger = shop.world.ledger
    for serial in ("GEN0K1", "RCL0K1", "SCR0K1", "CLN0K1"):
        view = part_view(ledger, GTIN, serial)
        detail = part_detail(ledger, GTIN, serial)
        assert view is not None
        assert view.history == detail["history"]
        assert view.claims == detail["claims"]
        assert view.facts.state == detail["part"]["state"] and view.latest_seq == detail["part"]["last_seq"]
        assert [f.kind for f in view.facts.open_flags] == [f["kind"] for f in detail["flags"] if f["open"]]
        assert [r.campaign_id for r in view.facts.recalls] == [r["campaign_id"] for r in detail["recalls"]]
    assert part_view(ledger, GTIN, "NEW0K1") is None
    assert part_view(ledger, GTIN, "CLN0K1").claims[0]["claim_id"] == "WC-1"  # type: ignore[union-attr]


def test_snapshot_reads_see_every_append_and_agree_with_a_session(shop: Shop) -> None:
    ledger = shop.world.ledger
    reads = SnapshotReads(ledger.db)
    try:
        with ledger.db.read() as session, reads.snapshot() as reader:
            assert reads.size() == log_size(RawReader.of(session)) == log_size(reader) == (ledger.size(),) * 2
        path = shop.label("CLN0K1")
        via_snapshot = scan_facts(ledger, _link(path), resolver_base=BASE, reads=reads)
        via_session = scan_facts(ledger, _link(path), resolver_base=BASE)
        assert via_snapshot == via_session
        with reads.snapshot() as reader:
            before = log_size(reader)
            shop.commission("PROBE1K1")  # committed while the snapshot is open: the snapshot does not see it
            assert log_size(reader) == before
        assert reads.size() == (ledger.size(),) * 2 != before
        assert reads.local == ledger.db.is_sqlite
    finally:
        reads.close()


def test_concurrent_size_reads_share_queries_and_each_sees_what_was_committed_before_it_asked(shop: Shop) -> None:
    """On PostgreSQL ``size_async`` runs one query for a burst of callers, but a caller never gets a size
    read by a query that began before it asked (on SQLite each call reads the file itself)."""
    import asyncio

    ledger = shop.world.ledger
    reads = SnapshotReads(ledger.db)
    queries = 0
    query_size = reads._query_size  # counting the database reads is the point

    async def counted() -> tuple[int, int]:
        nonlocal queries
        queries += 1
        return await query_size()

    reads._query_size = counted  # type: ignore[method-assign]

    async def burst() -> None:
        before = reads.size()
        first = await asyncio.gather(*(reads.size_async() for _ in range(50)))
        assert first == [before] * 50
        early = [asyncio.ensure_future(reads.size_async()) for _ in range(20)]
        await asyncio.sleep(0)  # the early callers have asked (and a query may be under way)
        shop.commission("BURST1K1")  # committed after they asked, before the late callers ask
        after = reads.size()
        late = await asyncio.gather(*(reads.size_async() for _ in range(20)))
        assert late == [after] * 20 and after != before
        assert all(size in (before, after) for size in await asyncio.gather(*early))
        await reads.aclose()

    try:
        asyncio.run(burst())
        if not reads.local:
            assert queries < 90  # shared: a handful of rounds for 90 callers
    finally:
        reads.close()


def _run_closing(reads: SnapshotReads, check: Callable[[], Awaitable[None]]) -> None:
    """Run ``check`` in a new event loop, then close the asyncio connections ``reads`` opened in it."""
    import asyncio

    async def run() -> None:
        try:
            await check()
        finally:
            await reads.aclose()

    asyncio.run(run())


def _postgres_only(shop: Shop) -> None:
    if shop.world.ledger.db.is_sqlite:
        pytest.skip("asyncio snapshots read PostgreSQL (on SQLite a verdict is read on the event loop itself)")


def test_async_verdict_is_the_thread_paths_verdict(shop: Shop, monkeypatch: pytest.MonkeyPatch) -> None:
    """On PostgreSQL a cold verdict is read on the event loop, in one statement and a node read when it can,
    else in one snapshot: the same bytes as the thread path's, with fresh caches, with caches warmed by other
    labels, and after an append."""

    from ledger import resolve

    _postgres_only(shop)
    ledger = shop.world.ledger
    reads = SnapshotReads(ledger.db)
    labels = {serial: _link(shop.label(serial, lot)) for serial, lot, *_ in CASES}
    in_snapshot: list[str] = []
    snapshot_path = resolve._scan_facts_snapshot  # which path answered is the point

    async def counted(*args: Any) -> Any:
        in_snapshot.append(args[2].serial)
        return await snapshot_path(*args)

    monkeypatch.setattr(resolve, "_scan_facts_snapshot", counted)

    async def check() -> None:
        # A plain part (no flag, recall, claim or open installation): the snapshot path while the shared
        # facts (maker, keys, checkpoint) are unknown at this size, then the one-statement path.
        link, cache, other_base = labels["GEN0K1"], VerdictCache(), "http://other.example"
        first = await scan_facts_async(ledger, link, resolver_base=BASE, cache=cache, reads=reads)
        assert in_snapshot == ["GEN0K1"]
        second = await scan_facts_async(ledger, link, resolver_base=other_base, cache=cache, reads=reads)
        assert in_snapshot == ["GEN0K1"], "answered by one statement and a node read"
        assert first == scan_facts(ledger, link, resolver_base=BASE)
        assert second == scan_facts(ledger, link, resolver_base=other_base) != first
        # So is a part of a recalled lot (the GTIN's open recalls come with the part's row); a part with an
        # open flag, claim or installation is read in one snapshot.
        recalled = await scan_facts_async(ledger, labels["RCL0K1"], resolver_base=BASE, cache=cache, reads=reads)
        assert recalled == scan_facts(ledger, labels["RCL0K1"], resolver_base=BASE)
        assert recalled is not None and recalled.document["verdict"] == "recalled"
        await scan_facts_async(ledger, labels["CLN0K1"], resolver_base=BASE, cache=cache, reads=reads)
        assert in_snapshot == ["GEN0K1", "CLN0K1"]

        warm = VerdictCache()
        for serial, link in labels.items():
            expected = scan_facts(ledger, link, resolver_base=BASE)
            fresh = await scan_facts_async(ledger, link, resolver_base=BASE, cache=VerdictCache(), reads=reads)
            shared = await scan_facts_async(ledger, link, resolver_base=BASE, cache=warm, reads=reads)
            if serial == "NEW0K1":  # never commissioned: left to the thread path, which checks every org's keys
                assert fresh is None and shared is None
                continue
            assert fresh == shared == expected, serial
            hits = warm.hits
            assert await scan_facts_async(ledger, link, resolver_base=BASE, cache=warm, reads=reads) is shared
            assert warm.hits == hits + 1
        shop.world.append(shop.riyadh, "part.install", {"gtin": GTIN, "serial": "GEN0K1", "vehicle": vehicle(7)})
        after = await scan_facts_async(ledger, labels["GEN0K1"], resolver_base=BASE, cache=warm, reads=reads)
        assert after == scan_facts(ledger, labels["GEN0K1"], resolver_base=BASE)
        assert after is not None and after.document["state"] == "installed"
        assert after.document["proof"]["tree_size"] == ledger.size()

    _run_closing(reads, check)


def test_local_verdict_in_one_statement_is_the_snapshot_verdict(shop: Shop, monkeypatch: pytest.MonkeyPatch) -> None:
    """On a SQLite file a cold verdict is one statement when it can be: the part's row, history, recalls and
    the lowest proof nodes together, the rest of the proof from the node cache (else one node read), and
    otherwise the snapshot path. Same bytes as the snapshot path's, with fresh or warm caches, after appends."""
    from ledger import resolve
    from ledger.resolve import scan_facts_fast

    ledger = shop.world.ledger
    if not ledger.db.is_sqlite:
        pytest.skip("the one-statement local path reads a SQLite file (PostgreSQL: scan_facts_async)")
    for k in range(40):  # a tree deep enough that proofs have levels both prefetched and cached
        shop.commission(f"BULK{k}K1")
    reads = SnapshotReads(ledger.db)
    assert reads.local
    labels = {serial: _link(shop.label(serial, lot)) for serial, lot, *_ in CASES}
    calls: list[str] = []
    snapshot_path, node_read = resolve.scan_facts, SnapshotReads.local_tuples

    def counted_snapshot(ledger_: Any, link: PartLink, **kwargs: Any) -> Any:
        calls.append("snapshot:" + link.serial)
        return snapshot_path(ledger_, link, **kwargs)

    def counted_nodes(self: SnapshotReads, *args: Any) -> Any:
        calls.append("nodes")
        return node_read(self, *args)

    monkeypatch.setattr(resolve, "scan_facts", counted_snapshot)
    monkeypatch.setattr(SnapshotReads, "local_tuples", counted_nodes)
    try:
        link, cache = labels["GEN0K1"], VerdictCache()
        first = scan_facts_fast(ledger, link, resolver_base=BASE, cache=cache, reads=reads)
        assert calls == ["snapshot:GEN0K1"], "the maker, its keys and the checkpoint are not known yet"
        calls.clear()
        second = scan_facts_fast(ledger, link, resolver_base="http://other.example", cache=cache, reads=reads)
        assert calls == [], "one statement: the upper nodes are cached, the lower ones came with the part"
        assert first == snapshot_path(ledger, link, resolver_base=BASE)
        assert second == snapshot_path(ledger, link, resolver_base="http://other.example") != first
        bulk = _link(shop.label("BULK17K1"))
        assert scan_facts_fast(ledger, bulk, resolver_base=BASE, cache=cache, reads=reads) == snapshot_path(
            ledger, bulk, resolver_base=BASE)
        assert calls in ([], ["nodes"]), "its upper nodes may not be cached yet"
        calls.clear()
        for base in ("http://a.example", "http://b.example"):
            assert scan_facts_fast(ledger, bulk, resolver_base=base, cache=cache, reads=reads) == snapshot_path(
                ledger, bulk, resolver_base=base)
        assert calls == []
        cold_nodes = VerdictCache()
        cold_nodes.shared = cache.shared  # maker, keys and checkpoint known, no node cached: one node read
        calls.clear()
        assert scan_facts_fast(ledger, bulk, resolver_base=BASE, cache=cold_nodes, reads=reads) == snapshot_path(
            ledger, bulk, resolver_base=BASE)
        assert calls == ["nodes"]
        # A part of a recalled lot is answered by the statement too (its GTIN's open recalls come with the
        # row); a part with an open flag, claim or installation, or never commissioned, by the snapshot path.
        calls.clear()
        recalled = scan_facts_fast(ledger, labels["RCL0K1"], resolver_base=BASE, cache=cache, reads=reads)
        assert recalled.document["verdict"] == "recalled" and calls == []
        assert recalled == snapshot_path(ledger, labels["RCL0K1"], resolver_base=BASE)
        for serial in ("CLN0K1", "NEW0K1"):
            calls.clear()
            scan_facts_fast(ledger, labels[serial], resolver_base=BASE, cache=cache, reads=reads)
            assert calls == [f"snapshot:{serial}"]
        warm = VerdictCache()
        for serial, link in labels.items():
            expected = snapshot_path(ledger, link, resolver_base=BASE)
            assert scan_facts_fast(ledger, link, resolver_base=BASE, cache=VerdictCache(), reads=reads) == expected
            shared = scan_facts_fast(ledger, link, resolver_base=BASE, cache=warm, reads=reads)
            assert shared == expected, serial
            hits = warm.hits
            assert scan_facts_fast(ledger, link, resolver_base=BASE, cache=warm, reads=reads) is shared
            assert warm.hits == hits + 1
        shop.world.append(shop.riyadh, "part.install", {"gtin": GTIN, "serial": "GEN0K1", "vehicle": vehicle(7)})
        for _ in range(2):  # the first read after the append refreshes the shared facts, the second uses them
            after = scan_facts_fast(ledger, labels["GEN0K1"], resolver_base=BASE, cache=warm, reads=reads)
            assert after == snapshot_path(ledger, labels["GEN0K1"], resolver_base=BASE)
            assert after.document["state"] == "installed" and after.document["proof"]["tree_size"] == ledger.size()
        moved = _link(shop.label("BULK3K1"))
        shop.commission("LATE1K1")
        for _ in range(2):
            assert scan_facts_fast(ledger, moved, resolver_base=BASE, cache=warm, reads=reads) == snapshot_path(
                ledger, moved, resolver_base=BASE)
    finally:
        reads.close()


def test_async_read_connections_go_back_only_between_transactions(shop: Shop) -> None:
    """A connection left inside its transaction (an error, a cancelled scan) is closed, never lent again."""

    from ledger.storage.proof_reads import SIZE_SQL

    _postgres_only(shop)
    reads = SnapshotReads(shop.world.ledger.db, async_connections=2)

    async def check() -> None:
        async with reads.async_reads() as db:
            (rows,) = await db.round([(SIZE_SQL, None)])
            assert len(rows) == 1
            with pytest.raises(RuntimeError):
                await db.together([(SIZE_SQL, None)])  # single statements would run inside the open snapshot
            conn = db._conn  # which connection was lent is the point
        assert conn.closed, "left in its transaction: closed"
        async with reads.async_reads() as db:
            await db.round([(SIZE_SQL, None)], last=True)
            assert len((await db.together([(SIZE_SQL, None)]))[0]) == 1
            conn = db._conn
        assert not conn.closed
        async with reads.async_reads() as db:
            assert db._conn is conn, "a finished connection is lent again"
            assert len((await db.together([(SIZE_SQL, None)]))[0]) == 1
        async with reads.async_reads() as db:
            assert db._conn is conn, "so is one used only for single statements"
            with pytest.raises(psycopg.errors.UndefinedTable):
                await db.round([("SELECT * FROM no_such_table", None)], last=True)
        assert conn.closed

    _run_closing(reads, check)


@pytest.mark.parametrize("query", ["lang=fr", "format=xml", "linkType=none", "activity=Install", "activity=a",
                                   "lang=en%0A", "format=json&format=pdf"])
def test_resolver_query_is_validated_as_fastapi_validates_it(client: TestClient, shop: Shop, query: str) -> None:
    """The resolver parses its own query; the lot-path route keeps FastAPI's: both answer the same 422."""
    plain = client.get(f"/01/{GTIN}/21/GEN0K1?{query}", headers=JSON)
    with_lot = client.get(f"/01/{GTIN}/10/L2606/21/GEN0K1?{query}", headers=JSON)
    assert plain.status_code == with_lot.status_code == 422
    assert plain.headers["content-type"] == "application/problem+json"
    assert plain.json() == with_lot.json()
    assert plain.json()["code"] == "invalid_field"


def test_resolver_query_values_reach_the_verdict(client: TestClient, shop: Shop) -> None:
    path = shop.label("GEN0K1")
    assert client.get(path + "&format=json").json()["part"]["label_lot"] == "L2606"
    assert client.get(path + "&format=linkset").headers["content-type"].startswith("application/linkset+json")
    assert "正品零件" in client.get(path + "&lang=zh").text
    ws = client.get(path + "&format=json&workshop=riyadh-ws&activity=repair").json()["authorization"]
    assert ws["authorized"] is True and ws["activity"] == "repair"


def test_shared_org_facts_follow_a_key_compromise(client: TestClient, shop: Shop) -> None:
    """The commissioning org's keys are memoised per log size across verdicts: a revocation is seen at once."""
    path = shop.label("GEN0K1")
    before = scan(client, path)
    assert before["verdict"] == "genuine" and "key_compromised" not in {r["code"] for r in before["reasons"]}
    scan(client, shop.label("RCL0K1", lot="BAD1"))  # another verdict from the same org's memoised keys
    shop.world.append(shop.oem, "key.revoke", {"kid": shop.oem.key.kid, "compromised_at": "2020-01-01T00:00:00Z"})
    after = scan(client, path)
    assert after["verdict"] == "suspect" and "key_compromised" in {r["code"] for r in after["reasons"]}
    _same_but_time(after, _fresh(shop, path))


@pytest.mark.parametrize("scope", [
    {"scheme": "http", "server": ("127.0.0.1", 8000), "root_path": "", "headers": [(b"host", b"parts.example")]},
    {"scheme": "https", "server": ("10.0.0.2", 443), "root_path": "/ledger", "headers": [(b"host", b"a.example:8443")]},
    {"scheme": "http", "server": ("127.0.0.1", 8000), "root_path": "", "headers": []},
    {"scheme": "http", "server": ("127.0.0.1", 80), "root_path": "/x/", "headers": [(b"accept", b"*/*")]},
    {"scheme": "https", "server": None, "root_path": "", "app_root_path": "/app", "headers": [(b"host", b"h")]},
])
def test_resolver_base_is_starlettes_base_url(scope: dict[str, Any]) -> None:
    """The resolver base the scan builds its URIs on is Starlette's base URL of the request, memoised or not."""
    from types import SimpleNamespace

    from starlette.requests import Request

    from api.routes.scan import _resolver_base

    app = SimpleNamespace(state=SimpleNamespace(settings=SimpleNamespace(resolver_base=None)))
    request = Request({"type": "http", "path": "/01/x/21/y", "query_string": b"a=1", "app": app, **scope})
    expected = str(request.base_url).rstrip("/")
    assert _resolver_base(request) == expected == _resolver_base(request)


def _without_time(response: Any) -> tuple[int, list[tuple[str, str]], Any]:
    """Status, headers and body of a response, the verdict's ``checked_at`` (the clock) left out."""
    body: Any = response.content
    if response.headers.get("content-type", "").startswith("application/json"):
        body = response.json()
        if isinstance(body, dict):
            body.pop("checked_at", None)
    headers = [(k, v) for k, v in response.headers.items() if k != "content-length"]
    return response.status_code, headers, body


def test_fast_lane_answers_exactly_what_the_router_answers(api_factory: Any, shop: Shop,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """Plain JSON scans are answered before routing, with the router's status, headers and bytes; every other
    request to the resolver (HTML, linkset, a workshop, another query, bad input, an empty bucket) is left to
    the router, whose answer it then is."""
    from api.routes import scan as scan_routes
    from api.settings import ApiLimits

    lane_answered: list[str] = []
    answer = scan_routes._fast_lane_answer

    async def counted(request: Any, gtin: str, serial: str) -> Any:
        response = await answer(request, gtin, serial)
        if response is not None:
            lane_answered.append(request.url.path + ("?" + request.url.query if request.url.query else ""))
        return response

    monkeypatch.setattr(scan_routes, "_fast_lane_answer", counted)
    fast, routed = api_factory(), api_factory(scan_fast_lane=False)
    html = {"Accept": "text/html"}
    plain: list[tuple[str, dict[str, str]]] = []
    for serial, lot, *_ in CASES:
        label = shop.label(serial, lot)
        plain += [(label, JSON), (label.replace("?", "?format=json&"), {}), (shop.label(serial, None), JSON),
                  (f"/01/{GTIN}/21/{serial}", JSON), (shop.label(serial, "OTHERLOT"), JSON)]
    plain.append((f"/01/{GTIN}/21/a/b", JSON))  # a serial may hold '/': the route's {serial:path} takes it too
    left: list[tuple[str, dict[str, str]]] = [
        (shop.label("GEN0K1"), html), (shop.label("GEN0K1"), {}),
        (shop.label("GEN0K1"), {"Accept": "application/linkset+json"}),
        (shop.label("GEN0K1") + "&linkType=linkset", JSON), (shop.label("GEN0K1") + "&format=html", JSON),
        (shop.label("GEN0K1"), {**JSON, "X-Workshop-Org": "riyadh-ws"}),
        (shop.label("GEN0K1") + "&workshop=oslo-ws", JSON), (shop.label("GEN0K1") + "&lang=zh", JSON),
        (shop.label("GEN0K1") + "&10=L2606", JSON), (shop.label("GEN0K1") + "&format=xml", JSON),
        (f"/01/{GTIN[:-1]}0/21/GEN0K1", JSON), (f"/01/{GTIN}/21/GEN%20K1", JSON), (f"/01/{GTIN}/21/", JSON),
        (f"/01/{GTIN}/21/GEN0K1?10=", JSON), (f"/01/{GTIN}/21/GEN0K1?8030=not-a-signature", JSON),
        (f"/01/{GTIN}/10/L2606/21/GEN0K1", JSON),
    ]
    for path, headers in plain + left:
        assert _without_time(fast.get(path, headers=headers)) == _without_time(routed.get(path, headers=headers)), path
    assert lane_answered == [path for path, _ in plain]

    # An empty bucket: the lane leaves the scan to the router, which answers 429 with Retry-After.
    tight_fast = api_factory(limits=ApiLimits(scan_rate_per_minute=1, scan_burst=2))
    tight_routed = api_factory(limits=ApiLimits(scan_rate_per_minute=1, scan_burst=2), scan_fast_lane=False)
    path = shop.label("GEN0K1")
    for tight in (tight_fast, tight_routed):
        answers = [tight.get(path, headers=JSON) for _ in range(4)]
        assert [a.status_code for a in answers] == [200, 200, 429, 429]
        assert all(a.headers["retry-after"] and a.json()["code"] == "rate_limited" for a in answers[2:])


def test_concurrent_scan_statements_go_in_batches_and_each_gets_its_own_rows(shop: Shop,
                                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """On PostgreSQL the scans' single statements asked for together are sent together (one pipeline per
    batch): each caller gets exactly the rows its statement reads alone; a statement that fails fails at
    most its batch (the scan then takes the thread path), and the next batch is served as usual."""
    import asyncio

    from sqlalchemy import literal_column, select

    from ledger.resolve import _Q_SCAN
    from ledger.storage.proof_reads import AsyncReads

    _postgres_only(shop)
    for k in range(30):
        shop.commission(f"BAT{k}K1")
    ledger = shop.world.ledger
    reads = SnapshotReads(ledger.db)
    serials = [f"BAT{k}K1" for k in range(30)] + [case[0] for case in CASES]
    params = [{"gtin": GTIN, "serial": serial, "subject": f"part:{GTIN}:{serial}"} for serial in serials]
    batches: list[int] = []
    together = AsyncReads.together

    async def counted(self: AsyncReads, statements: Any) -> Any:
        batches.append(len(statements))
        return await together(self, statements)

    monkeypatch.setattr(AsyncReads, "together", counted)

    async def check() -> None:
        statement = _Q_SCAN["postgresql"]
        answers = await asyncio.gather(*(reads.batched(statement, p) for p in params))
        sizes = list(batches)
        async with reads.async_reads() as db:
            alone = [(await db.together([(statement, p)]))[0] for p in params]
        assert answers == alone
        assert [row["last_seq"] is not None for (row,) in answers] == [s != "NEW0K1" for s in serials]
        assert sum(sizes) == len(params) and len(sizes) < len(params), sizes
        failing = select(literal_column("1") / literal_column("0"))
        mixed = await asyncio.gather(*(reads.batched(failing if i == 7 else statement, p)
                                       for i, p in enumerate(params)), return_exceptions=True)
        assert isinstance(mixed[7], psycopg.Error)
        for i, got in enumerate(mixed):
            assert isinstance(got, psycopg.Error) or got == alone[i], i
        assert await asyncio.gather(*(reads.batched(statement, p) for p in params)) == alone

    _run_closing(reads, check)


def test_concurrent_scans_share_one_statement_for_their_labels(shop: Shop, monkeypatch: pytest.MonkeyPatch) -> None:
    """On PostgreSQL the labels of scans asked for together are read by one statement (an array of labels, a
    lateral scan each): every label gets exactly the row the scan's one statement reads for it alone,
    whatever the batch (unknown parts, one label twice); a statement whose rows do not answer each label once,
    in order, is refused."""
    import asyncio

    from sqlalchemy import select

    from ledger.errors import IntegrityError
    from ledger.resolve import _LABEL_ARRAYS, _LABELS, _Q_SCAN, _Q_SCAN_MANY
    from ledger.storage.proof_reads import AsyncReads

    _postgres_only(shop)
    odd = ['Q"1,2', "Q'3%&", "Q(4)*+/;<=>?_"]  # GS1 serial characters that an array literal would have to quote
    for serial in [f"ARR{k}K1" for k in range(30)] + odd:
        shop.commission(serial)
    reads = SnapshotReads(shop.world.ledger.db)
    serials = [f"ARR{k}K1" for k in range(30)] + [case[0] for case in CASES] + ["ARR3K1", "NOPE9", *odd]
    labels = [(GTIN, serial, f"part:{GTIN}:{serial}") for serial in serials]
    statements: list[int] = []
    each = AsyncReads.each

    async def counted(self: AsyncReads, stmt: Any, columns: Any, batch: Any) -> Any:
        statements.append(len(batch))
        return await each(self, stmt, columns, batch)

    monkeypatch.setattr(AsyncReads, "each", counted)

    async def check() -> None:
        answers = await asyncio.gather(*(reads.batched_each(_Q_SCAN_MANY, _LABEL_ARRAYS, label) for label in labels))
        assert sum(statements) == len(labels) and len(statements) < len(labels), statements
        async with reads.async_reads() as db:
            single = [{"gtin": gtin, "serial": serial, "subject": about} for gtin, serial, about in labels]
            alone = [(await db.together([(_Q_SCAN["postgresql"], p)]))[0][0] for p in single]
            assert [{k: v for k, v in row.items() if k != "n"} for row in answers] == alone
            known = [row["last_seq"] is not None for row in answers]
            assert known == [s not in ("NEW0K1", "NOPE9") for s in serials]
            assert all(row["last_seq"] is not None for row in answers[-len(odd):])
            again = serials.index("ARR3K1", 31)
            assert answers[again] == {**answers[3], "n": answers[again]["n"]}
            reordered = await db.each(_Q_SCAN_MANY, _LABEL_ARRAYS, labels[::-1])
            assert [row["n"] for row in reordered] == list(range(1, len(labels) + 1))
            assert [row["last_seq"] for row in reordered] == [row["last_seq"] for row in answers[::-1]]
            skipping = select(_LABELS.c.n).select_from(_LABELS).where(_LABELS.c.n > 1).order_by(_LABELS.c.n)
            with pytest.raises(IntegrityError):
                await db.each(skipping, _LABEL_ARRAYS, labels[:3])

    _run_closing(reads, check)


def test_server_start_fills_the_node_cache_with_the_upper_levels(api_factory: Any, shop: Shop,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """At start the server loads the stored nodes every proof shares (the levels the scan's statement does not
    read), highest levels first when the cache cannot hold them all; a scan then reads no node on its own."""
    from ledger.resolve import PREFETCH_LEVELS
    from ledger.storage.log_tables import NODES
    from ledger.storage.proof_reads import NodeCache, warm_node_cache

    for k in range(40):
        shop.commission(f"WARM{k}K1")
    ledger = shop.world.ledger
    with ledger.db.read() as session:
        stored = {(int(level), int(idx)): bytes(value)
                  for level, idx, value in session.connection().execute(NODES.select()).fetchall()
                  if level >= PREFETCH_LEVELS}
    assert len(stored) >= 3
    client = api_factory()
    assert dict(client.app.state.verdict_cache.nodes._items) == stored
    small = NodeCache(maxsize=3, min_level=PREFETCH_LEVELS)
    assert warm_node_cache(ledger.db, small) == 3
    assert set(small._items) == set(sorted(stored, key=lambda key: (-key[0], key[1]))[:3])

    if ledger.db.is_sqlite:  # the one-statement path's node read is a separate call there: count it
        node_reads: list[int] = []
        read = SnapshotReads.local_tuples

        def counted(self: SnapshotReads, *args: Any) -> Any:
            node_reads.append(1)
            return read(self, *args)

        monkeypatch.setattr(SnapshotReads, "local_tuples", counted)
        assert client.get(shop.label("WARM1K1"), headers=JSON).status_code == 200  # learns maker and checkpoint
        node_reads.clear()
        for k in (5, 17, 33):
            assert client.get(shop.label(f"WARM{k}K1"), headers=JSON).status_code == 200
        assert node_reads == []
