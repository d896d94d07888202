"""Settings of the tickets service, from environment variables (see README.md for the list)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from contracts.ticketlinks import DEFAULT_MAX_AGE_SECONDS
from servicekit.settings import ServiceSettings

SERVICE_DIR = Path(__file__).resolve().parents[2]


def service_path(name: str) -> Path:
    """A folder shipped next to the package: the source tree when installed editable, else the
    working directory (the Docker image runs from a copy of `services/tickets`)."""
    candidate = SERVICE_DIR / name
    return candidate if candidate.is_dir() else Path.cwd() / name


class Settings(ServiceSettings):
    service_name: str = "tickets"
    http_port: int = 8084
    # One YAML file per tenant: number prefix, SLA targets, business hours (see tenants.py).
    tenants_dir: Path = Field(default_factory=lambda: service_path("tenants"))
    # Checks the signed status links of the notifier's emails (shared with it, >= 16 characters).
    ticket_link_secret: str = Field(default="dev-secret-change-me", min_length=16)
    ticket_link_max_age_seconds: int = Field(default=DEFAULT_MAX_AGE_SECONDS, ge=1)

    def secret_fields(self) -> tuple[str, ...]:
        return (*super().secret_fields(), "ticket_link_secret")
