"""Tables of the ai-responder (its own database): knowledge bases, and the copy of recent
conversation messages it keeps from events (it never reads the conversation service's tables)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import DateTime, Integer, String, Text, func, select
from sqlalchemy.dialects.postgresql import JSONB, insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from ai_responder.kb import TenantKB


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
    return {tenant_id: version for tenant_id, version in rows.tuples()}


async def load_knowledge_bases(session: AsyncSession) -> tuple[dict[str, int], list[TenantKB]]:
    records = (await session.scalars(select(KnowledgeBaseRecord))).all()
    return {r.tenant_id: r.version for r in records}, [TenantKB.model_validate(r.content) for r in records]


async def recent_history(
    session: AsyncSession, conversation_id: uuid.UUID, before_seq: int, limit: int
) -> list[RecentMessage]:
    rows = await session.scalars(
        select(RecentMessage)
        .where(RecentMessage.conversation_id == conversation_id, RecentMessage.seq < before_seq)
        .order_by(RecentMessage.seq.desc())
        .limit(limit)
    )
    return list(reversed(rows.all()))
