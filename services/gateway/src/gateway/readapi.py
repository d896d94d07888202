"""Client of the conversation service's read API (the gateway never reads its tables)."""

from __future__ import annotations

import uuid
from typing import TypeVar

import httpx
from pydantic import BaseModel, ValidationError

from contracts.common import ConversationStatus
from contracts.readapi import (
    ConversationListView,
    ConversationView,
    HandoverSummaryView,
    HistoryView,
    NotesView,
    WidgetMessage,
)
from servicekit.http import ApiError
from servicekit.logs import get_logger

log = get_logger(__name__)


# The conversation service's history, read as the widget may see it (its operator ids left out).
Transcript = HistoryView[WidgetMessage]
ViewT = TypeVar("ViewT", bound=BaseModel)


class ConversationReader:
    def __init__(self, client: httpx.AsyncClient) -> None:
        self._client = client

    async def conversation(self, conversation_id: uuid.UUID) -> ConversationView | None:
        """The conversation without its messages; None when the conversation service has none."""
        response = await self._get(f"/internal/conversations/{conversation_id}")
        if response.status_code == 404:
            return None
        return self._parse(ConversationView, response)

    async def conversations(
        self, tenant_id: str, *, status: ConversationStatus | None, operator_id: str | None, limit: int
    ) -> ConversationListView:
        """The tenant's conversations, newest change first, narrowed by status and operator (both)."""
        params: dict[str, str | int] = {"tenant_id": tenant_id, "limit": limit}
        if status is not None:
            params["status"] = status.value
        if operator_id is not None:
            params["operator_id"] = operator_id
        return self._parse(ConversationListView, await self._get("/internal/conversations", params))

    async def notes(self, conversation_id: uuid.UUID) -> NotesView:
        """The internal notes (operators only: the widget's reads never include them)."""
        return self._parse(NotesView, await self._get(f"/internal/conversations/{conversation_id}/notes"))

    async def summary(self, conversation_id: uuid.UUID) -> HandoverSummaryView:
        """The handover summary of the AI part of the conversation, for the operator taking over."""
        return self._parse(HandoverSummaryView, await self._get(f"/internal/conversations/{conversation_id}/summary"))

    async def _get(self, path: str, params: dict[str, str | int] | None = None) -> httpx.Response:
        try:
            return await self._client.get(path, params=params)
        except httpx.HTTPError as error:
            log.warning("conversation read API unreachable", error=str(error))
            raise ApiError(503, "unavailable", "the conversation service is unreachable now; retry") from error

    @staticmethod
    def _parse(model: type[ViewT], response: httpx.Response) -> ViewT:
        if response.status_code != 200:
            log.warning("conversation read API failed", status=response.status_code, body=response.text[:500])
            raise ApiError(502, "upstream_error", f"the conversation service answered {response.status_code}")
        try:
            return model.model_validate_json(response.content)
        except ValidationError as error:
            log.warning("conversation read API answered an unexpected shape", error=str(error))
            raise ApiError(502, "upstream_error", "the conversation service answered an unexpected body") from error

    async def messages(self, conversation_id: uuid.UUID, after: int = 0) -> Transcript | None:
        """The messages with seq > `after`, in order; None while the conversation is not materialised."""
        response = await self._get(f"/internal/conversations/{conversation_id}/messages", params={"after": after})
        if response.status_code == 404:
            return None
        transcript = self._parse(Transcript, response)
        transcript.messages.sort(key=lambda message: message.seq)
        return transcript
