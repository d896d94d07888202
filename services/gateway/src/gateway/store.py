"""The gateway's own tables and their queries."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Identity,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    Uuid,
    func,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, insert
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
    languages: Mapped[list[str]] = mapped_column(ARRAY(String(2)), default=list)
    # Set while the tenant is disabled: its data stays, its widget key and operators are refused.
    disabled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    time_zone: Mapped[str] = mapped_column(String(64), default="Europe/Rome")
    # [{days, start, end}] as contracts.events.BusinessWindow; empty: operators answer at any hour.
    business_hours: Mapped[list[dict[str, Any]]] = mapped_column(JSONB, default=list)
    # Grows with every profile change; carried by tenant.profile_changed so readers keep the newest.
    profile_revision: Mapped[int] = mapped_column(Integer, default=1)
    # Colours, position and per-language texts of the widget.
    widget: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)
    # After a rotation the previous key keeps working until previous_key_expires_at.
    previous_widget_key: Mapped[str | None] = mapped_column(String(128), nullable=True)
    previous_key_expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    # A tenant that signed up itself is refused until its first admin has verified their email.
    pending_verification: Mapped[bool] = mapped_column(Boolean, default=False)


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
        statement.on_conflict_do_update(
            index_elements=[TenantRow.tenant_id],
            # A new revision, so that readers of tenant.profile_changed take the reloaded profile.
            set_={**values, "updated_at": func.now(), "profile_revision": TenantRow.profile_revision + 1},
        )
    )


async def all_tenants(session: AsyncSession) -> list[TenantRow]:
    return list((await session.scalars(select(TenantRow))).all())


class OperatorRow(Base):
    """An operator's account: how they log in, their role, and what routing needs to know of them
    (skills, capacity). `presence` is the status they chose, re-sent to routing as a heartbeat."""

    __tablename__ = "operators"

    operator_id: Mapped[str] = mapped_column(String(100), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(63), ForeignKey("tenants.tenant_id"), index=True)
    username: Mapped[str] = mapped_column(String(100), unique=True)
    display_name: Mapped[str] = mapped_column(String(200))
    password_hash: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(20))
    skills: Mapped[list[str]] = mapped_column(ARRAY(String(40)), default=list)
    capacity: Mapped[int] = mapped_column(Integer, default=3)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    presence: Mapped[str] = mapped_column(String(10), default="offline")
    email: Mapped[str | None] = mapped_column(String(320), nullable=True)
    # Tokens name the generation they were issued under; a deactivation bumps it (see gateway.access).
    token_generation: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


async def upsert_operator(
    session: AsyncSession,
    *,
    operator_id: str,
    tenant_id: str,
    username: str,
    display_name: str,
    password_hash: str,
    role: str,
    skills: Sequence[str],
    capacity: int,
    active: bool,
    replace_password: bool,
    email: str | None = None,
) -> None:
    """Creates the account, or updates its profile; the password of an existing account changes
    only with `replace_password` (seeding again must not undo a password changed since)."""
    profile = {
        "tenant_id": tenant_id,
        "username": username,
        "display_name": display_name,
        "role": role,
        "skills": list(skills),
        "capacity": capacity,
        "active": active,
    }
    if email is not None:  # seed files carry none: an email set otherwise is kept
        profile["email"] = email
    statement = insert(OperatorRow).values(operator_id=operator_id, password_hash=password_hash, **profile)
    changes = {**profile, "updated_at": func.now()}
    if replace_password:
        changes["password_hash"] = password_hash
    await session.execute(statement.on_conflict_do_update(index_elements=[OperatorRow.operator_id], set_=changes))


async def operator_by_username(session: AsyncSession, username: str) -> OperatorRow | None:
    return (await session.scalars(select(OperatorRow).where(OperatorRow.username == username))).one_or_none()


async def operator_by_id(session: AsyncSession, operator_id: str) -> OperatorRow | None:
    return await session.get(OperatorRow, operator_id)


async def operators_of(session: AsyncSession, tenant_id: str | None = None) -> list[OperatorRow]:
    query = select(OperatorRow).order_by(OperatorRow.tenant_id, OperatorRow.username)
    if tenant_id is not None:
        query = query.where(OperatorRow.tenant_id == tenant_id)
    return list((await session.scalars(query)).all())


async def set_presence(session: AsyncSession, operator_id: str, presence: str) -> OperatorRow | None:
    """Stores the operator's chosen presence; their account as it is then (None if unknown)."""
    statement = (
        update(OperatorRow)
        .where(OperatorRow.operator_id == operator_id)
        .values(presence=presence, updated_at=func.now())
        .returning(OperatorRow)
    )
    return (await session.scalars(statement)).one_or_none()


async def tenant_by_id(session: AsyncSession, tenant_id: str) -> TenantRow | None:
    return await session.get(TenantRow, tenant_id)


