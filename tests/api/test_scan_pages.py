"""Language choice and escaping of the verification page."""

from __future__ import annotations

import pytest

from api.pages import choose_lang, render_page


@pytest.mark.parametrize(("query", "header", "expected"), [
    (None, None, "en"),
    (None, "zh-CN,zh;q=0.9,en;q=0.8", "zh"),
    (None, "en-US,en;q=0.9,zh;q=0.8", "en"),
    (None, "fr-FR,fr;q=0.9,zh-TW;q=0.5", "zh"),  # the best *supported* language
    (None, "zh;q=0.2,en;q=0.3", "en"),
    (None, "zh;q=bogus,en;q=0.1", "en"),
    ("en", "zh-CN", "en"),
    ("zh", "en", "zh"),
    ("fr", "zh", "zh"),
])
def test_choose_lang(query: str | None, header: str | None, expected: str) -> None:
    assert choose_lang(query, header) == expected


def test_page_escapes_everything_from_the_ledger() -> None:
    verdict = {
        "verdict": "suspect", "reasons": [{"code": "flag", "severity": "critical", "message": "<script>x</script>",
                                           "details": {}}],
        "part": {"gtin": "06901234000016", "serial": "A<&>\"'", "lot": None, "label_lot": None, "uri": "u"},
        "signature": {"status": "invalid", "signed_by": None},
        "commissioned_by": {"org_id": "o", "name": "<b>Evil</b>", "kind": "oem", "country": None},
        "state": "received", "custodian": None, "installation": None, "history": [],
        "warranty": {"status": "none", "claims": []}, "open_flags": [], "recalls": [], "authorization": None,
        "proof": None, "checked_at": "2026-11-28T12:00:00Z",
    }
    page = render_page(verdict, lang="en", self_path="/01/06901234000016/21/A", query={"10": "<x>"})
    assert "<script>" not in page and "<b>Evil</b>" not in page
    assert "&lt;script&gt;" in page and "A&lt;&amp;&gt;&quot;&#x27;" in page
    assert "Suspect — do not fit" in page
