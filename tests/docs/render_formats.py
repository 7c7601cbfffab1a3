"""Fill docs/formats.md's worked example from the code: ``python -m tests.docs.render_formats``."""

from __future__ import annotations

import re

from tests.docs.test_formats_doc import DOC, TEMPLATE_MARK, render

TEMPLATE = DOC.with_suffix(".md.in")

if __name__ == "__main__":
    source = TEMPLATE.read_text(encoding="utf-8")
    DOC.write_text(render(source), encoding="utf-8")
    assert not re.search(r"\{[a-z_0-9]+\}", DOC.read_text(encoding="utf-8").split(TEMPLATE_MARK, 1)[1])
