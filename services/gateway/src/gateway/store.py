"""The gateway's own tables and their queries."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import DateTime, String, func, select
from sqlalchemy.dialects.postgresql import ARRAY, insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    """The tables of the gateway's own database."""


class TenantRow(Base):
    """A customer of the platform: its widget key and the web origins allowed to embed the widget."""

    __tablename__ = "tenants"

    tenant_id: Mapped[str] = mapped_column(String(63), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    widget_key: Mapped[str] = mapped_column(String(128), unique=True)
    allowed_origins: Mapped[list[str]] = mapped_column(ARRAY(String(300)), default=list)
    default_language: Mapped[str] = mapped_column(String(2), default="it")
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


async def upsert_tenant(
    session: AsyncSession,
    *,
    tenant_id: str,
    name: str,
    widget_key: str,
    allowed_origins: Sequence[str],
    default_language: str,
) -> None:
    values = {
        "name": name,
        "widget_key": widget_key,
        "allowed_origins": list(allowed_origins),
        "default_language": default_language,
    }
    statement = insert(TenantRow).values(tenant_id=tenant_id, **values)
    await session.execute(
        statement.on_conflict_do_update(index_elements=[TenantRow.tenant_id], set_={**values, "updated_at": func.now()})
    )


async def all_tenants(session: AsyncSession) -> list[TenantRow]:
    return list((await session.scalars(select(TenantRow))).all())
