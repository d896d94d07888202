"""Tables of the conversation service (its own database) and the queries on them."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any, Literal, cast

from sqlalchemy import (
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    false,
    func,
    select,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from contracts.common import ConversationStatus, HandoffReason, Sender
from servicekit.db import column_arrays, fetch


class Base(DeclarativeBase):
    """The tables of this service's own database."""


class Conversation(Base):
    __tablename__ = "conversations"
    # The operators' lists: a tenant's conversations, most recently changed first.
    __table_args__ = (Index("ix_conversations_tenant_updated", "tenant_id", "updated_at"),)

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
    handoff_offer_blocked: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    offer_notice_posted: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    customer_upset: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    customer_in_danger: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())

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
    # An AI reply's reason for offering a person (HandoffReason), if it offered one.
    handoff_reason: Mapped[str | None] = mapped_column(String(32))
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


class AnswerFeedback(Base):
    """The customer's feedback on an AI answer: one per message, the first one counts."""

    __tablename__ = "answer_feedback"

    message_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("messages.id"), primary_key=True)
    conversation_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("conversations.id"), index=True)
    tenant_id: Mapped[str] = mapped_column(String(64))
    helpful: Mapped[bool] = mapped_column(Boolean)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


@dataclass
class ConversationState:
    """One conversation as a consumer batch sees and changes it; `Batch.write` stores it."""

    id: uuid.UUID
    tenant_id: str
    status: str
    channel: str = "widget"
    locale: str | None = None
    last_seq: int = 0
    operator_id: str | None = None
    handoff_reason: str | None = None
    rating_score: int | None = None
    rating_comment: str | None = None
    last_customer_message_at: datetime | None = None
    handoff_offer_blocked: bool = False
    """Set when the conversation goes back to the AI (the customer said no, an operator released
    it) and cleared by the customer's next message: until then an AI reply answers the old
    context, so it may not offer the handoff again."""
    offer_notice_posted: bool = False
    """Set when the customer is told an operator is about to answer (routing's first offer of
    this wait), cleared each time the conversation enters QUEUED: one such notice per wait."""
    customer_upset: bool = False
    """Set when the assistant hears the customer vent, whatever it offered: the customer then
    waits in the queue first, and the handover summary and a ticket say so."""
    customer_in_danger: bool = False
    """Set when the assistant hears that someone may be in danger (a lost child, an injury): the
    customer then waits in the queue first."""

    @property
    def state(self) -> ConversationStatus:
        return ConversationStatus(self.status)

    def row(self) -> tuple[Any, ...]:
        return tuple(getattr(self, name) for name in _CONVERSATION_COLUMNS)


def is_upset(conversation: Conversation | ConversationState) -> bool:
    """Whether the customer sounded upset: the assistant heard them vent, or offered a person for
    it. Upset customers wait in the queue first; the handover summary and a ticket say so."""
    return conversation.customer_upset or conversation.handoff_reason == HandoffReason.NEGATIVE_SENTIMENT.value


def queue_priority(conversation: ConversationState) -> Literal["normal", "high"]:
    """Where the conversation waits in the operators' queue: first when the customer is upset or
    someone may be in danger."""
    return "high" if is_upset(conversation) or conversation.customer_in_danger else "normal"


@dataclass
class NewMessage:
    """A message a handler posted; `Batch.write` inserts it."""

    id: uuid.UUID
    conversation_id: uuid.UUID
    tenant_id: str
    seq: int
    sender: str
    text: str
    client_message_id: str | None = None
    operator_id: str | None = None
    language: str | None = None
    confidence: float | None = None
    handoff_reason: str | None = None  # an AI reply's: why it offered a person, if it did
    sources: list[dict[str, Any]] = field(default_factory=list)
    smart_actions: list[dict[str, Any]] = field(default_factory=list)

    def row(self) -> tuple[Any, ...]:
        return (
            *(getattr(self, name) for name in _MESSAGE_COLUMNS[:-2]),
            json.dumps(self.sources),
            json.dumps(self.smart_actions),
        )


