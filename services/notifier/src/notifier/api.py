"""The notifier's internal API: the delivery log of a ticket, sending a failed delivery again, and
the channels a tenant's customers can be written to on (for the widget's contact form)."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Path, Query
from sqlalchemy import func

from contracts.readapi import DeliveryLogView, DeliveryView, TenantChannelsView
from notifier import store
from notifier.config import Settings
from notifier.domain import PhoneSenders
from notifier.store import Delivery
from notifier.tenants import Tenants
from servicekit.http import ApiError, ReadSession, Session

router = APIRouter(prefix="/internal", tags=["notifier API"])
TenantId = Annotated[str, Query(min_length=1, max_length=64)]


def view(delivery: Delivery) -> DeliveryView:
    return DeliveryView(
        delivery_id=delivery.delivery_id,
        source_event_id=delivery.source_event_id,
        source_event_type=delivery.source_event_type,
        ticket_id=delivery.ticket_id,
        channel=delivery.channel,
        template=delivery.template,
        recipient=delivery.recipient_masked,
        status=delivery.status,
        attempts=delivery.attempts,
        last_error=delivery.last_error,
        next_attempt_at=delivery.next_attempt_at if delivery.status == "pending" else None,
        created_at=delivery.created_at,
        updated_at=delivery.updated_at,
        sent_at=delivery.sent_at,
    )


@router.get("/deliveries", response_model=DeliveryLogView)
async def delivery_log(tenant_id: TenantId, ticket_id: uuid.UUID, session: ReadSession) -> DeliveryLogView:
    deliveries = await store.of_ticket(session, tenant_id, ticket_id)
    return DeliveryLogView(tenant_id=tenant_id, ticket_id=ticket_id, deliveries=[view(d) for d in deliveries])


@router.post("/deliveries/{delivery_id}/retry", response_model=DeliveryView)
async def retry_delivery(delivery_id: uuid.UUID, tenant_id: TenantId, session: Session) -> DeliveryView:
    """A failed delivery (dead-lettered) is tried again from scratch, with the same id, once the
    cause is fixed; its next outcome emits another `DeliveryCompleted`."""
    async with session.begin():
        delivery = await session.get(Delivery, delivery_id, with_for_update=True)
        if delivery is None or delivery.tenant_id != tenant_id:
            raise ApiError(404, "not_found", f"no delivery {delivery_id}")
        if delivery.status != "failed":
            raise ApiError(409, "not_failed", f"delivery {delivery_id} is {delivery.status}, not failed")
        delivery.status, delivery.attempts = "pending", 0
        delivery.next_attempt_at = delivery.updated_at = func.now()
    await session.refresh(delivery)
    return view(delivery)


def channels_router(settings: Settings, tenants: Tenants) -> APIRouter:
    """The channels of a tenant, from the tenant files and settings read at start-up (no I/O)."""
    channels = APIRouter(prefix="/internal", tags=["notifier API"])

    @channels.get("/tenants/{tenant_id}/channels", response_model=TenantChannelsView)
    async def tenant_channels(tenant_id: Annotated[str, Path(min_length=1, max_length=64)]) -> TenantChannelsView:
        """Email only for a tenant without a file (one that signed up, or unknown): it is notified
        from the platform's address and has no Twilio senders, as the handlers treat it."""
        tenant = tenants.get(tenant_id)
        senders = tenant.phone_senders(settings.twilio_enabled) if tenant else PhoneSenders()
        return TenantChannelsView(tenant_id=tenant_id, channels=senders.written_channels())

    return channels
