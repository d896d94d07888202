"""The operators' copilot: `POST /internal/suggestions` answers a customer's latest message(s)
exactly as the assistant answers customers (same knowledge base, retrieval or LLM mode, same
cache, the conversation's earlier messages for follow-ups), and returns the reply as text with its
sources and confidence. It posts nothing: the operator edits and sends it, or not. Internal: the
gateway has checked the operator's tenant and role, and reads the question from the conversation
service.

When the customer asked for a person, the assistant's answer would be its offer to call one, which
is no reply for the person already there: the suggestion is then a greeting that takes up what the
customer wanted, answered from the knowledge base (`TenantKnowledge.wanted_from_a_person`), or no
suggestion (empty text, `handoff_reason` `customer_request`: the dashboard's "would have offered an
operator" note) when the knowledge base does not answer it or nothing was asked. Likewise a message
the assistant would answer with an apology or a note and the offer (upset, a sensitive topic, a
question it is unsure of): the suggestion is the knowledge base's answer without them, its reason
kept for that note, or no suggestion when the knowledge base does not answer it."""

from __future__ import annotations

from collections.abc import Sequence

from fastapi import APIRouter, Request

from ai_responder.answering import Answer, AnswerMode, Question, UnknownTenantError
from ai_responder.assistant import Assistant
from ai_responder.store import conversation_so_far
from contracts.common import HandoffReason, Sender
from contracts.readapi import SuggestionRequest, SuggestionView

router = APIRouter(prefix="/internal", tags=["internal"])

MESSAGES_READ = 40
"""How far back the conversation is read: the customer's latest messages may be followed by the
assistant's offer, notices and the operator's own messages before the earlier ones come."""

# How the operator who took over opens, before the answer to what the customer wanted. A language
# without one gets the answer alone, still in the customer's language.
OPERATOR_GREETINGS: dict[str, str] = {
    "it": "Ciao, sono un operatore e ti aiuto io. Sulla tua domanda:",
    "en": "Hi, I'm an operator and I'll help you from here. About your question:",
}


def before_latest_run(history: Sequence[tuple[str, str]], question: str) -> list[tuple[Sender, str]]:
    """The messages before the customer's latest ones, which the gateway sent as `question` (its
    latest run of customer messages, system notices in between skipped). When this service has not
    stored that run yet, every message it has is earlier."""
    messages = [(Sender(sender), text) for sender, text in history]
    run: list[str] = []
    start = len(messages)
    for position in range(len(messages) - 1, -1, -1):
        sender, text = messages[position]
        if sender == Sender.CUSTOMER:
            run.append(text)
            start = position
        elif sender != Sender.SYSTEM and run:
            break
    if run and "\n".join(reversed(run)).strip().endswith(question.strip()):
        return messages[:start]
    return messages


def view_of(body: SuggestionRequest, answer: Answer) -> SuggestionView:
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


def for_the_person_there(assistant: Assistant, question: Question, offered: Answer) -> Answer:
    """An answer that offers a person, made a reply for the operator, who is that person, as the
    articles' own text whatever the configured mode. For a request for a person: a greeting in the
    customer's language and the knowledge base's answer to what they wanted, with its sources and
    no handoff reason; for another reason (upset, sensitive, unsure): the knowledge base's answer
    without the apology, the note and the offer, with the reason. Else no text, with the reason."""
    requested = offered.handoff_reason == HandoffReason.CUSTOMER_REQUEST
    try:
        knowledge = assistant.knowledge.tenant(question.tenant_id)
    except UnknownTenantError:  # its knowledge base went away since the answer was made
        found = None
    else:
        found = knowledge.wanted_from_a_person(question) if requested else knowledge.without_the_offer(question)
    if found is None:
        return Answer(text="", language=offered.language, confidence=0.0, handoff_reason=offered.handoff_reason)
    greeting = OPERATOR_GREETINGS.get(found.language) if requested else None
    return found.model_copy(
        update={
            "text": f"{greeting}\n\n{found.text}" if greeting else found.text,
            "handoff_reason": None if requested else offered.handoff_reason,
            "mode": AnswerMode.RETRIEVAL,
        }
    )


@router.post("/suggestions", response_model=SuggestionView, summary="A suggested reply for an operator")
async def suggest(body: SuggestionRequest, request: Request) -> SuggestionView:
    assistant: Assistant = request.app.state.assistant
    async with assistant.sessions() as session:
        context = await conversation_so_far(session, body.tenant_id, body.conversation_id, MESSAGES_READ)
    earlier = before_latest_run(context.history, body.question)[-assistant.settings.history_messages :]
    question = Question(tenant_id=body.tenant_id, text=body.question, language=context.locale, history=earlier)
    [answer] = await assistant.answer_all([question])
    if answer.handoff_reason is not None:
        answer = for_the_person_there(assistant, question, answer)
    return view_of(body, answer)
