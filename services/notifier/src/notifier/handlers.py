"""Subscribers of the notifier: each ticket event becomes the deliveries it calls for, each
account email request (`tenant.account_email_requested`) its email, and each tenant profile
(`tenant.profile_changed`) the name, languages and time zone its notifications use.

A handler sends nothing. It renders each notification and records it as a pending delivery in the
consumer's transaction, so that the rows commit with the event's id, exactly once; the delivery
worker (`notifier.worker`) sends them, each on its own, and retries it without holding anything
else back.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from contracts import Envelope, ticketlinks
from contracts.common import DeliveryChannel, SlaClock, TicketStatus
from contracts.events import (
    AccountEmailRequested,
    SlaBreached,
    SlaWarning,
    TenantProfileChanged,
    TicketNoteAdded,
    TicketOpened,
    TicketReplyPosted,
    TicketUpdated,
)
from notifier import domain, store
from notifier.config import Settings
from notifier.messages import Templates
from notifier.store import Delivery, TenantProfile, TicketCopy
from notifier.tenants import EmailSettings, TenantConfig, Tenants
from servicekit.consumer import EventConsumer
from servicekit.logs import get_logger

log = get_logger(__name__)

CLOCK_NAMES = {
    "it": {SlaClock.FIRST_RESPONSE: "prima risposta", SlaClock.RESOLUTION: "risoluzione"},
    "en": {SlaClock.FIRST_RESPONSE: "first response", SlaClock.RESOLUTION: "resolution"},
}


@dataclass
class Notifications:
    """The deliveries one event calls for, rendered, keyed by their idempotency key."""

    envelope: Envelope[Any]
    ticket_id: uuid.UUID | None
    deliveries: list[Delivery] = field(default_factory=list)
    # What the deliveries' ids derive from: the event's id, or a request's own idempotency key (an
    # account email is one per request, whatever event carries it).
    idempotency_key: uuid.UUID | None = None

    def add(
        self,
        channel: DeliveryChannel,
        template: str,
        recipient: str,
        body: str,
        *,
        subject: str = "",
        html: str | None = None,
    ) -> None:
        self.deliveries.append(
            Delivery(
                delivery_id=domain.delivery_id(
                    self.idempotency_key or self.envelope.event_id, channel, template, recipient
                ),
                tenant_id=self.envelope.tenant_id,
                ticket_id=self.ticket_id,
                conversation_id=self.envelope.conversation_id,
                correlation_id=self.envelope.correlation_id,
                source_event_id=self.envelope.event_id,
                source_event_type=self.envelope.type,
                channel=channel.value,
                template=template,
                recipient=recipient,
                recipient_masked=domain.mask(channel, recipient),
                subject=subject,
                body=body,
                html=html,
                status="pending",
                attempts=0,
                last_error="",
            )
        )


class Composer:
    """Renders the notifications of the tenant's settings and templates."""

    def __init__(self, settings: Settings, templates: Templates) -> None:
        self.settings = settings
        self.templates = templates

    def status_url(self, tenant_id: str, ticket_id: uuid.UUID) -> str:
        token = ticketlinks.sign(self.settings.ticket_link_secret, ticketlinks.TicketLink(tenant_id, ticket_id))
        return ticketlinks.status_page_url(self.settings.public_base_url, token)

    def to_customer(
        self,
        notifications: Notifications,
        tenant: TenantConfig,
        ticket: TicketCopy,
        template: str,
        **context: Any,
    ) -> None:
        """The customer's notice on the channel they chose (or the next best the tenant has),
        with the signed link to the ticket's status page, where they can read and answer."""
        reach = domain.customer_reach(
            ticket.contact, tenant.phone_senders(self.settings.twilio_enabled), tenant.phone_country_code
        )
        if reach is None:
            log.warning("customer cannot be reached on any channel the tenant has", ticket_id=str(ticket.ticket_id))
            return
        language = domain.language(ticket.language, tenant.languages)
        context |= {
            "customer_name": ticket.contact_name,
            "ticket_number": ticket.ticket_number,
            "ticket_subject": domain.subject_line(ticket.subject),
            "tenant_name": tenant.name or tenant.tenant_id,
            "status_url": self.status_url(tenant.tenant_id, ticket.ticket_id),
        }
        if reach.channel == DeliveryChannel.EMAIL:
            email = self.templates.email(template, language, context, html=self.settings.email_html)
            notifications.add(
                reach.channel, template, reach.recipient, email.text, subject=email.subject, html=email.html
            )
        else:
            text = self.templates.short(template, language, context)
            notifications.add(reach.channel, template, reach.recipient, text)

    def to_supervisors(self, notifications: Notifications, tenant: TenantConfig, template: str, **context: Any) -> None:
        language = domain.language(None, tenant.languages)
        context |= {
            "tenant_name": tenant.name or tenant.tenant_id,
            "dashboard_url": f"{self.settings.public_base_url.rstrip('/')}/dashboard",
        }
        email = self.templates.email(template, language, context, html=self.settings.email_html)
        for supervisor in tenant.supervisors:
            notifications.add(
                DeliveryChannel.EMAIL, template, str(supervisor), email.text, subject=email.subject, html=email.html
            )

    @staticmethod
    def to_webhooks(notifications: Notifications, tenant: TenantConfig) -> None:
        """One delivery per subscription to the event's type; the body is fixed now, the signature
        is made at each try (its timestamp is the try's)."""
        envelope = notifications.envelope
        for hook in tenant.webhooks_for(envelope.type):
            body = domain.webhook_body(
                envelope.type,
                event_id=envelope.event_id,
                tenant_id=envelope.tenant_id,
                conversation_id=envelope.conversation_id,
                occurred_at=envelope.occurred_at,
                payload=envelope.payload,
            )
            notifications.add(DeliveryChannel.WEBHOOK, envelope.type, str(hook.url), json.dumps(body))


