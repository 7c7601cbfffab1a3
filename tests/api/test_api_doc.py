"""docs/api.md is generated from the app's OpenAPI document and must be current."""

from __future__ import annotations

import json
from pathlib import Path

from api.app import create_app
from api.openapi_md import render

DOC = Path(__file__).resolve().parents[2] / "docs" / "api.md"


def test_committed_api_reference_is_current() -> None:
    expected = render(json.loads(json.dumps(create_app().openapi())))
    assert DOC.read_text(encoding="utf-8") == expected, (
        "docs/api.md is stale: regenerate it with `python -m api.openapi_md > docs/api.md`")


def test_reference_names_every_route_and_problem_status() -> None:
    spec = create_app().openapi()
    text = DOC.read_text(encoding="utf-8")
    for path, item in spec["paths"].items():
        for method in item:
            assert f"`{method.upper()} {path}`" in text
    assert "| 429 |" in text and "| 422 |" in text