@dataclass(frozen=True)
class AiReply:
    """What a handoff request tells of the assistant's latest reply in the conversation."""

    confidence: float | None
    sources: list[dict[str, Any]]


@dataclass
class Batch:
    """The rows one consumer transaction works on: loaded (and locked) together before its
    handlers run, changed by them in memory, and written together after them, in a few
    statements of fixed text per batch instead of a few statements per event. A later event of
    the batch sees what an earlier one changed."""

    conversations: dict[uuid.UUID, ConversationState] = field(default_factory=dict)
    message_ids: set[uuid.UUID] = field(default_factory=set)
    client_message_ids: set[tuple[uuid.UUID, str]] = field(default_factory=set)
    stored: dict[uuid.UUID, tuple[Any, ...]] = field(default_factory=dict)  # conversations as in the database
    new_messages: list[NewMessage] = field(default_factory=list)
    # The assistant's latest reply per conversation asking for a person (read with the batch),
    # replaced by any the batch itself adds.
    last_ai_replies: dict[uuid.UUID, AiReply] = field(default_factory=dict)

    @staticmethod
    def of(session: AsyncSession) -> Batch:
        return cast(Batch, session.info[_BATCH])

    def add_conversation(self, conversation: ConversationState) -> None:
        self.conversations[conversation.id] = conversation

    def add_message(self, message: NewMessage) -> None:
        self.new_messages.append(message)
        if message.sender == Sender.AI.value:
            self.last_ai_replies[message.conversation_id] = AiReply(message.confidence, message.sources)
        self.message_ids.add(message.id)
        if message.client_message_id is not None:
            self.client_message_ids.add((message.conversation_id, message.client_message_id))

    def has_client_message(self, conversation_id: uuid.UUID, client_message_id: str) -> bool:
        return (conversation_id, client_message_id) in self.client_message_ids

    async def write(self, session: AsyncSession) -> None:
        """Stores the new and changed conversations and the new messages in one statement (again
        safe to call)."""
        rows = {c.id: c.row() for c in self.conversations.values()}
        written = [row for conversation_id, row in rows.items() if self.stored.get(conversation_id) != row]
        if written or self.new_messages:
            await fetch(
                session,
                _WRITE_BATCH,
                column_arrays(written, _CONVERSATION_PARAMETERS)
                | column_arrays([m.row() for m in self.new_messages], _MESSAGE_PARAMETERS),
            )
        self.stored.update(rows)
        self.new_messages.clear()


