"""Settings of the gateway, from environment variables (see README.md for the list)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from servicekit.settings import ServiceSettings

SERVICE_DIR = Path(__file__).resolve().parents[2]
MIGRATIONS = Path(__file__).with_name("migrations")


def service_path(name: str) -> Path:
    """A folder shipped next to the package: the source tree when installed editable, else the
    working directory (the Docker image runs from a copy of `services/gateway`)."""
    candidate = SERVICE_DIR / name
    return candidate if candidate.is_dir() else Path.cwd() / name


class Settings(ServiceSettings):
    service_name: str = "gateway"
    http_port: int = 8080

    # Signs customer tokens (HS256); a placeholder is refused in production.
    jwt_secret: str = "dev-secret-change-me"  # noqa: S105 -- local default, refused in production
    customer_token_ttl_seconds: int = Field(default=30 * 24 * 3600, ge=60)
    conversation_url: str = "http://127.0.0.1:8081"
    conversation_timeout_seconds: float = Field(default=5.0, gt=0)
    public_base_url: str = "http://127.0.0.1:8080"
    # Tenant files (`gateway.tenants load` format) upserted at start-up: tenants as code for a
    # platform that wants them. None by default: tenants sign up or are made through the platform
    # API or CLI (the shipped demo tenants are seeded through the API, `gateway.seed`).
    tenants_dir: Path | None = None
    # Operator files seeded at start-up outside production (`gateway.operators load` format).
    operators_dir: Path | None = None
    # Bearer token of the platform API (`POST /v1/platform/tenants`, used by `gateway.seed`).
    # Empty: the platform API answers 404.
    platform_admin_token: str = ""

    # Operators: access and refresh tokens (HS256), signed with their own secret.
    operator_jwt_secret: str = "dev-secret-change-me"  # noqa: S105 -- local default, refused in production
    operator_access_ttl_seconds: int = Field(default=15 * 60, ge=10)
    operator_refresh_ttl_seconds: int = Field(default=12 * 3600, ge=60)
    # Login attempts allowed per window, per username and per client IP.
    login_window_seconds: int = Field(default=300, ge=1)
    login_attempts_per_account: int = Field(default=10, ge=1)
    login_attempts_per_ip: int = Field(default=50, ge=1)
    # How often an open operator stream re-sends the operator's presence to routing.
    presence_heartbeat_seconds: float = Field(default=15.0, gt=0)
    routing_url: str = "http://127.0.0.1:8083"
    routing_timeout_seconds: float = Field(default=5.0, gt=0)
    # The operators' copilot: suggested replies (an LLM answer may take seconds).
    ai_responder_url: str = "http://127.0.0.1:8082"
    ai_responder_timeout_seconds: float = Field(default=20.0, gt=0)
    # The ai-responder's admin token (its ADMIN_TOKEN): the knowledge-base page of supervisors and
    # admins goes through its management API. Empty: that page answers 503.
    ai_responder_admin_token: str = ""
    # The largest document uploaded to the knowledge base (the ai-responder's own limit).
    kb_document_max_bytes: int = Field(default=10 * 1024 * 1024, ge=1024)
    # The tickets service's internal API: the operators' ticket views and the public status page.
    tickets_url: str = "http://127.0.0.1:8084"
    tickets_timeout_seconds: float = Field(default=5.0, gt=0)
    # The notifier's internal API: the channels the widget's contact form offers (WhatsApp and SMS
    # only where the notifier can send them), asked once a TTL per tenant; email only while it is down.
    notifier_url: str = "http://127.0.0.1:8085"
    notifier_timeout_seconds: float = Field(default=2.0, gt=0)
    notifier_channels_ttl_seconds: float = Field(default=60.0, gt=0)
    # The analytics service's internal API: the supervisors' reports (a year's figures take a while).
    analytics_url: str = "http://127.0.0.1:8086"
    analytics_timeout_seconds: float = Field(default=15.0, gt=0)
    # Public status lookups (a ticket number and an email or phone), per client IP and per ticket
    # number per window: guessing the contact of a known number stays slow.
    ticket_lookup_window_seconds: int = Field(default=900, ge=1)
    ticket_lookups_per_ip: int = Field(default=30, ge=1)
    ticket_lookups_per_number: int = Field(default=10, ge=1)

    # Self-service sign-up (`POST /v1/signup`): off unless the platform opens it (then 404).
    signup_enabled: bool = False
    # Sign-ups per client IP per login window (each one creates a tenant and sends an email).
    signup_attempts_per_ip: int = Field(default=5, ge=1)
    # Signs the emailed sign-up verification links (itsdangerous, like contracts.ticketlinks): only
    # the gateway signs and checks them. A placeholder is refused in production.
    signup_link_secret: str = Field(default="dev-secret-change-me", min_length=16)

    # Fixed-window rate limits (Redis); a benchmark raises them.
    rate_limit_window_seconds: int = Field(default=60, ge=1)
    rate_limit_ip_requests: int = Field(default=300, ge=1)
    rate_limit_conversation_messages: int = Field(default=30, ge=1)
    # The largest valid body fits: a 4000-character text escaped as JSON takes up to 12 bytes a
    # character (an astral character is two `\uXXXX` escapes), a ticket about 4,500 characters.
    max_body_bytes: int = Field(default=64 * 1024, ge=1024)
    # Signs the links of operator invitations (itsdangerous, like contracts.ticketlinks): only the
    # gateway signs and checks them. A placeholder is refused in production.
    invitation_link_secret: str = Field(default="dev-secret-change-me", min_length=16)
    invitation_ttl_seconds: int = Field(default=7 * 24 * 3600, ge=60)

    def secret_fields(self) -> tuple[str, ...]:
        return (
            *super().secret_fields(),
            "jwt_secret",
            "operator_jwt_secret",
            "ai_responder_admin_token",
            "invitation_link_secret",
            "signup_link_secret",
        )
