"""The notifier's tables: its copy of each ticket's contact, of each tenant's profile, and the
deliveries (the delivery log and the worker's queue in one table)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Literal

from sqlalchemy import DateTime, Index, Integer, String, Text, Uuid, func, select, text, update
from sqlalchemy.dialects.postgresql import ARRAY, insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from contracts.common import ContactChannel, ContactDetails
from servicekit.db import store_if_newer

DeliveryStatus = Literal["pending", "sending", "sent", "failed"]
# Rows the worker still has to send: waiting for their (next) try, or claimed by a process that
# may have died (`next_attempt_at` is then the end of its lease).
UNFINISHED = ("pending", "sending")


class Base(DeclarativeBase):
    pass


class TicketCopy(Base):
    """What the notifier keeps of a ticket from `TicketOpened`: later events about the ticket
    (replies, resolution, breaches) do not repeat the customer's contact."""

    __tablename__ = "tickets"

    ticket_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(64))
    ticket_number: Mapped[str] = mapped_column(String(21))
    # What the request is about: every email of the ticket carries it in its subject, so mail
    # clients that thread by subject keep them together.
    subject: Mapped[str] = mapped_column(String(1000), default="", server_default="")
    conversation_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, nullable=True)
    contact_name: Mapped[str] = mapped_column(String(200))
    email: Mapped[str | None] = mapped_column(String(254), nullable=True)
    phone: Mapped[str | None] = mapped_column(String(24), nullable=True)
    preferred_contact: Mapped[str] = mapped_column(String(10))
    language: Mapped[str | None] = mapped_column(String(2), nullable=True)
    opened_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    @property
    def contact(self) -> ContactDetails:
        return ContactDetails(
            name=self.contact_name,
            email=self.email,
            phone=self.phone,
            preferred_contact=ContactChannel(self.preferred_contact),
        )


class TenantProfile(Base):
    """The newest `tenant.profile_changed` of a tenant: its name, languages (the default first) and
    time zone, used instead of the tenant file's (which stays the default and keeps the senders,
    supervisors, Twilio numbers and webhooks)."""

    __tablename__ = "tenant_profiles"

    tenant_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    revision: Mapped[int] = mapped_column(Integer)
    name: Mapped[str] = mapped_column(String(200))
    languages: Mapped[list[str]] = mapped_column(ARRAY(String(2)))
    time_zone: Mapped[str] = mapped_column(String(64))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


async def keep_profile(session: AsyncSession, profile: TenantProfile) -> bool:
    """Stores the snapshot unless a revision as new or newer is stored (redeliveries, a gateway's
    start-up announcements, an older snapshot arriving late); True when it was stored."""
    values = {
        "tenant_id": profile.tenant_id,
        "revision": profile.revision,
        "name": profile.name,
        "languages": list(profile.languages),
        "time_zone": profile.time_zone,
    }
    return await store_if_newer(session, TenantProfile, values, key="tenant_id", also_set={"updated_at": func.now()})


async def get_profile(session: AsyncSession, tenant_id: str) -> TenantProfile | None:
    return await session.get(TenantProfile, tenant_id)


