"""The read API the gateway proxies for history (no service reads another's tables)."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Request
from sqlalchemy.ext.asyncio import AsyncSession

from contracts.common import ConversationStatus, Sender
from contracts.readapi import (
    ConversationListItem,
    ConversationListView,
    ConversationView,
    HandoverSummaryView,
    HistoryView,
    MessageView,
    NotesView,
    NoteView,
)
from conversation.store import Conversation, Message, conversations_of, messages_after, notes_of
from conversation.summary import handover_summary
from servicekit.http import ApiError, ReadSession

router = APIRouter(prefix="/internal", tags=["read API"])


def message_view(message: Message) -> MessageView:
    return MessageView(
        seq=message.seq,
        message_id=message.id,
        sender=Sender(message.sender),
        text=message.text,
        smart_actions=message.smart_actions,
        sources=message.sources,
        operator_id=message.operator_id,
        created_at=message.created_at,
        language=message.language,
    )


async def existing(session: AsyncSession, conversation_id: uuid.UUID) -> Conversation:
    conversation = await session.get(Conversation, conversation_id)
    if conversation is None:
        raise ApiError(404, "conversation_not_found", f"conversation {conversation_id} does not exist")
    return conversation


@router.get("/conversations", response_model=ConversationListView)
async def list_conversations(
    session: ReadSession,
    tenant_id: Annotated[str, Query(min_length=1, max_length=64)],
    status: ConversationStatus | None = None,
    operator_id: Annotated[str | None, Query(min_length=1, max_length=100)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> ConversationListView:
    """The tenant's conversations for the operators' lists; who may see which is the gateway's
    decision (it asks with `operator_id` or `status` for a plain operator)."""
    rows = await conversations_of(session, tenant_id, status, operator_id, limit)
    return ConversationListView(
        tenant_id=tenant_id,
        conversations=[
            ConversationListItem(
                conversation_id=c.id,
                tenant_id=c.tenant_id,
                status=c.state,
                last_seq=c.last_seq,
                created_at=c.created_at,
                updated_at=c.updated_at,
                operator_id=c.operator_id,
                handoff_reason=c.handoff_reason,
                locale=c.locale,
            )
            for c in rows
        ],
    )


@router.get("/conversations/{conversation_id}", response_model=ConversationView)
async def get_conversation(conversation_id: uuid.UUID, session: ReadSession) -> ConversationView:
    conversation = await existing(session, conversation_id)
    return ConversationView(
        conversation_id=conversation.id,
        tenant_id=conversation.tenant_id,
        status=conversation.state,
        last_seq=conversation.last_seq,
        created_at=conversation.created_at,
        operator_id=conversation.operator_id,
    )


@router.get("/conversations/{conversation_id}/messages", response_model=HistoryView[MessageView])
async def get_messages(
    conversation_id: uuid.UUID,
    request: Request,
    session: ReadSession,
    after: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int | None, Query(ge=1, le=1000)] = None,
) -> HistoryView[MessageView]:
    conversation = await existing(session, conversation_id)
    page = limit or request.app.state.runtime.settings.history_page_size
    messages = await messages_after(session, conversation_id, after, page)
    return HistoryView[MessageView](
        conversation_id=conversation.id,
        tenant_id=conversation.tenant_id,
        status=conversation.state,
        messages=[message_view(m) for m in messages],
    )


@router.get("/conversations/{conversation_id}/notes", response_model=NotesView)
async def get_notes(conversation_id: uuid.UUID, session: ReadSession) -> NotesView:
    """The internal notes, for the operators' dashboard only: the messages above never include
    them (they are stored apart), so the widget's history cannot show one."""
    conversation = await existing(session, conversation_id)
    notes = await notes_of(session, conversation_id)
    return NotesView(
        conversation_id=conversation.id,
        tenant_id=conversation.tenant_id,
        notes=[NoteView(note_id=n.id, operator_id=n.operator_id, text=n.text, created_at=n.created_at) for n in notes],
    )


@router.get("/conversations/{conversation_id}/summary", response_model=HandoverSummaryView)
async def get_summary(conversation_id: uuid.UUID, request: Request, session: ReadSession) -> HandoverSummaryView:
    """For the operator taking over: what the customer wants, what the AI answered, what is open."""
    conversation = await existing(session, conversation_id)
    messages = await messages_after(session, conversation_id, 0, request.app.state.runtime.settings.history_page_size)
    return handover_summary(conversation, messages)
