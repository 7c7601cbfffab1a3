"""Problem codes of errors the HTTP layer raises itself (routing), mapped in api/problems.py."""

from __future__ import annotations

from fastapi.testclient import TestClient

from api.app import create_app
from tests.api.test_log_api import assert_problem


def test_wrong_method_is_405_method_not_allowed_with_allow(client: TestClient) -> None:
    for method, path, allowed in (("POST", "/v1/log/checkpoint", "GET"), ("DELETE", "/v1/entries", "POST"),
                                  ("PUT", "/v1/vehicles/erasure", "POST")):
        response = client.request(method, path)
        problem = assert_problem(response, 405, "method_not_allowed")
        assert problem["type"] == "urn:partsledger:problem:method_not_allowed"
        assert problem["title"] == "Method Not Allowed"
        assert response.headers["allow"] == allowed
    assert_problem(client.get("/v1/no-such-thing"), 404, "not_found")


def test_problem_codes_are_documented_in_openapi() -> None:
    code = create_app().openapi()["components"]["schemas"]["Problem"]["properties"]["code"]
    assert "405 `method_not_allowed`" in code["description"]
    assert "`bad_part_sig`" in code["description"] and "`wrong_passphrase`" not in code["description"]