class Delivery(Base):
    """One notification to one recipient on one channel, rendered when its event was applied.

    `delivery_id` is its idempotency key (`domain.delivery_id`), so an event recorded twice makes
    one row. `status`: pending (waiting for `next_attempt_at`) → sending (claimed by a worker until
    `next_attempt_at`, its lease) → sent, or failed after its last try; a failed try makes it
    pending again, later."""

    __tablename__ = "deliveries"

    delivery_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(64))
    ticket_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, nullable=True)
    conversation_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, nullable=True)
    correlation_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    source_event_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    source_event_type: Mapped[str] = mapped_column(String(80))
    channel: Mapped[str] = mapped_column(String(10))
    template: Mapped[str] = mapped_column(String(80))
    recipient: Mapped[str] = mapped_column(String(1000))
    recipient_masked: Mapped[str] = mapped_column(String(200))
    subject: Mapped[str] = mapped_column(Text, default="")
    body: Mapped[str] = mapped_column(Text)
    html: Mapped[str | None] = mapped_column(Text, nullable=True)
    status: Mapped[str] = mapped_column(String(10), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    last_error: Mapped[str] = mapped_column(Text, default="")
    provider_message_id: Mapped[str | None] = mapped_column(String(200), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)

    __table_args__ = (
        # The worker's claim reads only unfinished rows, the earliest due first.
        Index("ix_deliveries_due", "next_attempt_at", postgresql_where=text("status IN ('pending', 'sending')")),
        Index("ix_deliveries_ticket", "tenant_id", "ticket_id", "created_at"),
    )


async def keep_ticket(session: AsyncSession, ticket: TicketCopy) -> None:
    """The first copy wins: a ticket is opened once."""
    values = {column.key: getattr(ticket, column.key) for column in TicketCopy.__table__.columns}
    await session.execute(insert(TicketCopy).values(values).on_conflict_do_nothing(index_elements=["ticket_id"]))


async def get_ticket(session: AsyncSession, tenant_id: str, ticket_id: uuid.UUID) -> TicketCopy | None:
    ticket = await session.get(TicketCopy, ticket_id)
    return ticket if ticket is not None and ticket.tenant_id == tenant_id else None


async def record(session: AsyncSession, deliveries: Sequence[Delivery]) -> list[uuid.UUID]:
    """Stores new deliveries; one whose id exists already is left as it is (the unique key makes
    the same notification one row). Returns the ids that are new."""
    if not deliveries:
        return []
    columns = [
        c.key for c in Delivery.__table__.columns if c.key not in ("next_attempt_at", "created_at", "updated_at")
    ]
    rows = [{name: getattr(delivery, name) for name in columns} for delivery in deliveries]
    statement = insert(Delivery).values(rows).on_conflict_do_nothing(index_elements=["delivery_id"])
    return list(await session.scalars(statement.returning(Delivery.delivery_id)))


async def claim_due(session: AsyncSession, limit: int, lease: timedelta) -> list[Delivery]:
    """Marks up to `limit` due deliveries `sending` for `lease`, counting the try, and returns
    them. Rows another replica is claiming are skipped, not waited for."""
    due = (
        select(Delivery.delivery_id)
        .where(Delivery.status.in_(UNFINISHED), Delivery.next_attempt_at <= func.now())
        .order_by(Delivery.next_attempt_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    claimed = (
        update(Delivery)
        .where(Delivery.delivery_id.in_(due.scalar_subquery()))
        .values(
            status="sending",
            attempts=Delivery.attempts + 1,
            next_attempt_at=func.now() + lease,
            updated_at=func.now(),
        )
        .returning(Delivery)
        .execution_options(synchronize_session=False)
    )
    return list(await session.scalars(claimed))


async def claimed(session: AsyncSession, delivery_id: uuid.UUID, attempts: int) -> Delivery | None:
    """The delivery, locked, if it is still the claim of try `attempts` (not reclaimed by another
    worker after its lease ran out, nor finished by one)."""
    delivery = await session.get(Delivery, delivery_id, with_for_update=True, populate_existing=True)
    if delivery is None or delivery.status != "sending" or delivery.attempts != attempts:
        return None
    return delivery


async def of_ticket(session: AsyncSession, tenant_id: str, ticket_id: uuid.UUID) -> list[Delivery]:
    rows = await session.scalars(
        select(Delivery)
        .where(Delivery.tenant_id == tenant_id, Delivery.ticket_id == ticket_id)
        .order_by(Delivery.created_at, Delivery.delivery_id)
    )
    return list(rows)


async def backlog(session: AsyncSession) -> dict[str, int]:
    """Unfinished deliveries by status."""
    rows = await session.execute(
        select(Delivery.status, func.count()).where(Delivery.status.in_(UNFINISHED)).group_by(Delivery.status)
    )
    return {status: 0 for status in UNFINISHED} | {status: count for status, count in rows.all()}
