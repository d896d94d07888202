"""The read API the gateway proxies for history (no service reads another's tables)."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from sqlalchemy.ext.asyncio import AsyncSession

from contracts.common import Sender
from contracts.readapi import ConversationView, HistoryView, MessageView
from conversation.store import Conversation, Message, messages_after
from servicekit.http import ApiError, Runtime

router = APIRouter(prefix="/internal", tags=["read API"])


async def get_session(request: Request) -> Any:
    runtime: Runtime = request.app.state.runtime
    assert runtime.sessions is not None
    async with runtime.sessions() as session:
        yield session


Session = Annotated[AsyncSession, Depends(get_session)]


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
    )


async def existing(session: AsyncSession, conversation_id: uuid.UUID) -> Conversation:
    conversation = await session.get(Conversation, conversation_id)
    if conversation is None:
        raise ApiError(404, "conversation_not_found", f"conversation {conversation_id} does not exist")
    return conversation


@router.get("/conversations/{conversation_id}", response_model=ConversationView)
async def get_conversation(conversation_id: uuid.UUID, session: Session) -> ConversationView:
    conversation = await existing(session, conversation_id)
    return ConversationView(
        conversation_id=conversation.id,
        tenant_id=conversation.tenant_id,
        status=conversation.state,
        last_seq=conversation.last_seq,
        created_at=conversation.created_at,
    )


@router.get("/conversations/{conversation_id}/messages", response_model=HistoryView[MessageView])
async def get_messages(
    conversation_id: uuid.UUID,
    request: Request,
    session: Session,
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