def with_profile(config: TenantConfig, profile: TenantProfile | None) -> TenantConfig:
    """The tenant file's settings, with the name, languages and time zone of the newest profile."""
    if profile is None:
        return config
    return config.model_copy(
        update={"name": profile.name, "languages": list(profile.languages), "timezone": profile.time_zone}
    )


def register(consumer: EventConsumer, settings: Settings, tenants: Tenants, templates: Templates) -> None:
    composer = Composer(settings, templates)

    async def tenant_of(session: AsyncSession, tenant_id: str) -> TenantConfig | None:
        """The tenant's notification settings: its file with its newest profile, or, for a tenant
        with no file (one that signed up), its profile with the platform's email sender and no
        supervisors, Twilio senders or webhooks. None when neither is known."""
        config = tenants.get(tenant_id)
        profile = await store.get_profile(session, tenant_id)
        if config is None:
            if profile is None:
                return None
            config = TenantConfig(
                tenant_id=tenant_id,
                languages=list(profile.languages),
                email=EmailSettings(sender=settings.platform_email_sender),
            )
        return with_profile(config, profile)

    async def notify(
        envelope: Envelope[Any],
        session: AsyncSession,
        ticket_id: uuid.UUID,
        *,
        customer: str | None = None,
        **context: Any,
    ) -> None:
        """Records the event's webhooks and, when `customer` names a template, the customer's notice."""
        tenant = await tenant_of(session, envelope.tenant_id)
        if tenant is None:
            log.warning("no notification settings for the tenant; nothing sent", event_type=envelope.type)
            return
        notifications = Notifications(envelope, ticket_id)
        if customer is not None:
            ticket = await store.get_ticket(session, envelope.tenant_id, ticket_id)
            if ticket is None:
                # Its TicketOpened never reached this store (opened before the notifier ran).
                log.warning("ticket unknown to the notifier; the customer is not told", ticket_id=str(ticket_id))
            else:
                composer.to_customer(notifications, tenant, ticket, customer, **context)
        composer.to_webhooks(notifications, tenant)
        await store.record(session, notifications.deliveries)

    @consumer.on(TicketOpened)
    async def on_ticket_opened(envelope: Envelope[TicketOpened], session: AsyncSession) -> None:
        opened = envelope.payload
        await store.keep_ticket(
            session,
            TicketCopy(
                ticket_id=opened.ticket_id,
                tenant_id=envelope.tenant_id,
                ticket_number=opened.ticket_number,
                subject=opened.subject,
                conversation_id=envelope.conversation_id,
                contact_name=opened.contact.name,
                email=opened.contact.email,
                phone=opened.contact.phone,
                preferred_contact=opened.contact.preferred_contact.value,
                language=opened.language,
                opened_at=envelope.occurred_at,
            ),
        )
        tenant = await tenant_of(session, envelope.tenant_id)
        language = domain.language(opened.language, tenant.languages if tenant else [])
        response_due = (
            domain.local_time(opened.first_response_due, tenant.timezone, language)
            if tenant is not None and opened.first_response_due is not None
            else None
        )
        await notify(
            envelope,
            session,
            opened.ticket_id,
            customer="ticket_created",
            response_due=response_due,
            # A copy of what they asked (the subject when they wrote no message: the conversation's
            # first question), so the customer knows which request this is and what it said.
            request=opened.message or opened.subject,
            transcript=domain.transcript_tail(opened.transcript),
        )

    @consumer.on(TicketReplyPosted)
    async def on_reply_posted(envelope: Envelope[TicketReplyPosted], session: AsyncSession) -> None:
        reply = envelope.payload
        # The customer's own answer is not sent back to them.
        template = "operator_replied" if reply.author == "operator" else None
        await notify(envelope, session, reply.ticket_id, customer=template, reply_text=reply.text)

    @consumer.on(TicketUpdated)
    async def on_ticket_updated(envelope: Envelope[TicketUpdated], session: AsyncSession) -> None:
        update = envelope.payload
        resolved = update.status == TicketStatus.RESOLVED and update.previous_status != TicketStatus.RESOLVED
        await notify(envelope, session, update.ticket_id, customer="ticket_resolved" if resolved else None)

    @consumer.on(TicketNoteAdded)
    async def on_note_added(envelope: Envelope[TicketNoteAdded], session: AsyncSession) -> None:
        await notify(envelope, session, envelope.payload.ticket_id)  # internal: webhooks only

    @consumer.on(SlaWarning)
    async def on_sla_warning(envelope: Envelope[SlaWarning], session: AsyncSession) -> None:
        await notify(envelope, session, envelope.payload.ticket_id)

    @consumer.on(SlaBreached)
    async def on_sla_breached(envelope: Envelope[SlaBreached], session: AsyncSession) -> None:
        breach = envelope.payload
        await notify(envelope, session, breach.ticket_id)
        tenant = await tenant_of(session, envelope.tenant_id)
        if tenant is None or not tenant.supervisors:
            return
        notifications = Notifications(envelope, breach.ticket_id)
        language = domain.language(None, tenant.languages)
        composer.to_supervisors(
            notifications,
            tenant,
            "sla_breach",
            ticket_number=breach.ticket_number,
            clock_name=CLOCK_NAMES[language][breach.clock],
            due_at=domain.local_time(breach.due_at, tenant.timezone, language),
        )
        await store.record(session, notifications.deliveries)

    @consumer.on(TenantProfileChanged)
    async def on_profile_changed(envelope: Envelope[TenantProfileChanged], session: AsyncSession) -> None:
        profile = envelope.payload
        stored = await store.keep_profile(
            session,
            TenantProfile(
                tenant_id=profile.tenant_id,
                revision=profile.revision,
                name=profile.name,
                languages=list(profile.languages),
                time_zone=profile.time_zone,
            ),
        )
        if not stored:
            log.debug("tenant profile not newer than the stored one", revision=profile.revision)

    @consumer.on(AccountEmailRequested)
    async def on_account_email(envelope: Envelope[AccountEmailRequested], session: AsyncSession) -> None:
        """A platform email (a sign-up's verification, an invitation), one per `request_id`: the
        delivery's id derives from it, so a redelivered or re-sent request records nothing new."""
        request = envelope.payload
        language = domain.language(request.language, [])
        config = tenants.get(envelope.tenant_id)
        profile = await store.get_profile(session, envelope.tenant_id)
        zone = profile.time_zone if profile else config.timezone if config else "UTC"
        context = {
            "recipient_name": request.recipient_name,
            "tenant_name": request.tenant_name,
            "invited_by": request.invited_by,
            "link": request.link,
            "expires_at": domain.local_time(request.expires_at, zone, language),
        }
        email = templates.email(request.kind, language, context, html=settings.email_html)
        notifications = Notifications(envelope, None, idempotency_key=request.request_id)
        notifications.add(
            DeliveryChannel.EMAIL, request.kind, str(request.email), email.text, subject=email.subject, html=email.html
        )
        await store.record(session, notifications.deliveries)
