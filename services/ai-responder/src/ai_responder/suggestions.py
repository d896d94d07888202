"""The operators' copilot: `POST /internal/suggestions` answers a customer's latest message(s)
exactly as the assistant answers customers (same knowledge base, retrieval or LLM mode, same
cache), and returns the reply as text with its sources and confidence. It posts nothing: the
operator edits and sends it, or not. Internal: the gateway has checked the operator's tenant and
role, and reads the question from the conversation service."""

from __future__ import annotations

from fastapi import APIRouter, Request

from ai_responder.answering import Question
from ai_responder.assistant import Assistant
from ai_responder.store import conversation_locale
from contracts.readapi import SuggestionRequest, SuggestionView

router = APIRouter(prefix="/internal", tags=["internal"])


@router.post("/suggestions", response_model=SuggestionView, summary="A suggested reply for an operator")
async def suggest(body: SuggestionRequest, request: Request) -> SuggestionView:
    assistant: Assistant = request.app.state.assistant
    async with assistant.sessions() as session:
        locale = await conversation_locale(session, body.tenant_id, body.conversation_id)
    [answer] = await assistant.answer_all([Question(tenant_id=body.tenant_id, text=body.question, language=locale)])
    return SuggestionView(
        conversation_id=body.conversation_id,
        question=body.question,
        text=answer.text,
        language=answer.language,
        confidence=answer.confidence,
        mode=answer.mode.value,
        sources=answer.sources,
        smart_actions=answer.smart_actions,
        handoff_reason=answer.handoff_reason.value if answer.handoff_reason else None,
    )
