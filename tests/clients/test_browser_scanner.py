"""The browser scanner in Debian's headless chromium, fed a fake camera that films a real QR label.

Chromium's ``--use-file-for-fake-video-capture`` plays a Y4M video of a label
rendered by ``partsledger labels --png``; the page at ``/scan`` decodes it
(jsQR here: Linux chromium has no BarcodeDetector), fetches the verdict, checks
the inclusion proof against the signed checkpoint in the page, and shows it.
Then the network is cut and a recalled part is judged from the cached, signed
trust bundle. Screenshots are kept under ``test-artifacts/``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from clients.labels import label_from_uri, render_png
from clients.sdk import PartsLedger
from ledger.digital_link import build_uri, sign_part_id
from ledger.gs1 import make_gtin
from ledger.keys import KeyPair, b64encode, read_key_file
from tests.clients.cdp import CHROMIUM, Chromium, y4m_from_image
from tests.clients.running import ROOT, RunningServer, start_server

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium (/usr/bin/chromium)")

ARTIFACTS = ROOT / "test-artifacts"
GTIN = make_gtin("950600", 815)


@pytest.fixture
def running(tmp_path: Path, db_url: str) -> Iterator[RunningServer]:
    server = start_server(tmp_path, db_url)
    yield server
    server.stop()


def _world(server: RunningServer) -> tuple[str, str]:
    """An OEM with one genuine part (lot A) and one recalled part (lot B); their label URIs."""
    operator = read_key_file(server.operator_key)
    oem = KeyPair.generate()
    with PartsLedger(server.url) as client:
        client.submit(operator, org="partsledger-operator", type="org.register", body={
            "org_id": "acme-oem", "kind": "oem", "name": "Acme Motors", "public_keys": [b64encode(oem.public_key)],
            "gs1_prefixes": ["950600"]})
        uris = []
        for serial, lot in (("QRGENUINE0000001", "A"), ("QRRECALLED000002", "B")):
            client.submit(oem, org="acme-oem", type="part.commission",
                          body={"gtin": GTIN, "serial": serial, "lot": lot, "category": "brakes"})
            uris.append(build_uri(server.url, GTIN, serial, lot=lot, sig=sign_part_id(oem, GTIN, serial)))
        client.submit(oem, org="acme-oem", type="recall.set", body={"campaign_id": "rc-b", "gtin": GTIN,
                                                                    "lots": ["B"]})
    return uris[0], uris[1]


def test_phone_scans_a_label_and_sees_the_verdict(running: RunningServer, tmp_path: Path) -> None:
    genuine_uri, recalled_uri = _world(running)
    png = tmp_path / "label.png"
    render_png(label_from_uri(genuine_uri), png)
    video = tmp_path / "label.y4m"
    y4m_from_image(png, video)
    browser = Chromium("--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
                       f"--use-file-for-fake-video-capture={video}", user_data_dir=tmp_path / "profile")
    try:
        page = browser.open_page(f"{running.url}/scan?autostart=1")
        verdict = browser.wait_for(page, "document.body.dataset.verdict", timeout=45)
        browser.screenshot(page, ARTIFACTS / "scanner-genuine.png")
        assert verdict == "genuine"
        assert browser.evaluate(page, "document.getElementById('decoder').textContent") == "decoder: jsQR"
        facts = browser.evaluate(page, "[...document.querySelectorAll('#facts dd')].map(d => d.dataset.fact + '=' "
                                       "+ d.textContent)")
        assert "serial=QRGENUINE0000001" in facts and "label_signature=valid (acme-oem)" in facts
        proof = browser.evaluate(page, "document.getElementById('proof').textContent")
        assert proof == "record 2 proven included in the signed checkpoint of 5 records"
        tampered = browser.evaluate(page, f"""(async () => {{
            const data = await (await fetch({genuine_uri!r}, {{headers: {{Accept: "application/json"}}}})).json();
            const p = data.proof.inclusion_proof;
            p[0] = (p[0][0] === "A" ? "B" : "A") + p[0].slice(1);
            return window.partsledgerScanner.checkProof(data);
        }})()""")
        assert tampered.startswith("PROOF FAILED")
        story = browser.evaluate(page, "document.getElementById('story').textContent")
        assert "part.commission" in story

        # offline: the page cached the signed trust bundle on load; cut the network and judge from it
        browser.wait_for(page, "document.getElementById('bundle').textContent.startsWith('Trust bundle v')")
        browser.send("Network.enable", session=page)
        browser.send("Network.emulateNetworkConditions", {"offline": True, "latency": 0, "downloadThroughput": -1,
                                                          "uploadThroughput": -1}, session=page)
        browser.wait_for(page, "!navigator.onLine")
        browser.evaluate(page, f"window.partsledgerScanner.check({recalled_uri!r})")
        offline = browser.wait_for(page, "document.getElementById('verdict').textContent.includes('offline') && "
                                         "document.getElementById('verdict').textContent")
        browser.screenshot(page, ARTIFACTS / "scanner-offline-recalled.png")
        assert offline == "recalled (offline)"
        reasons = browser.evaluate(page, "document.getElementById('reasons').textContent")
        assert "Recall campaign rc-b" in reasons and "Label signed by acme-oem" in reasons
    finally:
        browser.close()


def test_offline_scan_judges_the_selected_workshops_authorization(running: RunningServer, tmp_path: Path) -> None:
    """With the network cut, the page judges the chosen workshop's grant from the cached bundle, as the server does.

    Oslo holds a brakes grant for Norway (authorized); Riyadh holds one for HV batteries only (out of scope:
    category); Lyon's grant was revoked. The same choice online gets the server's answer, which must agree.
    """
    operator = read_key_file(running.operator_key)
    oem = KeyPair.generate()
    shops = {name: KeyPair.generate() for name in ("oslo-ws", "riyadh-ws", "lyon-ws")}
    with PartsLedger(running.url) as client:
        client.submit(operator, org="partsledger-operator", type="org.register", body={
            "org_id": "acme-oem", "kind": "oem", "name": "Acme Motors", "public_keys": [b64encode(oem.public_key)],
            "gs1_prefixes": ["950600"]})
        for (name, key), country in zip(shops.items(), ("NO", "SA", "FR"), strict=True):
            client.submit(operator, org="partsledger-operator", type="org.register", body={
                "org_id": name, "kind": "workshop", "name": name.split("-")[0].title() + " Garage",
                "country": country, "public_keys": [b64encode(key.public_key)]})
        for grantee, scope in (("oslo-ws", {"categories": ["brakes"], "countries": ["NO"]}),
                               ("riyadh-ws", {"categories": ["hv_battery"]}), ("lyon-ws", {})):
            client.submit(oem, org="acme-oem", type="grant.issue", body={
                "grant_id": f"g-{grantee}", "kind": "workshop", "grantee": grantee, "activities": ["install"],
                "valid_from": "2020-01-01T00:00:00Z", **scope})
        client.submit(oem, org="acme-oem", type="grant.revoke", body={"grant_id": "g-lyon-ws"})
        client.submit(oem, org="acme-oem", type="part.commission",
                      body={"gtin": GTIN, "serial": "QRBRAKES00000001", "lot": "A", "category": "brakes"})
    uri = build_uri(running.url, GTIN, "QRBRAKES00000001", lot="A", sig=sign_part_id(oem, GTIN, "QRBRAKES00000001"))
    browser = Chromium(user_data_dir=tmp_path / "profile")
    read = ("(() => { const a = document.getElementById('authorization');"
            " return a.hidden ? null : a.dataset.status + '|' + a.textContent; })()")

    def scan(workshop: str, offline: bool) -> str | None:
        browser.evaluate(page, f"window.partsledgerScanner.selectWorkshop({workshop!r})")
        browser.evaluate(page, "document.getElementById('verdict').textContent = ''")
        browser.evaluate(page, f"window.partsledgerScanner.check({uri!r})")
        done = "document.getElementById('verdict').textContent"
        verdict = browser.wait_for(page, f"{done} !== '' && {done}")
        assert verdict == ("genuine (offline)" if offline else "genuine")
        result: str | None = browser.evaluate(page, read)
        return result

    try:
        page = browser.open_page(f"{running.url}/scan")
        browser.wait_for(page, "document.getElementById('bundle').textContent.startsWith('Trust bundle v')")
        options = browser.evaluate(page, "[...document.querySelectorAll('#workshop option')].map(o => o.value)")
        assert options == ["", "lyon-ws", "oslo-ws", "riyadh-ws"]
        online = {shop: scan(shop, offline=False) for shop in ("oslo-ws", "riyadh-ws", "lyon-ws")}
        browser.send("Network.enable", session=page)
        browser.send("Network.emulateNetworkConditions", {"offline": True, "latency": 0, "downloadThroughput": -1,
                                                          "uploadThroughput": -1}, session=page)
        browser.wait_for(page, "!navigator.onLine")
        oslo = scan("oslo-ws", offline=True)
        browser.screenshot(page, ARTIFACTS / "scanner-offline-authorized.png")
        riyadh = scan("riyadh-ws", offline=True)
        browser.screenshot(page, ARTIFACTS / "scanner-offline-not-authorized.png")
        lyon = scan("lyon-ws", offline=True)
        nobody = scan("", offline=True)
    finally:
        browser.close()
    assert oslo is not None and oslo.startswith("authorized|oslo-ws: authorized (authorized)")
    assert "grant g-oslo-ws from acme-oem" in oslo
    assert riyadh is not None and riyadh.startswith("out_of_scope|riyadh-ws: not authorized (out_of_scope)")
    assert riyadh.endswith("does not cover: category)")
    assert lyon is not None and lyon.startswith("revoked|lyon-ws: not authorized (revoked)")
    assert nobody is None  # no workshop chosen: no authorization shown
    # the page offline says what the server says online
    assert {shop: (v or "").split("|")[0] for shop, v in online.items()} == {
        "oslo-ws": "authorized", "riyadh-ws": "out_of_scope", "lyon-ws": "revoked"}
