"""The human verification page a phone gets when it opens a part's QR link.

Plain server-rendered HTML with inline CSS: no JavaScript, no web fonts, no
CDN — it must load in a second on a weak connection and show the same facts
as the JSON verdict. The language is chosen by ``?lang=`` if given, else by
``Accept-Language`` (RFC 9110 §12.5.4 q-values), else English; a switch on the
page links to the other languages.
"""

from __future__ import annotations

from html import escape
from typing import Any
from urllib.parse import urlencode

LANGS = ("en", "zh")

TEXT: dict[str, dict[str, str]] = {
    "en": {
        "title": "Part verification",
        "genuine": "Genuine part", "unknown": "Unknown part", "suspect": "Suspect — do not fit",
        "recalled": "Recalled", "retired": "Retired — out of service",
        "genuine_hint": "Commissioned by the brand's authorized org; no recall or warning open.",
        "unknown_hint": "The ledger cannot confirm this part.",
        "suspect_hint": "Evidence says this label or part is not what it claims.",
        "recalled_hint": "An open recall campaign covers this part.",
        "retired_hint": "The ledger records this part as scrapped, collected or recycled.",
        "reasons": "Why", "part": "Part", "gtin": "GTIN", "serial": "Serial", "lot": "Lot",
        "maker": "Commissioned by", "state": "Current state", "custodian": "Held by",
        "installation": "Installation", "history": "History", "warranty": "Warranty", "flags": "Open flags",
        "recalls": "Recalls", "authorization": "Your workshop", "authorized": "Authorized",
        "not_authorized": "Not authorized", "grant": "grant", "proof": "Proof (for auditors)",
        "proof_hint": "Inclusion proof of the part's latest record against the signed checkpoint below. "
                      "Check it yourself with the log key from /v1/log/key.",
        "signature": "Label signature", "none": "none", "json": "Machine-readable verdict (JSON)",
        "checked": "Checked at",
    },
    "zh": {
        "title": "零件验证",
        "genuine": "正品零件", "unknown": "未知零件", "suspect": "可疑 — 请勿安装",
        "recalled": "已召回", "retired": "已退役 — 停止使用",
        "genuine_hint": "由品牌授权的机构登记；无召回，无警告。",
        "unknown_hint": "账本无法确认此零件。",
        "suspect_hint": "有证据表明此标签或零件与其声明不符。",
        "recalled_hint": "有一项进行中的召回涵盖此零件。",
        "retired_hint": "账本记录此零件已报废、回收或再利用。",
        "reasons": "原因", "part": "零件", "gtin": "GTIN", "serial": "序列号", "lot": "批号",
        "maker": "登记机构", "state": "当前状态", "custodian": "持有方",
        "installation": "安装信息", "history": "历史记录", "warranty": "保修", "flags": "未关闭的标记",
        "recalls": "召回", "authorization": "贵维修站", "authorized": "已授权",
        "not_authorized": "未授权", "grant": "授权", "proof": "证明（供审计）",
        "proof_hint": "此零件最新记录相对于下方已签名检查点的包含证明。可使用 /v1/log/key 的日志公钥自行验证。",
        "signature": "标签签名", "none": "无", "json": "机器可读结果 (JSON)",
        "checked": "检查时间",
    },
}

#: Reason messages per language (the JSON carries the English text; pages translate by code).
REASON_TEXT_ZH: dict[str, str] = {
    "not_commissioned": "账本中没有此 GTIN 和序列号的零件。",
    "signature_valid": "标签签名 (AI 8030) 经登记机构的密钥验证有效。",
    "signature_missing": "标签没有签名 (AI 8030)，无法离线验证。",
    "signature_invalid": "标签签名 (AI 8030) 验证失败：此标签并非由登记机构签发。",
    "signature_unknown_key": "没有任何有权使用此 GTIN 的机构密钥能验证此标签签名。",
    "key_compromised": "此零件由一个后来因泄露而被吊销的密钥签名。",
    "lot_mismatch": "标签上的批号与登记时记录的批号不一致。",
    "recalled": "有一项进行中的召回涵盖此零件。",
    "retired": "账本记录此零件已停止使用。",
    "installed": "此零件已记录为安装在车辆上。",
    "bundle_expired": "离线信任包已过期，可能缺少召回和吊销信息。",
}

COLORS = {"genuine": "#0a7d32", "unknown": "#5f6368", "suspect": "#b00020", "recalled": "#c25e00",
          "retired": "#6a1b9a"}


def choose_lang(query_lang: str | None, accept_language: str | None) -> str:
    """``?lang=`` wins; else the best-weighted supported Accept-Language; else English."""
    if query_lang in LANGS:
        return str(query_lang)
    best, best_q = "en", 0.0
    for item in (accept_language or "").split(","):
        tag, _, params = item.strip().partition(";")
        q = 1.0
        params = params.strip()
        if params.startswith("q="):
            try:
                q = float(params[2:])
            except ValueError:
                q = 0.0
        primary = tag.strip().lower().split("-")[0]
        if primary in LANGS and q > best_q:
            best, best_q = primary, q
    return best


def _dl(rows: list[tuple[str, str]]) -> str:
    return "<dl>" + "".join(f"<dt>{escape(k)}</dt><dd>{v}</dd>" for k, v in rows) + "</dl>"


