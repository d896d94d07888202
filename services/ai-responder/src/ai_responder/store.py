"""Tables of the ai-responder (its own database): knowledge bases, and the copy of recent
conversation messages it keeps from events (it never reads the conversation service's tables)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import DateTime, Integer, String, Text, func, select, text
from sqlalchemy.dialects.postgresql import JSONB, insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from ai_responder.kb import TenantKB
from servicekit.db import column_arrays


class Base(DeclarativeBase):
    """The tables of this service's own database."""


class KnowledgeBaseRecord(Base):
    __tablename__ = "knowledge_bases"

    tenant_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, default=1)
    content: Mapped[dict[str, Any]] = mapped_column(JSONB)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class ConversationContext(Base):
    __tablename__ = "conversation_context"

    conversation_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(64))
    locale: Mapped[str | None] = mapped_column(String(2))


class RecentMessage(Base):
    __tablename__ = "recent_messages"

    conversation_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, primary_key=True)
    sender: Mapped[str] = mapped_column(String(16))
    text: Mapped[str] = mapped_column(Text)


async def save_knowledge_base(session: AsyncSession, kb: TenantKB) -> int:
    """Upserts a tenant's knowledge base; returns its new version."""
    statement = insert(KnowledgeBaseRecord).values(
        tenant_id=kb.tenant_id, version=1, content=kb.model_dump(mode="json")
    )
    upsert = statement.on_conflict_do_update(
        index_elements=[KnowledgeBaseRecord.tenant_id],
        set_={
            "content": statement.excluded.content,
            "version": KnowledgeBaseRecord.version + 1,
            "updated_at": func.now(),
        },
    ).returning(KnowledgeBaseRecord.version)
    return int((await session.execute(upsert)).scalar_one())


async def knowledge_versions(session: AsyncSession) -> dict[str, int]:
    rows = await session.execute(select(KnowledgeBaseRecord.tenant_id, KnowledgeBaseRecord.version))
    return {tenant_id: version for tenant_id, version in rows}


async def load_knowledge_bases(session: AsyncSession) -> tuple[dict[str, int], list[TenantKB]]:
    records = (await session.scalars(select(KnowledgeBaseRecord))).all()
    return {r.tenant_id: r.version for r in records}, [TenantKB.model_validate(r.content) for r in records]


# Fixed statement texts (whatever the batch size), so the driver's prepared statements are reused.
_REMEMBER_CONVERSATIONS = text(
    "INSERT INTO conversation_context (conversation_id, tenant_id, locale)"
    " SELECT * FROM unnest(CAST(:conversation_ids AS uuid[]), CAST(:tenant_ids AS varchar[]),"
    " CAST(:locales AS varchar[]))"
    " ON CONFLICT DO NOTHING"
)
# The batch's messages are stored and its questions' contexts read in one statement. The reading
# part sees the table as it was before the statement, so the messages stored by it are added
# from its RETURNING: a question's history may include a message of the same batch.
_REMEMBER_AND_RECALL = text(
    "WITH remembered AS ("
    " INSERT INTO recent_messages (conversation_id, seq, sender, text)"
    " SELECT * FROM unnest(CAST(:conversation_ids AS uuid[]), CAST(:seqs AS int[]),"
    " CAST(:senders AS varchar[]), CAST(:texts AS text[]))"
    " ON CONFLICT DO NOTHING RETURNING conversation_id, seq, sender, text)"
    " SELECT q.conversation_id, q.seq AS question_seq, r.sender, r.text, c.locale"
    " FROM unnest(CAST(:question_conversation_ids AS uuid[]), CAST(:question_seqs AS int[]))"
    "   AS q(conversation_id, seq)"
    " LEFT JOIN conversation_context c ON c.conversation_id = q.conversation_id"
    " LEFT JOIN LATERAL (SELECT h.seq, h.sender, h.text FROM ("
    "   (SELECT m.seq, m.sender, m.text FROM recent_messages m"
    "     WHERE m.conversation_id = q.conversation_id AND m.seq < q.seq ORDER BY m.seq DESC LIMIT :limit)"
    "   UNION ALL SELECT n.seq, n.sender, n.text FROM remembered n"
    "     WHERE n.conversation_id = q.conversation_id AND n.seq < q.seq"
    " ) h ORDER BY h.seq DESC LIMIT :limit) r ON true"
    " ORDER BY q.conversation_id, q.seq, r.seq"
)


class StartedConversation(NamedTuple):
    conversation_id: uuid.UUID
    tenant_id: str
    locale: str | None


class PostedMessage(NamedTuple):
    conversation_id: uuid.UUID
    seq: int
    sender: str
    text: str


@dataclass
class QuestionContext:
    """What the assistant knows of a conversation when a question arrives."""

    locale: str | None = None
    history: list[tuple[str, str]] = field(default_factory=list)  # (sender, text), oldest first


async def remember_conversations(session: AsyncSession, conversations: list[StartedConversation]) -> None:
    """Keeps each new conversation's tenant and locale (a redelivered one is ignored)."""
    if conversations:
        await session.execute(
            _REMEMBER_CONVERSATIONS, column_arrays(conversations, ("conversation_ids", "tenant_ids", "locales"))
        )


async def remember_messages_and_recall(
    session: AsyncSession, messages: list[PostedMessage], questions: list[tuple[uuid.UUID, int]], limit: int
) -> dict[tuple[uuid.UUID, int], QuestionContext]:
    """Keeps a copy of conversation messages (a redelivered one is ignored) and returns, for each
    question (conversation, seq), the conversation's locale and up to `limit` messages before it:
    one statement."""
    contexts: dict[tuple[uuid.UUID, int], QuestionContext] = {}
    if not messages:
        return contexts
    parameters = {
        **column_arrays(messages, ("conversation_ids", "seqs", "senders", "texts")),
        **column_arrays(questions, ("question_conversation_ids", "question_seqs")),
        "limit": limit,
    }
    for conversation_id, question_seq, sender, message_text, locale in await session.execute(
        _REMEMBER_AND_RECALL, parameters
    ):
        context = contexts.setdefault((conversation_id, question_seq), QuestionContext(locale=locale))
        if sender is not None:
            context.history.append((sender, message_text))
    return contexts


async def conversation_locale(session: AsyncSession, tenant_id: str, conversation_id: uuid.UUID) -> str | None:
    """The locale the conversation started with, if this service has seen it start."""
    return await session.scalar(
        select(ConversationContext.locale).where(
            ConversationContext.conversation_id == conversation_id, ConversationContext.tenant_id == tenant_id
        )
    )
