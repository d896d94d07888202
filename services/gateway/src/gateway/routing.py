"""Client of the routing service's internal API (the waiting queue, the operators' presence and
load, and taking a conversation).

Routing is another service: its answers are read as the `contracts.readapi` bodies, its refusals
(`409 already_taken`, `404 not_waiting`) passed on to the operator as they are."""

from __future__ import annotations

import uuid
from typing import Any

from pydantic import RootModel

from contracts.readapi import OperatorView, QueueView, TakeRequest, TakeResult
from gateway.internal import InternalApi, InternalResponse, ViewT
from servicekit.http import ApiError

# Refusals of routing that mean something to the operator, passed on with their code.
PASSED_ON = {404, 409}


class OperatorList(RootModel[list[OperatorView]]):
    """`GET /internal/operators?tenant_id=T`: a JSON list."""


class RoutingClient:
    def __init__(self, api: InternalApi) -> None:
        self._api = api

    async def queue(self, tenant_id: str) -> QueueView:
        return await self._call(QueueView, "GET", "/internal/queue", params={"tenant_id": tenant_id})

    async def operators(self, tenant_id: str) -> list[OperatorView]:
        """The operators routing has heard from, with presence and load."""
        return (await self._call(OperatorList, "GET", "/internal/operators", params={"tenant_id": tenant_id})).root

    async def take(self, conversation_id: uuid.UUID, request: TakeRequest) -> TakeResult:
        return await self._call(
            TakeResult, "POST", f"/internal/conversations/{conversation_id}/take", json=request.model_dump(mode="json")
        )

    async def _call(self, model: type[ViewT], method: str, path: str, **options: Any) -> ViewT:
        response = await self._api.request(method, path, **options)
        if response.status in PASSED_ON:
            code, message = _error_of(response)
            raise ApiError(response.status, code, message)
        return self._api.parse(model, response)


def _error_of(response: InternalResponse) -> tuple[str, str]:
    """The `{error: {code, message}}` of a refusal; a body of another shape keeps the status's meaning."""
    fallback = ("already_taken", "another operator has this conversation")
    if response.status == 404:
        fallback = ("not_waiting", "this conversation is neither waiting nor offered")
    try:
        error = response.json()["error"]
        return str(error["code"])[:60], str(error.get("message") or fallback[1])[:500]
    except (ValueError, KeyError, TypeError):
        return fallback