_BATCH = "conversation.batch"
_CONVERSATION_COLUMNS = tuple(f.name for f in fields(ConversationState))
_MESSAGE_COLUMNS = tuple(f.name for f in fields(NewMessage))
# The statement's parameters: one array per column, prefixed where both tables have the column.
_CONVERSATION_PARAMETERS = tuple(f"c_{name}" for name in _CONVERSATION_COLUMNS)
_MESSAGE_PARAMETERS = tuple(f"m_{name}" for name in _MESSAGE_COLUMNS)
# New and changed conversations (an upsert) and new messages, in one round trip and with a text
# that does not depend on the batch (so its prepared statement is reused). The messages' foreign
# key is checked at the end of the statement, so a conversation and its first message can come
# together.
_WRITE_BATCH = text(
    "WITH written AS ("
    " INSERT INTO conversations (id, tenant_id, status, channel, locale, last_seq, operator_id, handoff_reason,"
    " rating_score, rating_comment, last_customer_message_at, handoff_offer_blocked, offer_notice_posted,"
    " customer_upset, customer_in_danger)"
    " SELECT * FROM unnest(CAST(:c_id AS uuid[]), CAST(:c_tenant_id AS varchar[]), CAST(:c_status AS varchar[]),"
    " CAST(:c_channel AS varchar[]), CAST(:c_locale AS varchar[]), CAST(:c_last_seq AS int[]),"
    " CAST(:c_operator_id AS varchar[]), CAST(:c_handoff_reason AS varchar[]), CAST(:c_rating_score AS int[]),"
    " CAST(:c_rating_comment AS text[]), CAST(:c_last_customer_message_at AS timestamptz[]),"
    " CAST(:c_handoff_offer_blocked AS bool[]), CAST(:c_offer_notice_posted AS bool[]),"
    " CAST(:c_customer_upset AS bool[]), CAST(:c_customer_in_danger AS bool[]))"
    " ON CONFLICT (id) DO UPDATE SET status = excluded.status, locale = excluded.locale,"
    " last_seq = excluded.last_seq, operator_id = excluded.operator_id, handoff_reason = excluded.handoff_reason,"
    " rating_score = excluded.rating_score, rating_comment = excluded.rating_comment,"
    " last_customer_message_at = excluded.last_customer_message_at,"
    " handoff_offer_blocked = excluded.handoff_offer_blocked, offer_notice_posted = excluded.offer_notice_posted,"
    " customer_upset = excluded.customer_upset, customer_in_danger = excluded.customer_in_danger,"
    " updated_at = now())"
    " INSERT INTO messages (id, conversation_id, tenant_id, seq, sender, text, client_message_id, operator_id,"
    " language, confidence, handoff_reason, sources, smart_actions)"
    " SELECT id, conversation_id, tenant_id, seq, sender, text, client_message_id, operator_id, language,"
    " confidence, handoff_reason, CAST(sources AS jsonb), CAST(smart_actions AS jsonb)"
    " FROM unnest(CAST(:m_id AS uuid[]), CAST(:m_conversation_id AS uuid[]), CAST(:m_tenant_id AS varchar[]),"
    " CAST(:m_seq AS int[]), CAST(:m_sender AS varchar[]), CAST(:m_text AS text[]),"
    " CAST(:m_client_message_id AS varchar[]), CAST(:m_operator_id AS varchar[]), CAST(:m_language AS varchar[]),"
    " CAST(:m_confidence AS float8[]), CAST(:m_handoff_reason AS varchar[]), CAST(:m_sources AS text[]),"
    " CAST(:m_smart_actions AS text[]))"
    " AS m(id, conversation_id, tenant_id, seq, sender, text, client_message_id, operator_id, language,"
    " confidence, handoff_reason, sources, smart_actions)"
)


# The batch's conversations, locked in id order (the same in every transaction, so two never
# deadlock), each with those of the batch's messages it holds already: one round trip.
# Both lookups of existing messages go through an index whatever the conversation's length: the
# batch's candidate ids once for the whole statement (an uncorrelated subquery) by primary key,
# and each conversation's client message ids by the (conversation, client message id) index.
_LOCK_CONVERSATIONS = text(
    "SELECT c.id, c.tenant_id, c.status, c.channel, c.locale, c.last_seq, c.operator_id, c.handoff_reason,"
    " c.rating_score, c.rating_comment, c.last_customer_message_at, c.handoff_offer_blocked, c.offer_notice_posted,"
    " c.customer_upset, c.customer_in_danger,"
    " ARRAY(SELECT m.id FROM messages m WHERE m.id = ANY(CAST(:message_ids AS uuid[]))) AS message_ids,"
    " ARRAY(SELECT m.client_message_id FROM messages m WHERE m.conversation_id = c.id"
    "   AND m.client_message_id = ANY(CAST(:client_ids AS varchar[]))) AS client_message_ids"
    " FROM conversations c WHERE c.id = ANY(CAST(:ids AS uuid[])) ORDER BY c.id FOR UPDATE OF c"
)


# The assistant's latest reply of each conversation (a backward walk of its seq index each).
_LAST_AI_REPLIES = text(
    "SELECT c.id, m.confidence, m.sources FROM unnest(CAST(:ids AS uuid[])) AS c(id)"
    " CROSS JOIN LATERAL (SELECT confidence, sources FROM messages"
    "   WHERE conversation_id = c.id AND sender = :ai ORDER BY seq DESC LIMIT 1) AS m"
)


