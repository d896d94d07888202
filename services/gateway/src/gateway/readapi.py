"""Client of the conversation service's read API (the gateway never reads its tables)."""

from __future__ import annotations

import uuid

import httpx
from pydantic import ValidationError

from contracts.readapi import HistoryView, WidgetMessage
from servicekit.http import ApiError
from servicekit.logs import get_logger

log = get_logger(__name__)


# The conversation service's history, read as the widget may see it (its operator ids left out).
Transcript = HistoryView[WidgetMessage]


class ConversationReader:
    def __init__(self, client: httpx.AsyncClient) -> None:
        self._client = client

    async def messages(self, conversation_id: uuid.UUID, after: int = 0) -> Transcript | None:
        """The messages with seq > `after`, in order; None while the conversation is not materialised."""
        try:
            response = await self._client.get(
                f"/internal/conversations/{conversation_id}/messages", params={"after": after}
            )
        except httpx.HTTPError as error:
            log.warning("conversation read API unreachable", error=str(error))
            raise ApiError(503, "unavailable", "the conversation history is unavailable now; retry") from error
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            log.warning("conversation read API failed", status=response.status_code, body=response.text[:500])
            raise ApiError(502, "upstream_error", f"the conversation service answered {response.status_code}")
        try:
            transcript = Transcript.model_validate_json(response.content)
        except ValidationError as error:
            log.warning("conversation read API answered an unexpected shape", error=str(error))
            raise ApiError(502, "upstream_error", "the conversation service answered an unexpected body") from error
        transcript.messages.sort(key=lambda message: message.seq)
        return transcript
