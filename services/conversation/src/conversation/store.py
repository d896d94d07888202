"""Tables of the conversation service (its own database) and the queries on them."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast

from sqlalchemy import (
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    Uuid,
    and_,
    any_,
    bindparam,
    func,
    or_,
    select,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from contracts.common import ConversationStatus


class Base(DeclarativeBase):
    """The tables of this service's own database."""


class Conversation(Base):
    __tablename__ = "conversations"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(64), index=True)
    status: Mapped[str] = mapped_column(String(32))
    channel: Mapped[str] = mapped_column(String(20), default="widget")
    locale: Mapped[str | None] = mapped_column(String(2))
    last_seq: Mapped[int] = mapped_column(Integer, default=0)
    operator_id: Mapped[str | None] = mapped_column(String(100))
    handoff_reason: Mapped[str | None] = mapped_column(String(40))
    rating_score: Mapped[int | None] = mapped_column(Integer)
    rating_comment: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now()
    )
    last_customer_message_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    @property
    def state(self) -> ConversationStatus:
        return ConversationStatus(self.status)


class Message(Base):
    __tablename__ = "messages"
    __table_args__ = (
        UniqueConstraint("conversation_id", "seq", name="uq_messages_conversation_seq"),
        Index(
            "uq_messages_client_message_id",
            "conversation_id",
            "client_message_id",
            unique=True,
            postgresql_where="client_message_id IS NOT NULL",
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    conversation_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("conversations.id"))
    tenant_id: Mapped[str] = mapped_column(String(64))
    seq: Mapped[int] = mapped_column(Integer)
    sender: Mapped[str] = mapped_column(String(16))
    text: Mapped[str] = mapped_column(Text)
    client_message_id: Mapped[str | None] = mapped_column(String(64))
    operator_id: Mapped[str | None] = mapped_column(String(100))
    language: Mapped[str | None] = mapped_column(String(2))
    confidence: Mapped[float | None] = mapped_column(Float)
    sources: Mapped[list[dict[str, Any]]] = mapped_column(JSONB, default=list)
    smart_actions: Mapped[list[dict[str, Any]]] = mapped_column(JSONB, default=list)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class InternalNote(Base):
    __tablename__ = "internal_notes"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    conversation_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("conversations.id"), index=True)
    tenant_id: Mapped[str] = mapped_column(String(64))
    operator_id: Mapped[str] = mapped_column(String(100))
    text: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


@dataclass
class Batch:
    """The rows one consumer transaction works on, loaded (and locked) together before its
    handlers run: a few set-based queries per batch instead of a few queries per event. Handlers
    keep it current with what they add, so a later event of the batch sees an earlier one's rows."""

    conversations: dict[uuid.UUID, Conversation] = field(default_factory=dict)
    message_ids: set[uuid.UUID] = field(default_factory=set)
    client_message_ids: set[tuple[uuid.UUID, str]] = field(default_factory=set)

    @staticmethod
    def of(session: AsyncSession) -> Batch:
        return cast(Batch, session.info[_BATCH])

    def add_conversation(self, conversation: Conversation) -> None:
        self.conversations[conversation.id] = conversation

    def add_message(self, message: Message) -> None:
        self.message_ids.add(message.id)
        if message.client_message_id is not None:
            self.client_message_ids.add((message.conversation_id, message.client_message_id))

    def has_client_message(self, conversation_id: uuid.UUID, client_message_id: str) -> bool:
        return (conversation_id, client_message_id) in self.client_message_ids


_BATCH = "conversation.batch"
_UUIDS = ARRAY(Uuid())


async def load_batch(
    session: AsyncSession, conversation_ids: set[uuid.UUID], message_ids: set[uuid.UUID], client_message_ids: set[str]
) -> Batch:
    """Locks the batch's conversations (in id order, the same in every transaction, so two never
    deadlock), which serialises every change to a conversation and keeps its message sequence
    gap-free; and finds which of the messages the batch may add exist already."""
    batch = Batch()
    session.info[_BATCH] = batch
    if conversation_ids:
        locked = await session.scalars(
            select(Conversation)
            .where(Conversation.id == any_(bindparam("ids", sorted(conversation_ids), type_=_UUIDS)))
            .order_by(Conversation.id)
            .with_for_update()
        )
        for conversation in locked:
            batch.add_conversation(conversation)
    if message_ids or client_message_ids:
        existing = await session.execute(
            select(Message.id, Message.conversation_id, Message.client_message_id).where(
                or_(
                    Message.id == any_(bindparam("message_ids", list(message_ids), type_=_UUIDS)),
                    and_(
                        Message.conversation_id == any_(bindparam("ids", list(conversation_ids), type_=_UUIDS)),
                        Message.client_message_id
                        == any_(bindparam("client_ids", list(client_message_ids), type_=ARRAY(String()))),
                    ),
                )
            )
        )
        for message_id, conversation_id, client_message_id in existing.tuples():
            batch.message_ids.add(message_id)
            if client_message_id is not None:
                batch.client_message_ids.add((conversation_id, client_message_id))
    return batch


async def messages_after(session: AsyncSession, conversation_id: uuid.UUID, after: int, limit: int) -> list[Message]:
    rows = await session.scalars(
        select(Message)
        .where(Message.conversation_id == conversation_id, Message.seq > after)
        .order_by(Message.seq)
        .limit(limit)
    )
    return list(rows)


async def transcript(session: AsyncSession, conversation_id: uuid.UUID) -> list[Message]:
    return await messages_after(session, conversation_id, 0, 500)
