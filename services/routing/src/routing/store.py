"""Tables of the routing service (its own database) and the queries on them.

Every decision about a tenant (offer, take, transfer, release, presence) first takes the
tenant's lock (`lock_tenant`), so that two transactions never count the same free seat twice,
whichever replica or HTTP request runs them. One decision counts no seat and moves no one: an
operator accepting the offer made to it (the offer already counts in its load). It locks only the
conversation's row and then the operator's, so every decision that changes a conversation or an
operator it may be accepting reads them locked (`get_conversation`, `offered_to`,
`get_operator(lock=True)`).
"""

from __future__ import annotations

import uuid
from collections.abc import Collection
from datetime import datetime
from typing import cast

from sqlalchemy import DateTime, Index, Integer, String, exists, func, select, text, tuple_
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from contracts.common import OperatorPresence
from routing import domain


class Base(DeclarativeBase):
    """The tables of this service's own database."""


class OperatorRecord(Base):
    """An operator as routing sees it: presence, skills, capacity and its round-robin turn."""

    __tablename__ = "operators"

    tenant_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    operator_id: Mapped[str] = mapped_column(String(100), primary_key=True)
    display_name: Mapped[str] = mapped_column(String(200))
    presence: Mapped[str] = mapped_column(String(10))
    # The presence the operator last chose (repeated by every heartbeat); `presence` may differ
    # when routing decided (away after missed offers, offline when heartbeats stopped).
    requested_presence: Mapped[str | None] = mapped_column(String(10))
    skills: Mapped[list[str]] = mapped_column(JSONB, default=list)
    capacity: Mapped[int] = mapped_column(Integer)
    missed_offers: Mapped[int] = mapped_column(Integer, default=0)
    last_assigned_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_seen_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    @property
    def current_presence(self) -> OperatorPresence:
        return cast(OperatorPresence, self.presence)


class RoutedConversation(Base):
    """A conversation in routing's hands: waiting in the queue, offered to one operator, or
    assigned. The row goes when the conversation leaves the operator states."""

    __tablename__ = "routed_conversations"
    __table_args__ = (
        Index("ix_routed_conversations_tenant_state", "tenant_id", "state"),
        Index("ix_routed_conversations_tenant_operator", "tenant_id", "operator_id"),
    )

    conversation_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(10))
    priority: Mapped[str] = mapped_column(String(10))
    reason: Mapped[str | None] = mapped_column(String(40))
    intent: Mapped[str | None] = mapped_column(String(40))
    wanted_skills: Mapped[list[str]] = mapped_column(JSONB, default=list)
    excluded_operator_id: Mapped[str | None] = mapped_column(String(100))
    declined_by: Mapped[list[str]] = mapped_column(JSONB, default=list)
    waiting_since: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    # The operator it is offered to (state offered) or assigned to (state assigned).
    operator_id: Mapped[str | None] = mapped_column(String(100))
    offer_id: Mapped[uuid.UUID | None] = mapped_column()
    offer_expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    assigned_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # The queue position the customer was last told, so that only changes are announced.
    last_position: Mapped[int | None] = mapped_column(Integer)

    @property
    def entry_state(self) -> domain.EntryState:
        assert self.state in ("waiting", "offered", "assigned")
        return cast(domain.EntryState, self.state)

    def as_waiting(self) -> domain.Waiting:
        return domain.Waiting(
            conversation_id=self.conversation_id,
            priority="high" if self.priority == "high" else "normal",
            waiting_since=self.waiting_since,
            wanted_skills=frozenset(self.wanted_skills),
            excluded_operator_id=self.excluded_operator_id,
            declined_by=tuple(self.declined_by),
        )


async def lock_tenant(session: AsyncSession, tenant_id: str, *, shared: bool = False) -> None:
    """Serialises the tenant's routing decisions until the transaction ends. `shared`: for a
    decision that counts no seat and drains nothing (see the API's take), which then runs beside
    others of its kind, never beside an exclusive one."""
    function = "pg_advisory_xact_lock_shared" if shared else "pg_advisory_xact_lock"
    await session.execute(text(f"SELECT {function}(hashtextextended(:tenant, 0))"), {"tenant": tenant_id})


async def get_operator(
    session: AsyncSession, tenant_id: str, operator_id: str, *, lock: bool = False
) -> OperatorRecord | None:
    """`lock`: the row locked until the transaction ends, and read afresh (see `get_conversation`)."""
    if lock:
        return await session.get(OperatorRecord, (tenant_id, operator_id), with_for_update=True, populate_existing=True)
    return await session.get(OperatorRecord, (tenant_id, operator_id))