class InvitationRow(Base):
    """An operator invited by email: the account is created when the link is accepted."""

    __tablename__ = "invitations"
    __table_args__ = (Index("ix_invitations_tenant", "tenant_id", "created_at"),)

    invitation_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(63), ForeignKey("tenants.tenant_id"))
    email: Mapped[str] = mapped_column(String(320))
    role: Mapped[str] = mapped_column(String(20))
    skills: Mapped[list[str]] = mapped_column(ARRAY(String(40)), default=list)
    capacity: Mapped[int] = mapped_column(Integer)
    language: Mapped[str] = mapped_column(String(2))
    invited_by: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    accepted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    operator_id: Mapped[str | None] = mapped_column(String(100), nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class CannedResponseRow(Base):
    """A reply an operator inserts with `/shortcut`, per tenant and language."""

    __tablename__ = "canned_responses"
    __table_args__ = (UniqueConstraint("tenant_id", "language", "shortcut", name="uq_canned_tenant_language_shortcut"),)

    response_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(63), ForeignKey("tenants.tenant_id"))
    language: Mapped[str] = mapped_column(String(2))
    shortcut: Mapped[str] = mapped_column(String(40))
    title: Mapped[str] = mapped_column(String(200))
    text: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class AuditRow(Base):
    """One administrative change: who (an operator id, or `platform-cli`), what, when, and the
    target's state before and after it (JSON; None for a creation's before)."""

    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_log_tenant_entry", "tenant_id", "entry_id"),)

    entry_id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(63))
    actor: Mapped[str] = mapped_column(String(100))
    action: Mapped[str] = mapped_column(String(60))
    target: Mapped[str] = mapped_column(String(200))
    before: Mapped[dict[str, Any] | None] = mapped_column(JSONB, nullable=True)
    after: Mapped[dict[str, Any] | None] = mapped_column(JSONB, nullable=True)
    occurred_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


async def record_audit(
    session: AsyncSession,
    *,
    tenant_id: str,
    actor: str,
    action: str,
    target: str,
    before: dict[str, Any] | None,
    after: dict[str, Any] | None,
) -> None:
    """Written in the same transaction as the change it describes: both are kept, or neither."""
    session.add(AuditRow(tenant_id=tenant_id, actor=actor, action=action, target=target, before=before, after=after))
    await session.flush()


async def audit_of(session: AsyncSession, tenant_id: str, *, limit: int, before: int | None) -> list[AuditRow]:
    """The tenant's entries, newest first; `before`: only entries older than that entry id."""
    query = select(AuditRow).where(AuditRow.tenant_id == tenant_id)
    if before is not None:
        query = query.where(AuditRow.entry_id < before)
    return list((await session.scalars(query.order_by(AuditRow.entry_id.desc()).limit(limit))).all())


def tenant_state(row: TenantRow) -> dict[str, Any]:
    """What the audit log keeps of a tenant (never its widget key: the log is readable by admins)."""
    return {
        "tenant_id": row.tenant_id,
        "name": row.name,
        "languages": list(row.languages),
        "default_language": row.default_language,
        "allowed_origins": list(row.allowed_origins),
        "disabled": row.disabled_at is not None,
        "time_zone": row.time_zone,
        "business_hours": list(row.business_hours or []),
        "profile_revision": row.profile_revision,
        "appearance": dict(row.widget or {}),
        "previous_key_expires_at": (
            row.previous_key_expires_at.isoformat() if row.previous_key_expires_at is not None else None
        ),
        "pending_verification": row.pending_verification,
    }


def operator_state(row: OperatorRow) -> dict[str, Any]:
    """What the audit log keeps of an account (never its password hash)."""
    return {
        "operator_id": row.operator_id,
        "username": row.username,
        "email": row.email,
        "display_name": row.display_name,
        "role": row.role,
        "skills": list(row.skills),
        "capacity": row.capacity,
        "active": row.active,
    }


def invitation_state(row: InvitationRow) -> dict[str, Any]:
    """What the audit log keeps of an invitation (never its link: it grants an account)."""
    return {
        "invitation_id": str(row.invitation_id),
        "email": row.email,
        "role": row.role,
        "skills": list(row.skills),
        "capacity": row.capacity,
        "language": row.language,
        "expires_at": row.expires_at.isoformat(),
        "accepted": row.accepted_at is not None,
        "operator_id": row.operator_id,
        "revoked": row.revoked_at is not None,
    }


def canned_state(row: CannedResponseRow) -> dict[str, Any]:
    return {
        "response_id": str(row.response_id),
        "language": row.language,
        "shortcut": row.shortcut,
        "title": row.title,
        "text": row.text,
    }


async def access_rows(session: AsyncSession) -> tuple[list[tuple[str, bool]], list[tuple[str, bool, int]]]:
    """What the access gate needs: the tenants refused (their id, and whether disabled rather than
    waiting for their sign-up's verification), and the accounts that are inactive or were ever
    deactivated (their id, active, token generation) - a handful of rows, not all."""
    tenants = (
        await session.execute(
            select(TenantRow.tenant_id, TenantRow.disabled_at.is_not(None).label("disabled")).where(
                TenantRow.disabled_at.is_not(None) | TenantRow.pending_verification.is_(True)
            )
        )
    ).all()
    accounts = (
        await session.execute(
            select(OperatorRow.operator_id, OperatorRow.active, OperatorRow.token_generation).where(
                (OperatorRow.active.is_(False)) | (OperatorRow.token_generation > 0)
            )
        )
    ).all()
    refused = [(t.tenant_id, t.disabled) for t in tenants]
    return refused, [(a.operator_id, a.active, a.token_generation) for a in accounts]
