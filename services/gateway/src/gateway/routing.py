"""Client of the routing service's internal API (the waiting queue, the operators' presence and
load, and taking a conversation).

Routing is another service: its answers are read as the `contracts.readapi` bodies, its refusals
(`409 already_taken`, `404 not_waiting`) passed on to the operator as they are."""

from __future__ import annotations

import uuid
from typing import TypeVar

import httpx
from pydantic import BaseModel, RootModel, ValidationError

from contracts.readapi import OperatorView, QueueView, TakeRequest, TakeResult
from servicekit.http import ApiError
from servicekit.logs import get_logger

log = get_logger(__name__)

ViewT = TypeVar("ViewT", bound=BaseModel)
# Refusals of routing that mean something to the operator, passed on with their code.
PASSED_ON = {404, 409}


class OperatorList(RootModel[list[OperatorView]]):
    """`GET /internal/operators?tenant_id=T`: a JSON list."""


class RoutingClient:
    def __init__(self, client: httpx.AsyncClient) -> None:
        self._client = client

    async def queue(self, tenant_id: str) -> QueueView:
        return await self._call(QueueView, "GET", "/internal/queue", params={"tenant_id": tenant_id})

    async def operators(self, tenant_id: str) -> list[OperatorView]:
        """The operators routing has heard from, with presence and load."""
        return (await self._call(OperatorList, "GET", "/internal/operators", params={"tenant_id": tenant_id})).root

    async def take(self, conversation_id: uuid.UUID, request: TakeRequest) -> TakeResult:
        return await self._call(
            TakeResult, "POST", f"/internal/conversations/{conversation_id}/take", json=request.model_dump()
        )

    async def _call(self, model: type[ViewT], method: str, path: str, **options: object) -> ViewT:
        try:
            response = await self._client.request(method, path, **options)  # type: ignore[arg-type]
        except httpx.HTTPError as error:
            log.warning("routing unreachable", error=str(error))
            raise ApiError(503, "unavailable", "routing is unreachable now; retry") from error
        if response.status_code in PASSED_ON:
            code, message = _error_of(response)
            raise ApiError(response.status_code, code, message)
        if response.status_code != 200:
            log.warning("routing failed", status=response.status_code, body=response.text[:500])
            raise ApiError(502, "upstream_error", f"routing answered {response.status_code}")
        try:
            return model.model_validate_json(response.content)
        except ValidationError as error:
            log.warning("routing answered an unexpected shape", error=str(error))
            raise ApiError(502, "upstream_error", "routing answered an unexpected body") from error


def _error_of(response: httpx.Response) -> tuple[str, str]:
    """The `{error: {code, message}}` of a refusal; a body of another shape keeps the status's meaning."""
    fallback = ("already_taken", "another operator has this conversation")
    if response.status_code == 404:
        fallback = ("not_waiting", "this conversation is neither waiting nor offered")
    try:
        error = response.json()["error"]
        return str(error["code"])[:60], str(error.get("message") or fallback[1])[:500]
    except (ValueError, KeyError, TypeError):
        return fallback
