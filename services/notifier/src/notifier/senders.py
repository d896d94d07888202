"""The outside calls: SMTP, Twilio's Messages API (WhatsApp and SMS) and tenants' webhooks.

Each send carries a stable id where the receiver can see it, so that a send made twice (the crash
window: sent, but the process died before recording it) is recognisable as one: the email's
Message-ID (the delivery's id, or the ticket's for its acknowledgment), the webhook's
`webhook-id`. Twilio's Messages API takes no idempotency key: a WhatsApp or SMS message sent in
that window reaches the customer twice.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime

import aiosmtplib
import httpx
from standardwebhooks.webhooks import Webhook

from contracts.common import DeliveryChannel
from notifier.config import Settings
from notifier.domain import ACCOUNT_TEMPLATES, THREAD_FOLLOW_UPS, THREAD_START, ticket_thread_id
from notifier.store import Delivery
from notifier.tenants import EmailSettings, Tenants

# HTTP answers a later try may cure: the receiver is busy, rate-limits or failed on its side.
RETRYABLE_STATUS = frozenset({408, 409, 425, 429})


class SendError(Exception):
    """A send failed. `permanent`: trying again cannot succeed (a refused recipient, a bad number)."""

    def __init__(self, message: str, *, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent


@dataclass(frozen=True)
class Sent:
    provider_message_id: str | None = None


def message_id(delivery: Delivery, domain: str) -> str:
    """The email's Message-ID, the same on every try: a ticket's acknowledgment has the ticket's
    (which its later emails refer to), any other email its delivery's id."""
    if delivery.ticket_id is not None and delivery.template == THREAD_START:
        return ticket_thread_id(delivery.ticket_id, domain)
    return f"<{delivery.delivery_id}@{domain}>"


def thread_of(delivery: Delivery, domain: str) -> str | None:
    """The Message-ID a customer's later email about a ticket answers (its acknowledgment's), so
    that mail clients show them in one thread; None for an email that starts or joins none."""
    if delivery.ticket_id is not None and delivery.template in THREAD_FOLLOW_UPS:
        return ticket_thread_id(delivery.ticket_id, domain)
    return None


