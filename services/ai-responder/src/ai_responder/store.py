"""Tables of the ai-responder (its own database): knowledge bases, and the copy of recent
conversation messages it keeps from events (it never reads the conversation service's tables)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import ARRAY, DateTime, Index, Integer, String, Text, func, select, text
from sqlalchemy.dialects.postgresql import JSONB, insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from ai_responder.kb import TenantKB
from servicekit.db import column_arrays, fetch, store_if_newer


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


class KnowledgeBaseVersion(Base):
    """Every version a tenant's knowledge base has had, whole: its history, and what a rollback restores."""

    __tablename__ = "knowledge_base_versions"

    tenant_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    content: Mapped[dict[str, Any]] = mapped_column(JSONB)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    author: Mapped[str] = mapped_column(String(200), default="")
    note: Mapped[str] = mapped_column(String(500), default="")


class UnansweredQuestion(Base):
    """A customer question the assistant answered with "I don't know" or a person: a KB gap."""

    __tablename__ = "unanswered_questions"
    __table_args__ = (Index("ix_unanswered_questions_tenant_asked", "tenant_id", "asked_at"),)

    question_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(64))
    conversation_id: Mapped[uuid.UUID | None] = mapped_column(nullable=True)
    text: Mapped[str] = mapped_column(Text)
    language: Mapped[str] = mapped_column(String(2))
    reason: Mapped[str] = mapped_column(String(32))
    asked_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    resolved_by: Mapped[str | None] = mapped_column(String(120), nullable=True)
    """The article created to answer it."""


class AssistantSettingsRecord(Base):
    """What the tenant's admins set about the assistant (`contracts.readapi.AssistantSettingsInput`),
    laid over the knowledge base's tenant.yaml and policy.yaml, which stay the defaults."""

    __tablename__ = "assistant_settings"

    tenant_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, default=1)
    settings: Mapped[dict[str, Any]] = mapped_column(JSONB)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class TenantProfileRecord(Base):
    """The newest `tenant.profile_changed` revision applied to the tenant's knowledge base: an older
    one arriving later (a replay, a gateway's start-up announcement) changes nothing."""

    __tablename__ = "tenant_profiles"

    tenant_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    revision: Mapped[int] = mapped_column(Integer)
    languages: Mapped[list[str]] = mapped_column(ARRAY(String(2)))
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


async def keep_newest_profile(session: AsyncSession, tenant_id: str, revision: int, languages: list[str]) -> bool:
    """Stores the profile's revision unless the tenant's stored one is as new or newer; returns
    whether it was stored (and so is to be applied)."""
    values = {"tenant_id": tenant_id, "revision": revision, "languages": languages}
    return await store_if_newer(
        session, TenantProfileRecord, values, key="tenant_id", also_set={"received_at": func.now()}
    )


async def create_knowledge_base(session: AsyncSession, kb: TenantKB, author: str = "", note: str = "") -> bool:
    """Stores the knowledge base as the tenant's version 1 unless the tenant has one already (loaded
    meanwhile from files, say: never replaced by this); returns whether it was stored."""
    content = kb.model_dump(mode="json")
    created = await session.execute(
        insert(KnowledgeBaseRecord)
        .values(tenant_id=kb.tenant_id, version=1, content=content)
        .on_conflict_do_nothing()
        .returning(KnowledgeBaseRecord.version)
    )
    if created.first() is None:
        return False
    session.add(KnowledgeBaseVersion(tenant_id=kb.tenant_id, version=1, content=content, author=author, note=note))
    await session.flush()
    return True


async def save_knowledge_base(session: AsyncSession, kb: TenantKB, author: str = "", note: str = "") -> int:
    """Upserts a tenant's knowledge base and records it as a new version; returns that version."""
    content = kb.model_dump(mode="json")
    statement = insert(KnowledgeBaseRecord).values(tenant_id=kb.tenant_id, version=1, content=content)
    upsert = statement.on_conflict_do_update(
        index_elements=[KnowledgeBaseRecord.tenant_id],
        set_={
            "content": statement.excluded.content,
            "version": KnowledgeBaseRecord.version + 1,
            "updated_at": func.now(),
        },
    ).returning(KnowledgeBaseRecord.version)
    version = int((await session.execute(upsert)).scalar_one())
    session.add(
        KnowledgeBaseVersion(
            tenant_id=kb.tenant_id, version=version, content=content, author=author[:200], note=note[:500]
        )
    )
    await session.flush()
    return version


async def live_knowledge_base(session: AsyncSession, tenant_id: str, lock: bool = False) -> tuple[int, TenantKB] | None:
    """The tenant's live version and knowledge base; `lock` holds the row until the transaction ends,
    so two edits of the same knowledge base apply one after the other instead of losing one."""
    query = select(KnowledgeBaseRecord).where(KnowledgeBaseRecord.tenant_id == tenant_id)
    record = await session.scalar(query.with_for_update() if lock else query)
    if record is None:
        return None
    return record.version, TenantKB.model_validate(record.content)


async def knowledge_base_version(session: AsyncSession, tenant_id: str, version: int) -> KnowledgeBaseVersion | None:
    return await session.get(KnowledgeBaseVersion, (tenant_id, version))