async def load_operators(session: AsyncSession, keys: Collection[tuple[str, str]]) -> None:
    """Loads these operators (tenant, operator id) into the session in one query, so that
    `get_operator` finds them there until the transaction ends."""
    if keys:
        rows = await session.scalars(
            select(OperatorRecord).where(tuple_(OperatorRecord.tenant_id, OperatorRecord.operator_id).in_(list(keys)))
        )
        # The session's identity map holds its objects weakly: kept here, they stay in it.
        session.info["routing.loaded_operators"] = list(rows)


async def operator_records(session: AsyncSession, tenant_id: str) -> list[OperatorRecord]:
    rows = await session.scalars(
        select(OperatorRecord).where(OperatorRecord.tenant_id == tenant_id).order_by(OperatorRecord.operator_id)
    )
    return list(rows)


async def loads(session: AsyncSession, tenant_id: str) -> dict[str, dict[str, int]]:
    """Per operator of the tenant, how many conversations it has offered and assigned."""
    rows = await session.execute(
        select(RoutedConversation.operator_id, RoutedConversation.state, func.count())
        .where(RoutedConversation.tenant_id == tenant_id, RoutedConversation.operator_id.is_not(None))
        .group_by(RoutedConversation.operator_id, RoutedConversation.state)
    )
    found: dict[str, dict[str, int]] = {}
    for operator_id, state, count in rows.all():
        if operator_id is not None:  # excluded by the query; narrows the type
            found.setdefault(operator_id, {})[state] = count
    return found


async def online_operators(session: AsyncSession, tenant_id: str) -> list[domain.Operator]:
    """The tenant's online operators (the only ones offered anything, or counted in an estimated
    wait) with their load (assigned conversations and pending offers), in one query: a drain
    reads them once, whatever the number of events that asked for it."""
    load = (
        select(RoutedConversation.operator_id, func.count().label("load"))
        .where(RoutedConversation.tenant_id == tenant_id, RoutedConversation.operator_id.is_not(None))
        .group_by(RoutedConversation.operator_id)
        .subquery()
    )
    rows = await session.execute(
        select(
            OperatorRecord.operator_id,
            OperatorRecord.skills,
            OperatorRecord.capacity,
            OperatorRecord.last_assigned_at,
            func.coalesce(load.c.load, 0),
        )
        .outerjoin(load, load.c.operator_id == OperatorRecord.operator_id)
        .where(OperatorRecord.tenant_id == tenant_id, OperatorRecord.presence == "online")
        .order_by(OperatorRecord.operator_id)
    )
    return [
        domain.Operator(
            operator_id=operator_id,
            presence="online",
            skills=frozenset(skills),
            capacity=capacity,
            load=count,
            last_assigned_at=last_assigned_at,
        )
        for operator_id, skills, capacity, last_assigned_at, count in rows.all()
    ]


async def anyone_online(session: AsyncSession, tenant_id: str) -> bool:
    return bool(
        await session.scalar(
            select(exists().where(OperatorRecord.tenant_id == tenant_id, OperatorRecord.presence == "online"))
        )
    )


async def anyone_waiting(session: AsyncSession, tenant_id: str) -> bool:
    """Whether a conversation of the tenant waits without an offer (index on tenant and state)."""
    return bool(
        await session.scalar(
            select(exists().where(RoutedConversation.tenant_id == tenant_id, RoutedConversation.state == "waiting"))
        )
    )


async def assigned_count(session: AsyncSession, tenant_id: str, operator_id: str) -> int:
    """How many conversations the operator has (index on tenant and operator)."""
    count = await session.scalar(
        select(func.count()).where(
            RoutedConversation.tenant_id == tenant_id,
            RoutedConversation.operator_id == operator_id,
            RoutedConversation.state == "assigned",
        )
    )
    return int(count or 0)


async def get_conversation(session: AsyncSession, conversation_id: uuid.UUID) -> RoutedConversation | None:
    """The conversation's row, locked until the transaction ends and read afresh: an operator's
    acceptance of its offer (the API's take) changes it under this lock alone, not the tenant's,
    so a copy read earlier in the transaction may be stale."""
    return await session.get(RoutedConversation, conversation_id, with_for_update=True, populate_existing=True)


async def unassigned(session: AsyncSession, tenant_id: str) -> list[RoutedConversation]:
    """The tenant's queue: conversations waiting or offered, in no particular order."""
    rows = await session.scalars(
        select(RoutedConversation).where(
            RoutedConversation.tenant_id == tenant_id, RoutedConversation.state.in_(("waiting", "offered"))
        )
    )
    return list(rows)


async def offered_to(session: AsyncSession, tenant_id: str, operator_id: str) -> list[RoutedConversation]:
    """The operator's pending offers, locked (see `get_conversation`): one accepted meanwhile is
    not among them."""
    rows = await session.scalars(
        select(RoutedConversation)
        .where(
            RoutedConversation.tenant_id == tenant_id,
            RoutedConversation.operator_id == operator_id,
            RoutedConversation.state == "offered",
        )
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    return list(rows)
