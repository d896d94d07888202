"""Tables of the tickets service (its own database) and the queries on them.

A command about a ticket locks the ticket's row first (`get_ticket(..., lock=True)`): its
commands and its SLA timers may reach different consumers (the gateway's commands are keyed by
the ticket, a conversation's by the conversation), and must not interleave.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import (
    BigInteger,
    DateTime,
    Float,
    ForeignKey,
    Index,
    String,
    UniqueConstraint,
    case,
    func,
    or_,
    select,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.sql.elements import ColumnElement

from contracts.common import ContactDetails, SlaClock, TicketPriority, TicketStatus, TranscriptExcerpt
from contracts.readapi import SlaState
from tickets import domain


class Base(DeclarativeBase):
    """The tables of this service's own database."""


class Ticket(Base):
    __tablename__ = "tickets"
    __table_args__ = (
        UniqueConstraint("tenant_id", "number", name="uq_tickets_tenant_number"),
        # One ticket per request, however often it is submitted or delivered.
        UniqueConstraint("tenant_id", "idempotency_key", name="uq_tickets_tenant_idempotency_key"),
        Index("ix_tickets_tenant_created", "tenant_id", "created_at"),
    )

    ticket_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(64))
    number: Mapped[str] = mapped_column(String(21))
    idempotency_key: Mapped[uuid.UUID] = mapped_column()
    conversation_id: Mapped[uuid.UUID | None] = mapped_column()
    source: Mapped[str] = mapped_column(String(12))
    created_by: Mapped[str | None] = mapped_column(String(100))
    status: Mapped[str] = mapped_column(String(20))
    priority: Mapped[str] = mapped_column(String(10))
    assignee_id: Mapped[str | None] = mapped_column(String(100))
    contact: Mapped[dict[str, object]] = mapped_column(JSONB)
    contact_name: Mapped[str] = mapped_column(String(200))
    # The contact as a lookup compares it (domain.email_key, domain.phone_key).
    email_key: Mapped[str | None] = mapped_column(String(254))
    phone_key: Mapped[str | None] = mapped_column(String(24))
    language: Mapped[str | None] = mapped_column(String(2))
    subject: Mapped[str] = mapped_column(String(1000))
    message: Mapped[str] = mapped_column(String(4000))
    # The bounded excerpt as the command carried it, with its transcript_url (the whole
    # transcript stays in the conversation service, read through that path).
    transcript: Mapped[dict[str, object] | None] = mapped_column(JSONB)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    @property
    def current_status(self) -> TicketStatus:
        return TicketStatus(self.status)

    @property
    def current_priority(self) -> TicketPriority:
        return TicketPriority(self.priority)

    @property
    def contact_details(self) -> ContactDetails:
        return ContactDetails.model_validate(self.contact)

    @property
    def transcript_excerpt(self) -> TranscriptExcerpt | None:
        return TranscriptExcerpt.model_validate(self.transcript) if self.transcript is not None else None


class TicketCounter(Base):
    """The last number given to one of the tenant's tickets (numbers are never reused)."""

    __tablename__ = "ticket_counters"

    tenant_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    last_number: Mapped[int] = mapped_column(BigInteger)