class Senders:
    def __init__(self, settings: Settings, tenants: Tenants) -> None:
        self.settings = settings
        self.tenants = tenants
        self.platform_email = EmailSettings(sender=settings.platform_email_sender)
        self._http = httpx.AsyncClient(follow_redirects=False)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def send(self, delivery: Delivery) -> Sent:
        if delivery.template in ACCOUNT_TEMPLATES:  # the platform's, whether or not the tenant has a file
            return await self._email(delivery, self.platform_email)
        tenant = self.tenants.get(delivery.tenant_id)
        channel = DeliveryChannel(delivery.channel)
        if channel == DeliveryChannel.EMAIL:
            # A tenant with no file (one that signed up) sends from the platform's address.
            return await self._email(delivery, tenant.email if tenant else self.platform_email)
        if tenant is None:
            raise SendError(f"tenant {delivery.tenant_id} has no {channel.value} settings", permanent=True)
        if channel == DeliveryChannel.WEBHOOK:
            secret = tenant.webhook_secret(delivery.recipient)
            if secret is None:
                raise SendError("the webhook is no longer configured", permanent=True)
            return await self._webhook(delivery, secret)
        sender = tenant.twilio.whatsapp_from if channel == DeliveryChannel.WHATSAPP else tenant.twilio.sms_from
        if sender is None or not self.settings.twilio_enabled:
            raise SendError(f"no {channel.value} sender configured", permanent=True)
        return await self._twilio(delivery, channel, sender)

    async def _email(self, delivery: Delivery, sending: EmailSettings) -> Sent:
        message = EmailMessage()
        message["From"] = sending.sender
        message["To"] = delivery.recipient
        message["Subject"] = delivery.subject
        message["Date"] = format_datetime(delivery.created_at)
        mail_domain = sending.sender_address.domain
        message["Message-ID"] = message_id(delivery, mail_domain)
        thread = thread_of(delivery, mail_domain)
        if thread is not None:
            message["In-Reply-To"] = thread
            message["References"] = thread
        message["Auto-Submitted"] = "auto-generated"  # RFC 3834: no vacation replies to this
        if sending.reply_to:
            message["Reply-To"] = sending.reply_to
        message.set_content(delivery.body)
        if delivery.html:
            message.add_alternative(delivery.html, subtype="html")
        settings = self.settings
        try:
            # aiosmtplib's timeout bounds each step; this bounds the whole send, under the lease.
            async with asyncio.timeout(settings.smtp_timeout_seconds):
                await aiosmtplib.send(
                    message,
                    hostname=settings.smtp_host,
                    port=settings.smtp_port,
                    username=settings.smtp_username or None,
                    password=settings.smtp_password or None,
                    start_tls=settings.smtp_starttls,
                    use_tls=settings.smtp_use_tls,
                    timeout=settings.smtp_timeout_seconds,
                )
        except aiosmtplib.SMTPRecipientsRefused as error:
            permanent = all(refused.code >= 500 for refused in error.recipients)
            raise SendError(f"recipient refused: {error}", permanent=permanent) from error
        except (aiosmtplib.SMTPRecipientRefused, aiosmtplib.SMTPDataError) as error:
            raise SendError(f"SMTP {error.code}: {error.message}", permanent=error.code >= 500) from error
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as error:
            raise SendError(f"SMTP: {type(error).__name__}: {error}") from error
        return Sent(message["Message-ID"])

    async def _twilio(self, delivery: Delivery, channel: DeliveryChannel, sender: str) -> Sent:
        settings = self.settings
        prefix = "whatsapp:" if channel == DeliveryChannel.WHATSAPP else ""
        url = f"{settings.twilio_base_url.rstrip('/')}/2010-04-01/Accounts/{settings.twilio_account_sid}/Messages.json"
        try:
            response = await self._http.post(
                url,
                data={"From": prefix + sender, "To": prefix + delivery.recipient, "Body": delivery.body},
                auth=(settings.twilio_account_sid, settings.twilio_auth_token),
                timeout=settings.twilio_timeout_seconds,
            )
        except httpx.HTTPError as error:
            raise SendError(f"Twilio: {type(error).__name__}: {error}") from error
        if response.is_success:
            return Sent(_json_field(response, "sid"))
        reason = _json_field(response, "message") or response.text[:200]
        permanent = 400 <= response.status_code < 500 and response.status_code not in RETRYABLE_STATUS
        raise SendError(f"Twilio {response.status_code}: {reason}", permanent=permanent)

    async def _webhook(self, delivery: Delivery, secret: str) -> Sent:
        webhook_id = str(delivery.delivery_id)
        timestamp = datetime.now(UTC)
        headers = {
            "content-type": "application/json",
            "webhook-id": webhook_id,
            "webhook-timestamp": str(int(timestamp.timestamp())),
            "webhook-signature": Webhook(secret).sign(webhook_id, timestamp, delivery.body),
        }
        try:
            response = await self._http.post(
                delivery.recipient,
                content=delivery.body.encode(),
                headers=headers,
                timeout=self.settings.webhook_timeout_seconds,
            )
        except httpx.HTTPError as error:
            raise SendError(f"webhook: {type(error).__name__}: {error}") from error
        if not response.is_success:
            # Standard Webhooks: anything but 2xx is a failure to retry (the receiver may be
            # mid-deploy, or its check may have been fixed since).
            raise SendError(f"webhook answered {response.status_code}")
        return Sent(webhook_id)


def _json_field(response: httpx.Response, name: str) -> str | None:
    try:
        value = response.json().get(name)
    except (ValueError, AttributeError):
        return None
    return str(value) if value is not None else None
