"""Settings of the notifier, from environment variables (see README.md for the list)."""

from __future__ import annotations

from email.utils import parseaddr
from pathlib import Path

from pydantic import Field, field_validator, model_validator

from servicekit.settings import ServiceSettings

SERVICE_DIR = Path(__file__).resolve().parents[2]


def service_path(name: str) -> Path:
    """A folder shipped next to the package: the source tree when installed editable, else the
    working directory (the Docker image runs from a copy of `services/notifier`)."""
    candidate = SERVICE_DIR / name
    return candidate if candidate.is_dir() else Path.cwd() / name


class Settings(ServiceSettings):
    service_name: str = "notifier"
    http_port: int = 8085

    # One YAML file per tenant: languages, senders, supervisors, webhooks (see tenants/).
    tenants_dir: Path = Field(default_factory=lambda: service_path("tenants"))
    # The gateway's public address, where the signed status link of every customer email points.
    public_base_url: str = "http://127.0.0.1:8080"
    # Signs the status links; shared with the tickets service, which checks them.
    ticket_link_secret: str = "dev-secret-change-me"  # noqa: S105 -- local default, refused in production

    # The sender of the platform's own emails (a sign-up's verification, an operator's invitation):
    # they are not a tenant's, so they do not go out under a tenant file's sender.
    platform_email_sender: str = "Support platform <no-reply@support.example.com>"

    # SMTP. The local default is the developers' mail sink (`python -m devkit.mailsink`).
    smtp_host: str = "127.0.0.1"
    smtp_port: int = 1025
    smtp_username: str = ""
    smtp_password: str = ""
    smtp_starttls: bool = False  # upgrade the connection with STARTTLS (port 587)
    smtp_use_tls: bool = False  # TLS from the first byte (port 465)
    smtp_timeout_seconds: float = Field(default=30.0, gt=0)
    # Also send an HTML alternative next to the plain text.
    email_html: bool = True

    # Twilio's Messages API for WhatsApp and SMS; without an account those channels are off and
    # customers who prefer them get the email instead (when they gave one).
    twilio_base_url: str = "https://api.twilio.com"
    twilio_account_sid: str = ""
    twilio_auth_token: str = ""
    twilio_timeout_seconds: float = Field(default=10.0, gt=0)

    webhook_timeout_seconds: float = Field(default=10.0, gt=0)

    # The delivery worker: sends at once, tries, back-off between tries.
    delivery_concurrency: int = Field(default=8, ge=1)
    delivery_max_attempts: int = Field(default=10, ge=1)
    delivery_backoff_base_seconds: float = Field(default=5.0, gt=0)
    delivery_backoff_max_seconds: float = Field(default=1800.0, gt=0)
    # A delivery marked `sending` by a process that died is sent again once this has passed: longer
    # than any send may take, so a slow send still under way is never sent twice by another replica.
    delivery_lease_seconds: float = Field(default=90.0, gt=0)
    # How often the worker looks for due deliveries when it has nothing to do.
    delivery_poll_seconds: float = Field(default=0.5, gt=0)

    @property
    def twilio_enabled(self) -> bool:
        return bool(self.twilio_account_sid and self.twilio_auth_token)

    def secret_fields(self) -> tuple[str, ...]:
        return (*super().secret_fields(), "ticket_link_secret")

    @field_validator("platform_email_sender")
    @classmethod
    def _an_address(cls, sender: str) -> str:
        if "@" not in parseaddr(sender)[1]:
            raise ValueError(f"PLATFORM_EMAIL_SENDER {sender!r} has no email address")
        return sender

    @model_validator(mode="after")
    def _lease_outlasts_every_send(self) -> Settings:
        longest = max(self.smtp_timeout_seconds, self.twilio_timeout_seconds, self.webhook_timeout_seconds)
        if self.delivery_lease_seconds <= longest:
            lease = self.delivery_lease_seconds
            raise ValueError(f"DELIVERY_LEASE_SECONDS ({lease}) must exceed the longest send timeout ({longest})")
        return self