class Reply(Base):
    """A public reply (operator or customer); its id, chosen by the caller, makes a retry one reply."""

    __tablename__ = "ticket_replies"
    __table_args__ = (Index("ix_ticket_replies_ticket", "ticket_id", "created_at"),)

    reply_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    ticket_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tickets.ticket_id"))
    author: Mapped[str] = mapped_column(String(10))
    operator_id: Mapped[str | None] = mapped_column(String(100))
    text: Mapped[str] = mapped_column(String(4000))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class Note(Base):
    """An internal note: operators only."""

    __tablename__ = "ticket_notes"
    __table_args__ = (Index("ix_ticket_notes_ticket", "ticket_id", "created_at"),)

    note_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    ticket_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tickets.ticket_id"))
    operator_id: Mapped[str] = mapped_column(String(100))
    text: Mapped[str] = mapped_column(String(4000))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class StatusChange(Base):
    __tablename__ = "ticket_status_changes"
    __table_args__ = (Index("ix_ticket_status_changes_ticket", "ticket_id", "id"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    ticket_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tickets.ticket_id"))
    status: Mapped[str] = mapped_column(String(20))
    previous_status: Mapped[str | None] = mapped_column(String(20))
    changed_by: Mapped[str] = mapped_column(String(100))
    changed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class SlaClockRow(Base):
    """One SLA clock of a ticket. Running: `running_since` set and the two deadlines of this run
    (`warning_at`, `due_at`) stored, with a durable timer each. Paused: the business seconds it
    used are in `used_seconds`, no deadlines, no timers. `warned_at`, `breached_at`: each event
    once, set in the transaction that stages it."""

    __tablename__ = "sla_clocks"

    ticket_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tickets.ticket_id"), primary_key=True)
    clock: Mapped[str] = mapped_column(String(20), primary_key=True)
    target_seconds: Mapped[float] = mapped_column(Float)
    used_seconds: Mapped[float] = mapped_column(Float)
    running_since: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    warning_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    due_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    warned_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    breached_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    met_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    @property
    def kind(self) -> SlaClock:
        return SlaClock(self.clock)

    @property
    def reading(self) -> domain.ClockReading:
        return domain.ClockReading(
            target_seconds=self.target_seconds,
            used_seconds=self.used_seconds,
            running_since=self.running_since,
            warned=self.warned_at is not None,
            breached=self.breached_at is not None,
            met=self.met_at is not None,
        )


class TenantProfileRow(Base):
    """The newest `tenant.profile_changed` snapshot received for a tenant: the time zone and
    business hours its new SLA clocks count in (`tickets.profiles`). `business_hours` is the
    contract's list of `{days, start, end}`; empty means always open."""

    __tablename__ = "tenant_profiles"

    tenant_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    revision: Mapped[int] = mapped_column(BigInteger)
    time_zone: Mapped[str] = mapped_column(String(64))
    business_hours: Mapped[list[dict[str, object]]] = mapped_column(JSONB)
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


async def get_ticket(
    session: AsyncSession, tenant_id: str, ticket_id: uuid.UUID, *, lock: bool = False
) -> Ticket | None:
    """The tenant's ticket; another tenant's is None, as an unknown one."""
    ticket = await session.get(Ticket, ticket_id, with_for_update=lock or None)
    return ticket if ticket is not None and ticket.tenant_id == tenant_id else None


async def ticket_by_idempotency_key(session: AsyncSession, tenant_id: str, key: uuid.UUID) -> Ticket | None:
    return await session.scalar(select(Ticket).where(Ticket.tenant_id == tenant_id, Ticket.idempotency_key == key))


async def ticket_by_number(session: AsyncSession, tenant_id: str, number: str) -> Ticket | None:
    return await session.scalar(select(Ticket).where(Ticket.tenant_id == tenant_id, Ticket.number == number))


async def lookup_keys(
    session: AsyncSession, tenant_id: str, number: str
) -> Row[uuid.UUID, str | None, str | None] | None:
    """Only what a status-page lookup compares (the same small read whether the contact matches)."""
    query = select(Ticket.ticket_id, Ticket.email_key, Ticket.phone_key).where(
        Ticket.tenant_id == tenant_id, Ticket.number == number
    )
    return (await session.execute(query)).first()


_NEXT_NUMBER = text(
    "INSERT INTO ticket_counters (tenant_id, last_number) VALUES (:tenant_id, 1)"
    " ON CONFLICT (tenant_id) DO UPDATE SET last_number = ticket_counters.last_number + 1"
    " RETURNING last_number"
)


async def next_number(session: AsyncSession, tenant_id: str) -> int:
    """The tenant's next counter value. The row stays locked until the transaction ends, so two
    tickets of a tenant never get one number; a rolled-back transaction gives its number back."""
    return int((await session.execute(_NEXT_NUMBER, {"tenant_id": tenant_id})).scalar_one())


async def clocks_of(session: AsyncSession, ticket_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, list[SlaClockRow]]:
    found: dict[uuid.UUID, list[SlaClockRow]] = {ticket_id: [] for ticket_id in ticket_ids}
    if ticket_ids:
        rows = await session.scalars(
            select(SlaClockRow).where(SlaClockRow.ticket_id.in_(ticket_ids)).order_by(SlaClockRow.clock)
        )
        for row in rows:
            found[row.ticket_id].append(row)
    return found


async def get_clock(session: AsyncSession, ticket_id: uuid.UUID, clock: SlaClock) -> SlaClockRow | None:
    return await session.get(SlaClockRow, (ticket_id, clock.value))


async def replies_of(session: AsyncSession, ticket_id: uuid.UUID) -> list[Reply]:
    rows = await session.scalars(
        select(Reply).where(Reply.ticket_id == ticket_id).order_by(Reply.created_at, Reply.reply_id)
    )
    return list(rows)


async def notes_of(session: AsyncSession, ticket_id: uuid.UUID) -> list[Note]:
    rows = await session.scalars(select(Note).where(Note.ticket_id == ticket_id).order_by(Note.created_at))
    return list(rows)


async def history_of(session: AsyncSession, ticket_id: uuid.UUID) -> list[StatusChange]:
    rows = await session.scalars(
        select(StatusChange).where(StatusChange.ticket_id == ticket_id).order_by(StatusChange.id)
    )
    return list(rows)


def _clock_severity(now: datetime) -> ColumnElement[int]:
    # domain.ClockReading.state in SQL, as a severity (domain.SLA_SEVERITY): the stored deadlines
    # are instants already counted in business time, so comparing them with now is enough.
    c = SlaClockRow
    return case(
        (or_(c.breached_at.is_not(None), (c.met_at.is_(None) & (c.due_at <= now))), 4),
        (c.met_at.is_not(None), 0),
        (c.running_since.is_(None), 1),
        (or_(c.warned_at.is_not(None), c.warning_at <= now), 3),
        else_=2,
    )


async def search(
    session: AsyncSession,
    tenant_id: str,
    now: datetime,
    *,
    status: TicketStatus | None = None,
    priority: TicketPriority | None = None,
    sla: SlaState | None = None,
    assignee_id: str | None = None,
    q: str | None = None,
    limit: int = 50,
) -> list[Ticket]:
    """The tenant's tickets matching every filter given, newest first."""
    query = select(Ticket).where(Ticket.tenant_id == tenant_id)
    if status is not None:
        query = query.where(Ticket.status == status.value)
    if priority is not None:
        query = query.where(Ticket.priority == priority.value)
    if assignee_id is not None:
        query = query.where(Ticket.assignee_id == assignee_id)
    if q:
        pattern = "%" + q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        query = query.where(
            or_(
                *(
                    column.ilike(pattern, escape="\\")
                    for column in (Ticket.number, Ticket.contact_name, Ticket.email_key, Ticket.subject, Ticket.message)
                )
            )
        )
    if sla is not None:
        worst = (
            select(func.max(_clock_severity(now)))
            .where(SlaClockRow.ticket_id == Ticket.ticket_id)
            .correlate(Ticket)
            .scalar_subquery()
        )
        query = query.where(func.coalesce(worst, domain.SLA_SEVERITY["on_time"]) == domain.SLA_SEVERITY[sla])
    rows = await session.scalars(query.order_by(Ticket.created_at.desc(), Ticket.ticket_id).limit(limit))
    return list(rows)