def render_page(verdict: dict[str, Any], *, lang: str, self_path: str, query: dict[str, str]) -> str:
    """The verification page for ``verdict`` (a :class:`~api.scan_schemas.ScanVerdict` as JSON)."""
    t = TEXT[lang]
    name = verdict["verdict"]
    part = verdict["part"]
    switch = " · ".join(
        f'<a href="{escape(self_path)}?{escape(urlencode({**query, "lang": code}))}" hreflang="{code}"'
        f'{" aria-current=true" if code == lang else ""}>{label}</a>'
        for code, label in (("en", "English"), ("zh", "中文"))
    )
    def reason_text(reason: dict[str, Any]) -> str:
        if lang == "zh" and reason["code"] in REASON_TEXT_ZH:
            return REASON_TEXT_ZH[reason["code"]]
        return str(reason["message"])

    reasons = "".join(
        f'<li class="{escape(r["severity"])}">{escape(reason_text(r))} <code>{escape(r["code"])}</code></li>'
        for r in verdict["reasons"])
    maker = verdict.get("commissioned_by")
    facts = _dl([
        (t["gtin"], escape(part["gtin"])),
        (t["serial"], escape(part["serial"])),
        (t["lot"], escape(part.get("lot") or part.get("label_lot") or t["none"])),
        (t["maker"], escape(f'{maker["name"]} ({maker["org_id"]})') if maker else t["none"]),
        (t["state"], escape(verdict.get("state") or t["none"])),
        (t["custodian"], escape(verdict.get("custodian") or t["none"])),
        (t["signature"], escape(verdict["signature"]["status"])),
    ])
    sections = [f"<h2>{t['part']}</h2>{facts}"]
    auth = verdict.get("authorization")
    if auth:
        label = t["authorized"] if auth["authorized"] else t["not_authorized"]
        grant = f' — {t["grant"]} <code>{escape(auth["grant_id"])}</code>' if auth.get("grant_id") else ""
        sections.append(f'<h2>{t["authorization"]}</h2><p class="{"ok" if auth["authorized"] else "bad"}">'
                        f'<strong>{label}</strong> ({escape(auth["workshop"])}, {escape(auth["activity"])}){grant}'
                        f'<br>{escape(auth["message"])}</p>')
    if verdict.get("installation"):
        inst = verdict["installation"]
        sections.append(f"<h2>{t['installation']}</h2>" + _dl([(escape(str(k)), escape(str(v)))
                                                                 for k, v in inst.items()]))
    if verdict["recalls"]:
        sections.append(f"<h2>{t['recalls']}</h2><ul>" + "".join(
            f"<li><code>{escape(r['campaign_id'])}</code> {escape(r.get('reason') or '')}</li>"
            for r in verdict["recalls"]) + "</ul>")
    if verdict["open_flags"]:
        sections.append(f"<h2>{t['flags']}</h2><ul>" + "".join(
            f"<li><code>{escape(f['kind'])}</code> {escape(f['message'])}</li>" for f in verdict["open_flags"])
            + "</ul>")
    warranty = verdict["warranty"]
    sections.append(f"<h2>{t['warranty']}</h2><p>{escape(warranty['status'])}"
                    + (f" ({len(warranty['claims'])})" if warranty["claims"] else "") + "</p>")
    if verdict["history"]:
        sections.append(f"<h2>{t['history']}</h2><ol class=history>" + "".join(
            f"<li><time>{escape(h['logged'])}</time> <strong>{escape(h['type'])}</strong> {escape(h['org'])}"
            f" → {escape(h['state_after'])}"
            + (f" ({escape(h['authorization'])})" if h.get("authorization") else "")
            + f" <small>#{h['seq']}</small></li>" for h in verdict["history"]) + "</ol>")
    proof = verdict.get("proof")
    if proof:
        sections.append(
            f"<details><summary>{t['proof']}</summary><p>{t['proof_hint']}</p>"
            f"<p>seq {proof['seq']} / tree {proof['tree_size']}</p>"
            f"<pre>{escape(proof['checkpoint'])}</pre>"
            f"<pre>{escape(chr(10).join(proof['inclusion_proof']))}</pre></details>")
    json_href = f"{self_path}?{urlencode({**query, 'format': 'json'})}"
    return f"""<!doctype html>
<html lang="{lang}"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex">
<title>{t['title']} · {escape(part['gtin'])}/{escape(part['serial'])}</title>
<style>
body{{font:16px/1.45 system-ui,-apple-system,"PingFang SC","Noto Sans CJK SC",sans-serif;margin:0;color:#202124}}
main{{max-width:40rem;margin:0 auto;padding:1rem}}
.banner{{color:#fff;background:{COLORS[name]};padding:1.2rem 1rem;border-radius:.6rem}}
.banner h1{{margin:0;font-size:1.6rem}} .banner p{{margin:.3rem 0 0}}
nav{{text-align:right;font-size:.9rem;margin-bottom:.6rem}}
li.critical{{color:#b00020}} li.warning{{color:#8a5a00}} .ok{{color:#0a7d32}} .bad{{color:#b00020}}
dl{{display:grid;grid-template-columns:max-content 1fr;gap:.2rem 1rem}} dt{{color:#5f6368}} dd{{margin:0}}
pre{{white-space:pre-wrap;word-break:break-all;font-size:.75rem;background:#f1f3f4;padding:.5rem}}
code{{font-size:.85em}} h2{{font-size:1.1rem;margin-top:1.4rem}}
</style></head>
<body><main>
<nav>{switch}</nav>
<section class="banner verdict-{name}" data-verdict="{name}"><h1>{t[name]}</h1><p>{t[name + '_hint']}</p></section>
<h2>{t['reasons']}</h2><ul class=reasons>{reasons}</ul>
{''.join(sections)}
<p><small>{t['checked']} {escape(verdict['checked_at'])} · <a href="{escape(json_href)}">{t['json']}</a></small></p>
</main></body></html>
"""


__all__ = ["LANGS", "choose_lang", "render_page"]