async def load_batch(
    session: AsyncSession,
    conversation_ids: set[uuid.UUID],
    message_ids: set[uuid.UUID],
    client_message_ids: set[str],
    asking_for_a_person: set[uuid.UUID] | None = None,
) -> Batch:
    """Locks the batch's conversations, which serialises every change to a conversation and
    keeps its message sequence gap-free, and finds which of the messages the batch may add
    exist already; for the conversations `asking_for_a_person`, reads the assistant's latest
    reply (`Batch.last_ai_replies`): one statement for the batch, not two per handoff."""
    batch = Batch()
    session.info[_BATCH] = batch
    if not conversation_ids:
        return batch
    rows = await fetch(
        session,
        _LOCK_CONVERSATIONS,
        {"ids": sorted(conversation_ids), "message_ids": list(message_ids), "client_ids": list(client_message_ids)},
    )
    for row in rows:
        conversation = ConversationState(*(row[column] for column in _CONVERSATION_COLUMNS))
        batch.add_conversation(conversation)
        batch.stored[conversation.id] = conversation.row()
        batch.message_ids.update(row["message_ids"])
        batch.client_message_ids.update((conversation.id, client_id) for client_id in row["client_message_ids"])
    if asking_for_a_person:
        replies = await fetch(session, _LAST_AI_REPLIES, {"ids": sorted(asking_for_a_person), "ai": Sender.AI.value})
        for conversation_id, confidence, sources in replies:
            batch.last_ai_replies[conversation_id] = AiReply(confidence, sources or [])
    return batch


async def messages_after(session: AsyncSession, conversation_id: uuid.UUID, after: int, limit: int) -> list[Message]:
    rows = await session.scalars(
        select(Message)
        .where(Message.conversation_id == conversation_id, Message.seq > after)
        .order_by(Message.seq)
        .limit(limit)
    )
    return list(rows)


async def last_messages(session: AsyncSession, conversation_id: uuid.UUID, count: int) -> list[Message]:
    """The conversation's last `count` messages, oldest first (a backward walk of its seq index)."""
    rows = await session.scalars(
        select(Message).where(Message.conversation_id == conversation_id).order_by(Message.seq.desc()).limit(count)
    )
    return list(rows)[::-1]


async def first_customer_message(session: AsyncSession, conversation_id: uuid.UUID) -> Message | None:
    """What the customer first asked: a ticket's subject (a forward walk of the seq index)."""
    return await session.scalar(
        select(Message)
        .where(Message.conversation_id == conversation_id, Message.sender == Sender.CUSTOMER.value)
        .order_by(Message.seq)
        .limit(1)
    )


async def question_before(session: AsyncSession, conversation_id: uuid.UUID, seq: int) -> Message | None:
    """The customer's last message before `seq`: what an answer at `seq` answered."""
    return await session.scalar(
        select(Message)
        .where(Message.conversation_id == conversation_id, Message.seq < seq, Message.sender == Sender.CUSTOMER.value)
        .order_by(Message.seq.desc())
        .limit(1)
    )


async def conversations_of(
    session: AsyncSession, tenant_id: str, status: ConversationStatus | None, operator_id: str | None, limit: int
) -> list[Conversation]:
    """The tenant's conversations, most recently changed first, narrowed by status and operator."""
    query = select(Conversation).where(Conversation.tenant_id == tenant_id)
    if status is not None:
        query = query.where(Conversation.status == status.value)
    if operator_id is not None:
        query = query.where(Conversation.operator_id == operator_id)
    rows = await session.scalars(query.order_by(Conversation.updated_at.desc(), Conversation.id).limit(limit))
    return list(rows)


async def notes_of(session: AsyncSession, conversation_id: uuid.UUID) -> list[InternalNote]:
    rows = await session.scalars(
        select(InternalNote)
        .where(InternalNote.conversation_id == conversation_id)
        .order_by(InternalNote.created_at, InternalNote.id)
    )
    return list(rows)
