/* partsledger browser scanner.
 *
 * Camera -> QR decode (BarcodeDetector where the browser has it, the vendored jsQR otherwise) ->
 * GS1 Digital Link URI -> GET <this server>/01/<gtin>/21/<serial>?... with Accept: application/json ->
 * verdict, reasons and the part's story. The inclusion proof in the answer is checked here against the
 * signed checkpoint, with the log key pinned on first use (localStorage), so the page need not trust
 * the server's word. With no network it judges from the cached, signed trust bundle instead.
 * No CDN, no build step: plain ES2020.
 */
"use strict";
(function () {
  const $ = (id) => document.getElementById(id);
  const STORE = "partsledger.scanner.v1";
  const enc = new TextEncoder();
  let stream = null, timer = null, busy = false, lastText = null;

  // ---------------------------------------------------------------- small byte helpers
  const b64 = (s) => Uint8Array.from(atob(s), (c) => c.charCodeAt(0));
  const b64url = (s) => b64(s.replace(/-/g, "+").replace(/_/g, "/") + "===".slice((s.length + 3) % 4));
  const concat = (...parts) => {
    const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
    let i = 0;
    for (const p of parts) { out.set(p, i); i += p.length; }
    return out;
  };
  const equal = (a, b) => a.length === b.length && a.every((x, i) => x === b[i]);
  const sha256 = async (bytes) => new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
  const ed25519 = async (publicKey, signature, message) => {
    try {
      const key = await crypto.subtle.importKey("raw", publicKey, { name: "Ed25519" }, false, ["verify"]);
      return await crypto.subtle.verify({ name: "Ed25519" }, key, signature, message);
    } catch (e) { return false; }
  };
  // RFC 8785: ECMAScript serialisation with keys sorted by UTF-16 code units.
  const canonical = (v) => Array.isArray(v) ? "[" + v.map(canonical).join(",") + "]"
    : v !== null && typeof v === "object"
      ? "{" + Object.keys(v).sort().map((k) => JSON.stringify(k) + ":" + canonical(v[k])).join(",") + "}"
      : JSON.stringify(v);

  const state = () => { try { return JSON.parse(localStorage.getItem(STORE)) || {}; } catch (e) { return {}; } };
  const save = (s) => localStorage.setItem(STORE, JSON.stringify(s));

  // ---------------------------------------------------------------- the log key (pinned on first use)
  function parseVerifierKey(vkey) {
    const first = vkey.indexOf("+"), second = vkey.indexOf("+", first + 1);  // base64 may hold '+' too
    const name = vkey.slice(0, first), hash = vkey.slice(first + 1, second);
    const raw = b64(vkey.slice(second + 1));
    if (raw[0] !== 1 || raw.length !== 33) throw new Error("log key is not Ed25519");
    return { name, hash, publicKey: raw.slice(1) };
  }
  async function logKey() {
    const s = state();
    if (s.vkey) return parseVerifierKey(s.vkey);
    const info = await (await fetch("/v1/log/key", { headers: { Accept: "application/json" } })).json();
    s.vkey = info.verifier_key;
    save(s);
    return parseVerifierKey(s.vkey);
  }

  // C2SP signed note with one Ed25519 signature line from the pinned key; returns the checkpoint.
  async function openCheckpoint(note, key) {
    const split = note.lastIndexOf("\n\n");
    const text = note.slice(0, split + 1);
    for (const line of note.slice(split + 2).split("\n")) {
      if (!line.startsWith("\u2014 " + key.name + " ")) continue;
      const sig = b64(line.slice(key.name.length + 3));
      if (await ed25519(key.publicKey, sig.slice(4), enc.encode(text))) {
        const [origin, size, root] = text.split("\n");
        if (origin !== key.name) break;
        return { size: Number(size), root: b64(root) };
      }
    }
    throw new Error("the checkpoint is not signed by the pinned log key");
  }

  async function node(l, r) { return sha256(concat(Uint8Array.of(1), l, r)); }
  // RFC 9162 §2.1.3.2
  async function verifyInclusion(leaf, index, size, proof, root) {
    if (index >= size) return false;
    let fn = index, sn = size - 1, r = leaf;
    for (const p of proof) {
      if (sn === 0) return false;
      if (fn % 2 === 1 || fn === sn) {
        r = await node(p, r);
        while (fn % 2 === 0 && fn !== 0) { fn = Math.floor(fn / 2); sn = Math.floor(sn / 2); }
      } else {
        r = await node(r, p);
      }
      fn = Math.floor(fn / 2); sn = Math.floor(sn / 2);
    }
    return sn === 0 && equal(r, root);
  }

  async function checkProof(data) {
    const p = data.proof || data.inclusion || null;
    if (!p || !p.checkpoint) return "no proof in the answer";
    try {
      const cp = await openCheckpoint(p.checkpoint, await logKey());
      const proof = (p.inclusion_proof || p.proof || []).map(b64);
      const size = p.tree_size === undefined ? cp.size : p.tree_size;
      const leaf = b64(p.leaf_hash);
      if (p.record && !equal(await sha256(concat(Uint8Array.of(0), b64(p.record))), leaf)) {
        return "PROOF FAILED: the record bytes do not hash to the leaf";
      }
      const ok = size === cp.size && await verifyInclusion(leaf, p.seq, size, proof, cp.root);
      return ok ? `record ${p.seq} proven included in the signed checkpoint of ${cp.size} records`
        : "PROOF FAILED: the answer is not backed by the signed log";
    } catch (e) { return "PROOF FAILED: " + e.message; }
  }

  // ---------------------------------------------------------------- Digital Link parsing
  function parseLink(text) {
    let url;
    try { url = new URL(text.trim()); } catch (e) { return null; }
    const m = url.pathname.match(/\/01\/(\d{14})\/21\/([^/?#]+)/);
    if (!m) return null;
    return { gtin: m[1], serial: decodeURIComponent(m[2]), lot: url.searchParams.get("10"),
             sig: url.searchParams.get("8030"), path: m[0] + url.search };
  }

  // ---------------------------------------------------------------- offline: the trust bundle
  async function refreshBundle() {
    const key = await logKey();
    const envelope = await (await fetch("/v1/trust-bundle", { headers: { Accept: "application/json" } })).json();
    await verifyBundle(envelope, key);
    const s = state();
    if (s.bundle && s.bundle.bundle.version > envelope.bundle.version) throw new Error("refusing an older bundle");
    s.bundle = envelope;
    save(s);
    showBundle();
    showWorkshops();
  }
  async function verifyBundle(envelope, key) {
    const message = enc.encode("partsledger/v1/trust-bundle\n" + canonical(envelope.bundle));
    if (!await ed25519(key.publicKey, b64(envelope.signature), message)) throw new Error("trust bundle signature");
    await openCheckpoint(envelope.bundle.checkpoint, key);
    return envelope.bundle;
  }
  function showBundle() {
    const b = state().bundle;
    $("bundle").textContent = b ? `Trust bundle v${b.bundle.version}, issued ${b.bundle.issued_at}, expires ` +
      b.bundle.expires_at : "No trust bundle cached yet.";
  }
  // A GTIN-14 is an indicator digit and then the GTIN-13 that begins with the company prefix (ledger.gs1).
  const matchesPrefix = (gtin, p) => gtin.slice(1).startsWith(p);

  // ---------------------------------------------------------------- offline workshop authorization
  // The server's rule (ledger/domain/authz.py, ledger/trust_bundle.py offline_authorization) over the bundle:
  // only the brand owner's grants to this workshop count; each is judged on activity, GTIN prefix, brand and
  // category (every one recorded for the GTIN must be covered), the workshop's country, site and technician
  // (a scan names neither), then status and validity; authorized wins, else revoked > suspended > expired >
  // out_of_scope (closest grant) > independent.
  const rfc3339 = (d) => d.toISOString().slice(0, 19) + "Z";
  const covers = (allowed, values) => !(allowed || []).length ||
    (Array.isArray(values) && values.length > 0 && values.every((v) => allowed.includes(v)));
  function brandOwners(bundle, gtin, product) {
    if (product && (product.brand_owners || []).length) return new Set(product.brand_owners);
    let best = 0, owners = new Set();
    for (const o of bundle.orgs) {
      const lengths = (o.gs1_prefixes || []).filter((p) => matchesPrefix(gtin, p)).map((p) => p.length);
      if (!lengths.length) continue;
      const n = Math.max(...lengths);
      if (n > best) { best = n; owners = new Set([o.org_id]); } else if (n === best) owners.add(o.org_id);
    }
    return owners;
  }
  function scopeMisses(g, gtin, activity, country, product) {
    const misses = [];
    if (!(g.activities || []).includes(activity)) misses.push("activity");
    if ((g.gtin_prefixes || []).length && !g.gtin_prefixes.some((p) => matchesPrefix(gtin, p))) misses.push("gtin_prefix");
    if (!covers(g.brands, product && product.brands)) misses.push("brand");
    if (!covers(g.categories, product && product.categories)) misses.push("category");
    if ((g.countries || []).length && !g.countries.includes(country)) misses.push("country");
    if ((g.sites || []).length) misses.push("site");
    if ((g.technicians || []).length) misses.push("technician");
    return misses;
  }
  function offlineAuthorization(bundle, workshop, gtin, activity, now) {
    const answer = (authorized, grantId, status, message) =>
      ({ workshop, activity, authorized, grant_id: grantId, status, message });
    const org = bundle.orgs.find((o) => o.org_id === workshop);
    if (!org) return answer(false, null, "unknown_org", `${workshop} is not a registered org (as of trust bundle ` +
      `v${bundle.version})`);
    const product = (bundle.products || []).find((p) => p.gtin === gtin) || null;
    const owners = brandOwners(bundle, gtin, product);
    const ownerText = [...owners].sort().join(" or ") || "the brand owner";
    const grants = bundle.grants.filter((g) => (g.kind || "workshop") === "workshop" && g.grantee === workshop &&
      owners.has(g.grantor));
    if (!grants.length) return answer(false, null, "independent", `${workshop} holds no grant from ${ownerText}: ` +
      "recorded as an independent workshop (right to repair)");
    let bestMiss = null;
    const refusals = {};
    for (const g of grants) {
      const misses = scopeMisses(g, gtin, activity, org.country, product);
      if (misses.length) {
        if (!bestMiss || misses.length < bestMiss[1].length) bestMiss = [g, misses];
        continue;
      }
      const status = g.status || "active";
      if (status !== "active") { if (!refusals[status]) refusals[status] = g; continue; }
      if ((g.valid_from && !(g.valid_from <= now)) || (g.valid_until && now >= g.valid_until)) {
        if (!refusals.expired) refusals.expired = g;
        continue;
      }
      return answer(true, g.grant_id, "authorized", `authorized by grant ${g.grant_id} from ${g.grantor}`);
    }
    for (const status of ["revoked", "suspended", "expired"]) {
      const g = refusals[status];
      if (g) return answer(false, g.grant_id, status, `grant ${g.grant_id} from ${g.grantor} ` +
        (status === "expired" ? `is not valid at ${now}` : `is ${status}`));
    }
    const [g, misses] = bestMiss;
    return answer(false, g.grant_id, "out_of_scope", `no grant of ${workshop} from ${ownerText} covers ${activity} ` +
      `on this part (closest, ${g.grant_id}, does not cover: ${misses.join(", ")})`);
  }

  // ---------------------------------------------------------------- who is scanning (the workshop)
  const selectedWorkshop = () => state().workshop || "";
  function showWorkshops() {
    const select = $("workshop");
    const b = state().bundle;
    const shops = b ? b.bundle.orgs.filter((o) => o.kind === "workshop")
      .sort((x, y) => (x.name || x.org_id).localeCompare(y.name || y.org_id)) : [];
    const chosen = selectedWorkshop();
    const none = document.createElement("option");
    none.value = ""; none.textContent = "\u2014 not a workshop \u2014";
    select.replaceChildren(none, ...shops.map((o) => {
      const opt = document.createElement("option");
      opt.value = o.org_id; opt.textContent = `${o.name || o.org_id} (${o.org_id})`;
      return opt;
    }));
    if (chosen && !shops.some((o) => o.org_id === chosen)) {  // keep a choice the bundle no longer lists
      const opt = document.createElement("option");
      opt.value = chosen; opt.textContent = chosen;
      select.append(opt);
    }
    select.value = chosen;
  }
  function selectWorkshop(orgId) {
    const s = state();
    s.workshop = orgId || "";
    save(s);
    showWorkshops();
  }
  async function offlineVerdict(link) {
    const s = state();
    if (!s.bundle) return { verdict: "unknown", reasons: [{ severity: "critical", code: "no_bundle",
      message: "Offline and no trust bundle cached: nothing can be checked." }] };
    const bundle = await verifyBundle(s.bundle, await logKey());
    const reasons = [];
    const verdicts = [];
    if (new Date() >= new Date(bundle.expires_at)) {
      verdicts.push("unknown");
      reasons.push({ severity: "critical", code: "bundle_expired", message: "The trust bundle has expired." });
    }
    const owners = new Set(bundle.orgs.filter((o) => (o.gs1_prefixes || []).some((p) => matchesPrefix(link.gtin, p)))
      .map((o) => o.org_id));
    for (const g of bundle.grants) {
      if (g.kind === "commission" && owners.has(g.grantor) &&
          (!(g.gtin_prefixes || []).length || g.gtin_prefixes.some((p) => matchesPrefix(link.gtin, p)))) owners.add(g.grantee);
    }
    let signer = null;
    if (link.sig) {
      const message = enc.encode("partsledger/v1/part-id\n01" + link.gtin + "21" + link.serial);
      for (const org of bundle.orgs.filter((o) => owners.has(o.org_id))) {
        for (const k of org.keys) {
          if (await ed25519(b64(k.public_key), b64url(link.sig), message)) { signer = org.org_id; break; }
        }
        if (signer) break;
      }
    }
    if (signer) reasons.push({ severity: "info", code: "signature_valid", message: `Label signed by ${signer}.` });
    else if (!link.sig) { verdicts.push("unknown"); reasons.push({ severity: "warning", code: "signature_missing",
      message: "The label carries no signature (AI 8030)." }); }
    else { verdicts.push("suspect"); reasons.push({ severity: "critical", code: "signature_invalid",
      message: "The label's signature does not verify with any entitled org's key." }); }
    for (const r of bundle.recalls) {
      const hit = r.gtin === link.gtin && ((!(r.lots || []).length && !(r.serial_ranges || []).length &&
        !(r.serials || []).length) || (link.lot && (r.lots || []).includes(link.lot)) ||
        (r.serials || []).includes(link.serial) || (r.serial_ranges || []).some((x) => x[0].length === link.serial.length &&
          x[0] <= link.serial && link.serial <= x[1]));
      if (hit) { verdicts.push("recalled"); reasons.push({ severity: "critical", code: "recalled",
        message: `Recall campaign ${r.campaign_id}${r.reason ? ": " + r.reason : ""}.` }); }
    }
    const order = ["suspect", "retired", "recalled", "unknown", "genuine"];
    const verdict = order.find((v) => verdicts.includes(v)) || "genuine";
    const workshop = selectedWorkshop();
    const authorization = workshop ? offlineAuthorization(bundle, workshop, link.gtin, "install", rfc3339(new Date()))
      : null;
    return { verdict, reasons, authorization,
             part: { gtin: link.gtin, serial: link.serial, lot: link.lot, signed_by: signer },
             offline: true, bundle: { version: bundle.version, issued_at: bundle.issued_at } };
  }

  // ---------------------------------------------------------------- showing a verdict
  function render(data, link, proofText) {
    $("result").hidden = false;
    const v = $("verdict");
    v.dataset.verdict = data.verdict;
    v.textContent = data.verdict + (data.offline ? " (offline)" : "");
    const part = Object.assign({ gtin: link.gtin, serial: link.serial }, data.part || {});
    delete part.uri;
    if (data.state) part.state = data.state;
    if (data.commissioned_by) part.commissioned_by = data.commissioned_by.name || data.commissioned_by.org_id;
    if (data.custodian) part.custodian = data.custodian;
    if (data.signature) part.label_signature = data.signature.status +
      (data.signature.signed_by ? " (" + data.signature.signed_by + ")" : "");
    if (data.authorization) part.your_authorization = data.authorization.status;
    const facts = $("facts");
    facts.replaceChildren();
    for (const [k, val] of Object.entries(part)) {
      if (val === null || val === undefined || typeof val === "object") continue;
      const dt = document.createElement("dt"); dt.textContent = k.replace(/_/g, " ");
      const dd = document.createElement("dd"); dd.textContent = String(val);
      dd.dataset.fact = k;
      facts.append(dt, dd);
    }
    const reasons = $("reasons");
    reasons.replaceChildren(...(data.reasons || []).map((r) => {
      const li = document.createElement("li");
      li.className = r.severity || "";
      li.textContent = r.message || r.code;
      return li;
    }));
    const authz = $("authorization");
    authz.hidden = !data.authorization;
    authz.dataset.status = data.authorization ? data.authorization.status : "";
    authz.textContent = data.authorization ? `${data.authorization.workshop}: ` +
      (data.authorization.authorized ? "authorized" : "not authorized") +
      ` (${data.authorization.status}) \u2014 ${data.authorization.message}` : "";
    const history = data.history || data.story || (data.part && data.part.history) || [];
    $("story").replaceChildren(...history.map((h) => {
      const li = document.createElement("li");
      const summary = h.summary && typeof h.summary === "object"
        ? Object.entries(h.summary).filter(([, x]) => typeof x !== "object").slice(0, 4)
          .map(([k, x]) => `${k}=${x}`).join(", ") : (h.summary || h.message || "");
      li.textContent = [h.time || h.logged || "", h.type || h.event || "", h.org || h.org_id || "", summary]
        .filter(Boolean).join(" \u00b7 ");
      return li;
    }));
    $("proof").textContent = proofText || "";
    document.body.dataset.verdict = data.verdict;
  }

  async function check(text) {
    const link = parseLink(text);
    if (!link) { $("status").textContent = "Not a GS1 Digital Link of a serialised part: " + text; return; }
    $("status").textContent = `Checking ${link.gtin} / ${link.serial}\u2026`;
    let data = null, proofText = "";
    if (navigator.onLine) {
      try {
        const workshop = selectedWorkshop();
        const path = workshop ? link.path + (link.path.includes("?") ? "&" : "?") + "workshop=" +
          encodeURIComponent(workshop) : link.path;
        const res = await fetch(path, { headers: { Accept: "application/json" } });
        data = await res.json();
        if (!res.ok) data = { verdict: "unknown", reasons: [{ severity: "critical", code: data.code,
          message: data.detail || "the server refused the request" }] };
        else proofText = await checkProof(data);
      } catch (e) { data = null; }
    }
    if (data === null) data = await offlineVerdict(link);
    render(data, link, proofText);
    $("status").textContent = `Scanned ${link.gtin} / ${link.serial}`;
  }

  // ---------------------------------------------------------------- the camera
  async function detectorOrFallback() {
    const force = new URLSearchParams(location.search).get("decoder");
    if (force !== "jsqr" && "BarcodeDetector" in window) {
      try {
        const formats = await window.BarcodeDetector.getSupportedFormats();
        if (formats.includes("qr_code")) {
          const d = new window.BarcodeDetector({ formats: ["qr_code"] });
          $("decoder").textContent = "decoder: BarcodeDetector";
          return async (video) => { const r = await d.detect(video); return r.length ? r[0].rawValue : null; };
        }
      } catch (e) { /* fall through to jsQR */ }
    }
    $("decoder").textContent = "decoder: jsQR";
    const canvas = $("frame");
    const ctx = canvas.getContext("2d", { willReadFrequently: true });
    return async (video) => {
      if (!video.videoWidth) return null;
      canvas.width = video.videoWidth; canvas.height = video.videoHeight;
      ctx.drawImage(video, 0, 0);
      const img = ctx.getImageData(0, 0, canvas.width, canvas.height);
      const code = window.jsQR(img.data, img.width, img.height, { inversionAttempts: "dontInvert" });
      return code ? code.data : null;
    };
  }

  async function start() {
    try {
      stream = await navigator.mediaDevices.getUserMedia({ video: { facingMode: "environment" }, audio: false });
    } catch (e) { $("status").textContent = "No camera: " + e.message + ". Paste a URI below instead."; return; }
    const video = $("video");
    video.srcObject = stream;
    await video.play();
    $("start").hidden = true; $("stop").hidden = false;
    const decode = await detectorOrFallback();
    timer = setInterval(async () => {
      if (busy) return;
      busy = true;
      try {
        const text = await decode(video);
        if (text && text !== lastText) { lastText = text; await check(text); }
      } finally { busy = false; }
    }, 200);
  }
  function stop() {
    clearInterval(timer);
    if (stream) stream.getTracks().forEach((t) => t.stop());
    stream = null; $("start").hidden = false; $("stop").hidden = true;
  }

  function network() {
    const el = $("network");
    el.dataset.state = navigator.onLine ? "online" : "offline";
    el.textContent = navigator.onLine ? "online" : "offline";
  }

  $("start").addEventListener("click", start);
  $("stop").addEventListener("click", stop);
  $("refresh").addEventListener("click", () => refreshBundle().catch((e) => {
    $("bundle").textContent = "Trust bundle not refreshed: " + e.message; }));
  $("manual").addEventListener("submit", (e) => { e.preventDefault(); lastText = $("uri").value; check($("uri").value); });
  window.addEventListener("online", network);
  window.addEventListener("offline", network);
  $("workshop").addEventListener("change", (e) => selectWorkshop(e.target.value));
  network();
  showBundle();
  showWorkshops();
  if (navigator.onLine) refreshBundle().catch(() => {});
  window.partsledgerScanner = { check, checkProof, refreshBundle, selectWorkshop, start, stop };
  if (new URLSearchParams(location.search).get("autostart") === "1") start();
})();
