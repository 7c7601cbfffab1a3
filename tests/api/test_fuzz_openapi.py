"""Schema-based fuzzing of the whole API with schemathesis, in process (SPEC §8 Security).

A bounded run: every operation of the app's own OpenAPI document gets a few
dozen generated requests (valid and invalid) against a real ledger holding a
small world. Every response must be a non-5xx and must match what the
document promises: status code, content type, headers and body schema.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Ok
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from api.app import create_app
from api.settings import ApiLimits, ApiSettings
from ledger.log import Ledger
from ledger.service import LedgerSettings
from tests.support import World

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_headers_conformance,
          response_schema_conformance]
#: The run is bounded by examples, not by the clock: 40 derandomised examples per operation, every time.
EXAMPLES_PER_OPERATION = 40
#: Failures found by this run, tolerated only with exactly this finding (and reported). An entry that no longer
#: fails makes the test fail, so the list never goes stale.
KNOWN_ISSUES: dict[str, str] = {}


def test_no_5xx_and_every_response_matches_the_schema(ledger: Ledger, world: World, tmp_path: Path) -> None:
    world.register("shenzhen-ev", "oem", gs1_prefixes=["6901234"])
    world.register("oslo-ws", "workshop")
    settings_ = ApiSettings(ledger=LedgerSettings(data_dir=tmp_path / "api", db_url=ledger.db.url,
                                                  origin=ledger.origin),
                            limits=ApiLimits(scan_rate_per_minute=10**6, scan_burst=10**6, max_page=50))
    app = create_app(settings_, ledger=ledger)
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    operations = []
    for result in schema.get_all_operations():
        assert isinstance(result, Ok), result  # the document itself must be valid OpenAPI
        operations.append(result.ok())
    assert len(operations) >= 10
    exercised = 0
    failures: list[str] = []
    still_failing: set[str] = set()
    for operation in operations:
        strategy = operation.as_strategy()

        @settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, database=None, derandomize=True,
                  phases=[Phase.explicit, Phase.generate],
                  suppress_health_check=list(HealthCheck))
        @given(case=strategy)
        def run(case: schemathesis.Case[Any]) -> None:
            case.call_and_validate(checks=CHECKS)

        try:
            run()
        except (Exception, BaseExceptionGroup) as exc:  # collect every operation's failure, then report them all
            label = f"{operation.method.upper()} {operation.path}"
            known = KNOWN_ISSUES.get(label)
            text = str(exc)
            findings = set(re.findall(r"^- (ST\d{3} [^\n]+)", text, re.M))
            if known is None or findings != {known}:
                failures.append(f"{label}: {text[:1500]}")
            else:
                still_failing.add(label)
        exercised += 1
    assert exercised == len(operations)
    assert not failures, "\n\n".join(failures)
    assert still_failing == set(KNOWN_ISSUES), f"no longer failing, remove from KNOWN_ISSUES: " \
        f"{sorted(set(KNOWN_ISSUES) - still_failing)}"
