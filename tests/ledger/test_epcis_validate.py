"""The validator is wired right: GS1's 47 examples pass, the 15 invalid capture documents fail with pointers."""

from __future__ import annotations

from pathlib import Path

import pytest

from ledger.epcis.validate import SCHEMA_ENV, EpcisValidator, SchemaUnavailable, default_schema_path, load_validator
from tests.ledger.epcis_files import EXAMPLES, INVALID, SCHEMA, load

# What each invalid document gets wrong, as the validator must name it.
EXPECTED = {
    "Combination_of_events_with_missing_mandatory_fields.json": "'action' is a required property",
    "Combination_of_multiple_invalid_fields.json": "'transforming'",
    "Combination_of_non_standard_bizStep_and_disposition.json": "'in_transport'",
    "EPCISDocument_without_context.json": "'@context' is a required property",
    "ObjectEvent_with_ilmd_field_without_namespace.json": "'materialType' is not a valid uri",
    "ObjectEvent_with_invalid_action.json": "'CREATE' is not one of OBSERVE, ADD, DELETE",
    "ObjectEvent_with_invalid_certificationInfo.json": "certificationInfo/0",
    "ObjectEvent_with_invalid_eventTime_format.json": "'22-07-2026' is not a valid date-time",
    "ObjectEvent_with_non_standard_bizStep.json": "/bizStep: 'transforming'",
    "ObjectEvent_with_non_standard_bizStep_in_second_event.json": "eventList/1/bizStep",
    "ObjectEvent_with_non_standard_disposition.json": "/disposition: 'in_transport'",
    "ObjectEvent_with_quantity_as_text.json": "'twenty' is not of type number",
    "ObjectEvent_with_unknown_field_in_quantityList.json": "'weight' was unexpected",
    "ObjectEvent_without_action_and_eventTime.json": "'eventTime' is a required property",
    "ObjectEvent_without_identifier_list.json": "/epcisBody/eventList/0",
}


@pytest.fixture(scope="module")
def validator() -> EpcisValidator:
    return load_validator(SCHEMA)


def test_reference_files_are_all_there() -> None:
    assert len(EXAMPLES) == 47
    assert len(INVALID) == 15
    assert set(EXPECTED) == {p.name for p in INVALID}


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_official_examples_validate(validator: EpcisValidator, path: Path) -> None:
    assert validator.problems(load(path)) == []


@pytest.mark.parametrize("path", INVALID, ids=lambda p: p.name)
def test_invalid_documents_are_named(validator: EpcisValidator, path: Path) -> None:
    problems = validator.problems(load(path))
    assert problems, f"{path.name} passed validation"
    assert any(EXPECTED[path.name] in p.message for p in problems), [p.message for p in problems]
    for problem in problems:
        assert len(problem.message) < 300  # one line, not a dump of the event


def test_formats_are_checked(validator: EpcisValidator) -> None:
    doc = load(EXAMPLES[0])
    doc["creationDate"] = "yesterday"
    assert any("date-time" in p.message for p in validator.problems(doc))


def test_schema_location_is_configurable(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(SCHEMA_ENV, str(tmp_path / "nowhere.json"))
    assert default_schema_path() == tmp_path / "nowhere.json"
    with pytest.raises(SchemaUnavailable, match=SCHEMA_ENV):
        load_validator()
    (tmp_path / "bad.json").write_text("not json")
    with pytest.raises(SchemaUnavailable, match="not JSON"):
        load_validator(tmp_path / "bad.json")
    monkeypatch.delenv(SCHEMA_ENV)
    assert default_schema_path() == SCHEMA
