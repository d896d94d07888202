"""Client of the ai-responder's internal API: the operators' copilot asks it for a suggested
reply to the customer's latest message(s). The suggestion is only text for the operator's
composer: nothing is posted to the conversation."""

from __future__ import annotations

import httpx
from pydantic import ValidationError

from contracts.common import Sender
from contracts.readapi import SuggestionRequest, SuggestionView, WidgetMessage
from servicekit.http import ApiError
from servicekit.logs import get_logger

log = get_logger(__name__)

MAX_QUESTION = 4000


def latest_question(messages: list[WidgetMessage]) -> str | None:
    """The customer's latest message(s): the last run of customer messages (system notices in
    between are skipped), oldest first, joined by lines; None when the customer has written nothing."""
    run: list[str] = []
    for message in reversed(messages):
        if message.sender == Sender.CUSTOMER:
            run.append(message.text)
        elif message.sender != Sender.SYSTEM and run:
            break
    if not run:
        return None
    return "\n".join(reversed(run))[-MAX_QUESTION:].strip() or None


class CopilotClient:
    def __init__(self, client: httpx.AsyncClient) -> None:
        self._client = client

    async def suggest(self, request: SuggestionRequest) -> SuggestionView:
        try:
            response = await self._client.post("/internal/suggestions", json=request.model_dump(mode="json"))
        except httpx.HTTPError as error:
            log.warning("ai-responder unreachable", error=str(error))
            raise ApiError(503, "unavailable", "the assistant is unreachable now; retry") from error
        if response.status_code != 200:
            log.warning("ai-responder failed", status=response.status_code, body=response.text[:500])
            raise ApiError(502, "upstream_error", f"the assistant answered {response.status_code}")
        try:
            return SuggestionView.model_validate_json(response.content)
        except ValidationError as error:
            log.warning("ai-responder answered an unexpected shape", error=str(error))
            raise ApiError(502, "upstream_error", "the assistant answered an unexpected body") from error
