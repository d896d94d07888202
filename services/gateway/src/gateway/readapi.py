"""Client of the conversation service's read API (the gateway never reads its tables)."""

from __future__ import annotations

import uuid

from contracts.common import ConversationStatus
from contracts.readapi import (
    ConversationListView,
    ConversationView,
    HandoverSummaryView,
    HistoryView,
    NotesView,
    WidgetMessage,
)
from gateway.internal import InternalApi, InternalResponse

# The conversation service's history, read as the widget may see it (its operator ids left out).
Transcript = HistoryView[WidgetMessage]


class ConversationReader:
    def __init__(self, api: InternalApi) -> None:
        self._api = api

    async def conversation(self, conversation_id: uuid.UUID) -> ConversationView | None:
        """The conversation without its messages; None when the conversation service has none."""
        response = await self._get(f"/internal/conversations/{conversation_id}")
        if response.status == 404:
            return None
        return self._api.parse(ConversationView, response)

    async def conversations(
        self, tenant_id: str, *, status: ConversationStatus | None, operator_id: str | None, limit: int
    ) -> ConversationListView:
        """The tenant's conversations, newest change first, narrowed by status and operator (both)."""
        params: dict[str, str | int] = {"tenant_id": tenant_id, "limit": limit}
        if status is not None:
            params["status"] = status.value
        if operator_id is not None:
            params["operator_id"] = operator_id
        return self._api.parse(ConversationListView, await self._get("/internal/conversations", params))

    async def notes(self, conversation_id: uuid.UUID) -> NotesView:
        """The internal notes (operators only: the widget's reads never include them)."""
        return self._api.parse(NotesView, await self._get(f"/internal/conversations/{conversation_id}/notes"))

    async def summary(self, conversation_id: uuid.UUID) -> HandoverSummaryView:
        """The handover summary of the AI part of the conversation, for the operator taking over."""
        return self._api.parse(
            HandoverSummaryView, await self._get(f"/internal/conversations/{conversation_id}/summary")
        )

    async def _get(self, path: str, params: dict[str, str | int] | None = None) -> InternalResponse:
        return await self._api.request("GET", path, params=params)

    async def messages(self, conversation_id: uuid.UUID, after: int = 0) -> Transcript | None:
        """The messages with seq > `after`, in order; None while the conversation is not materialised."""
        response = await self._get(f"/internal/conversations/{conversation_id}/messages", params={"after": after})
        if response.status == 404:
            return None
        transcript = self._api.parse(Transcript, response)
        transcript.messages.sort(key=lambda message: message.seq)
        return transcript
