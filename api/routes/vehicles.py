"""Vehicle pseudonyms and their erasure (SPEC §4.7): the VIN goes to the vault, never to the log.

``POST /v1/vehicles/pseudonym {"vin"}`` returns the vehicle's pseudonym
(creating its random key on first use); ``POST /v1/vehicles/erasure {"vin"}``
deletes the key, unlinking the VIN from its history forever while every
record and proof still verifies. VINs travel only in request bodies, never
in URLs (which end up in access logs). These two routes are for the
operator's own clients (workshop apps through the operator's gateway); the
service has no user accounts, so restrict them at the network edge in
production (docs/operations.md).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field

from api.body import read_json
from api.deps import api_settings, get_ledger
from api.problems import problem_responses
from ledger.errors import InvalidInput
from ledger.privacy import VehicleVault

router = APIRouter(prefix="/v1/vehicles", tags=["vehicles"])
MAX_BODY = 1024


class VinIn(BaseModel):
    vin: str = Field(description="ISO 3779 VIN (17 characters, no I, O or Q); spaces and dashes are ignored")


class PseudonymOut(BaseModel):
    pseudonym: str = Field(description="veh-<52 base32 characters>: what entries name the vehicle by")


class ErasureOut(BaseModel):
    erased: str = Field(description="the pseudonym that can no longer be linked to the VIN")


def _vault(request: Request) -> VehicleVault:
    vault: VehicleVault | None = getattr(request.app.state, "vehicle_vault", None)
    if vault is None:
        vault = VehicleVault.open(get_ledger(request).db, api_settings(request).ledger.data_dir)
        request.app.state.vehicle_vault = vault
    return vault


async def _vin(request: Request) -> str:
    data: Any = await read_json(request, MAX_BODY)
    if not isinstance(data, dict) or set(data) != {"vin"} or not isinstance(data["vin"], str):
        raise InvalidInput('expected {"vin": "<17-character VIN>"}', code="invalid_field", field="vin")
    return str(data["vin"])


_BODY = {"requestBody": {"required": True, "content": {"application/json": {
    "schema": {"$ref": "#/components/schemas/VinIn"}}}}}


@router.post("/pseudonym", response_model=PseudonymOut, summary="The pseudonym of a VIN (the VIN stays off the log)",
             openapi_extra=_BODY, responses=problem_responses(400, 413, 422))
async def pseudonym(request: Request) -> dict[str, str]:
    vin = await _vin(request)
    return {"pseudonym": await run_in_threadpool(_vault(request).pseudonym, vin)}


@router.post("/erasure", response_model=ErasureOut, summary="Erase a VIN's link to its pseudonym, forever",
             openapi_extra=_BODY, responses=problem_responses(400, 404, 413, 422))
async def erasure(request: Request) -> dict[str, str]:
    vin = await _vin(request)
    return {"erased": await run_in_threadpool(_vault(request).erase, vin)}


__all__ = ["VinIn", "router"]
