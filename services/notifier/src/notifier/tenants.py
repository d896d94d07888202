"""Tenants' notification settings: one YAML file per tenant in `TENANTS_DIR`, read at start-up
(a change takes effect at the next start). `tenants/lucine-di-natale.yaml` shows every field;
`TenantConfig` below validates them, and a file that does not validate stops the start-up."""

from __future__ import annotations

from collections.abc import Mapping
from email.headerregistry import Address
from email.utils import parseaddr
from pathlib import Path
from typing import Annotated
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import AnyHttpUrl, BaseModel, ConfigDict, EmailStr, Field, StringConstraints, field_validator
from standardwebhooks.webhooks import Webhook

from contracts.common import ShortText
from contracts.events import SlaBreached, SlaWarning, TicketNoteAdded, TicketOpened, TicketReplyPosted, TicketUpdated
from notifier.domain import PhoneSenders

# The ticket events a webhook may subscribe to, by their wire type.
WEBHOOK_EVENTS = frozenset(
    cls.event_type for cls in (TicketOpened, TicketUpdated, TicketReplyPosted, TicketNoteAdded, SlaWarning, SlaBreached)
)
LanguageCode = Annotated[str, StringConstraints(pattern=r"^[a-z]{2}$")]
E164 = Annotated[str, StringConstraints(pattern=r"^\+[1-9][0-9]{6,14}$")]


class EmailSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    sender: str
    """`Name <address>` or a bare address."""
    reply_to: EmailStr | None = None

    @field_validator("sender")
    @classmethod
    def _an_address(cls, sender: str) -> str:
        _, address = parseaddr(sender)
        if "@" not in address:
            raise ValueError(f"{sender!r} has no email address")
        return sender

    @property
    def sender_address(self) -> Address:
        name, address = parseaddr(self.sender)
        username, domain = address.rsplit("@", 1)
        return Address(display_name=name, username=username, domain=domain)


class TwilioNumbers(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    sms_from: E164 | None = None
    whatsapp_from: E164 | None = None


class WebhookSubscription(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    url: AnyHttpUrl
    secret: Annotated[str, StringConstraints(pattern=r"^whsec_[A-Za-z0-9+/=]{16,}$")]
    events: frozenset[str] = Field(min_length=1)

    @field_validator("secret")
    @classmethod
    def _usable_key(cls, secret: str) -> str:
        Webhook(secret)  # raises on a key that is not base64
        return secret

    @field_validator("events")
    @classmethod
    def _known_events(cls, events: frozenset[str]) -> frozenset[str]:
        unknown = events - WEBHOOK_EVENTS
        if unknown:
            raise ValueError(f"unknown event types {sorted(unknown)}; known: {sorted(WEBHOOK_EVENTS)}")
        return events


class TenantConfig(BaseModel):
    """One tenant file (`<tenants_dir>/<tenant_id>.yaml`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    tenant_id: Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9-]{1,62}$")]
    name: ShortText | None = None
    languages: list[LanguageCode] = Field(min_length=1)
    timezone: str = "UTC"
    email: EmailSettings
    supervisors: list[EmailStr] = Field(default_factory=list)
    twilio: TwilioNumbers = Field(default_factory=TwilioNumbers)
    phone_country_code: Annotated[str, StringConstraints(pattern=r"^\+[1-9][0-9]{0,3}$")] = "+39"
    webhooks: list[WebhookSubscription] = Field(default_factory=list)

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, timezone: str) -> str:
        try:
            ZoneInfo(timezone)
        except (ZoneInfoNotFoundError, ValueError) as error:
            raise ValueError(f"unknown time zone {timezone!r}") from error
        return timezone

    @property
    def default_language(self) -> str:
        return self.languages[0]

    def phone_senders(self, twilio_enabled: bool) -> PhoneSenders:
        return PhoneSenders.of(
            twilio_enabled=twilio_enabled, sms_from=self.twilio.sms_from, whatsapp_from=self.twilio.whatsapp_from
        )

    def webhooks_for(self, event_type: str) -> list[WebhookSubscription]:
        return [hook for hook in self.webhooks if event_type in hook.events]

    def webhook_secret(self, url: str) -> str | None:
        """The secret of the subscription to `url` now (None once it is no longer configured)."""
        return next((hook.secret for hook in self.webhooks if str(hook.url) == url), None)


def read_tenant_file(path: Path) -> TenantConfig:
    return TenantConfig.model_validate(yaml.safe_load(path.read_text()))


def load_tenants(directory: Path) -> dict[str, TenantConfig]:
    """Every tenant of the folder, by id; a file that does not validate stops the start-up."""
    tenants: dict[str, TenantConfig] = {}
    paths = sorted([*directory.glob("*.yaml"), *directory.glob("*.yml")]) if directory.is_dir() else []
    for path in paths:
        try:
            config = read_tenant_file(path)
        except Exception as error:
            raise ValueError(f"{path}: {error}") from error
        if config.tenant_id in tenants:
            raise ValueError(f"{path}: tenant {config.tenant_id} is configured twice")
        tenants[config.tenant_id] = config
    return tenants


Tenants = Mapping[str, TenantConfig]