async def knowledge_base_history(session: AsyncSession, tenant_id: str, limit: int = 200) -> list[KnowledgeBaseVersion]:
    """The tenant's versions, newest first."""
    rows = await session.scalars(
        select(KnowledgeBaseVersion)
        .where(KnowledgeBaseVersion.tenant_id == tenant_id)
        .order_by(KnowledgeBaseVersion.version.desc())
        .limit(limit)
    )
    return list(rows)


async def record_unanswered(session: AsyncSession, rows: list[UnansweredQuestion]) -> None:
    """Keeps the questions of a batch that got no answer from the KB (a redelivered one is ignored)."""
    if rows:
        values = [
            {
                "question_id": r.question_id,
                "tenant_id": r.tenant_id,
                "conversation_id": r.conversation_id,
                "text": r.text[:2000],
                "language": r.language,
                "reason": r.reason,
            }
            for r in rows
        ]
        await session.execute(insert(UnansweredQuestion).values(values).on_conflict_do_nothing())


async def unanswered_since(
    session: AsyncSession, tenant_id: str, since: datetime, limit: int = 5000
) -> list[UnansweredQuestion]:
    rows = await session.scalars(
        select(UnansweredQuestion)
        .where(
            UnansweredQuestion.tenant_id == tenant_id,
            UnansweredQuestion.asked_at >= since,
            UnansweredQuestion.resolved_by.is_(None),
        )
        .order_by(UnansweredQuestion.asked_at)
        .limit(limit)
    )
    return list(rows)


async def live_versions(session: AsyncSession) -> tuple[dict[str, int], dict[str, int]]:
    """The live version of each knowledge base and of each tenant's assistant settings, in one
    statement: what a replica compares to see whether it must reload."""
    rows = await session.execute(
        select(KnowledgeBaseRecord.tenant_id, KnowledgeBaseRecord.version, AssistantSettingsRecord.version).outerjoin(
            AssistantSettingsRecord, AssistantSettingsRecord.tenant_id == KnowledgeBaseRecord.tenant_id
        )
    )
    kbs: dict[str, int] = {}
    settings: dict[str, int] = {}
    for tenant_id, kb_version, settings_version in rows:
        kbs[tenant_id] = kb_version
        if settings_version is not None:
            settings[tenant_id] = settings_version
    return kbs, settings


async def load_assistant_settings(session: AsyncSession) -> list[AssistantSettingsRecord]:
    return list((await session.scalars(select(AssistantSettingsRecord))).all())


async def assistant_settings_of(session: AsyncSession, tenant_id: str) -> AssistantSettingsRecord | None:
    return await session.get(AssistantSettingsRecord, tenant_id, populate_existing=True)


async def seed_assistant_settings(session: AsyncSession, tenant_id: str, settings: dict[str, Any]) -> None:
    """Stores the settings as version 1 unless the tenant has some already."""
    await session.execute(
        insert(AssistantSettingsRecord)
        .values(tenant_id=tenant_id, version=1, settings=settings)
        .on_conflict_do_nothing()
    )


async def save_assistant_settings(session: AsyncSession, tenant_id: str, settings: dict[str, Any]) -> int:
    """Replaces the tenant's settings; returns their new version."""
    statement = insert(AssistantSettingsRecord).values(tenant_id=tenant_id, version=1, settings=settings)
    upsert = statement.on_conflict_do_update(
        index_elements=[AssistantSettingsRecord.tenant_id],
        set_={
            "settings": statement.excluded.settings,
            "version": AssistantSettingsRecord.version + 1,
            "updated_at": func.now(),
        },
    ).returning(AssistantSettingsRecord.version)
    return int((await session.execute(upsert)).scalar_one())


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
        columns = column_arrays(conversations, ("conversation_ids", "tenant_ids", "locales"))
        await fetch(session, _REMEMBER_CONVERSATIONS, columns)


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
    for conversation_id, question_seq, sender, message_text, locale in await fetch(
        session, _REMEMBER_AND_RECALL, parameters
    ):
        context = contexts.setdefault((conversation_id, question_seq), QuestionContext(locale=locale))
        if sender is not None:
            context.history.append((sender, message_text))
    return contexts


async def conversation_so_far(
    session: AsyncSession, tenant_id: str, conversation_id: uuid.UUID, limit: int
) -> QuestionContext:
    """The conversation's locale and its latest `limit` messages (oldest first), as this service has
    seen them; nothing for a conversation of another tenant or one it has not seen start."""
    locale = await session.execute(
        select(ConversationContext.locale).where(
            ConversationContext.conversation_id == conversation_id, ConversationContext.tenant_id == tenant_id
        )
    )
    row = locale.first()
    if row is None:
        return QuestionContext()
    latest = await session.execute(
        select(RecentMessage.sender, RecentMessage.text)
        .where(RecentMessage.conversation_id == conversation_id)
        .order_by(RecentMessage.seq.desc())
        .limit(limit)
    )
    return QuestionContext(locale=row.locale, history=[(sender, text) for sender, text in reversed(latest.all())])
