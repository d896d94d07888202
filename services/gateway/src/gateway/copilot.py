"""Client of the ai-responder's internal API: the operators' copilot asks it for a suggested
reply to the customer's latest message(s). The suggestion is only text for the operator's
composer: nothing is posted to the conversation."""

from __future__ import annotations

from contracts.common import Sender
from contracts.readapi import SuggestionRequest, SuggestionView, WidgetMessage
from gateway.internal import InternalApi

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
    def __init__(self, api: InternalApi) -> None:
        self._api = api

    async def suggest(self, request: SuggestionRequest) -> SuggestionView:
        response = await self._api.request("POST", "/internal/suggestions", json=request.model_dump(mode="json"))
        return self._api.parse(SuggestionView, response)
