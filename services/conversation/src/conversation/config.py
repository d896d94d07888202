from __future__ import annotations

from pydantic import Field

from servicekit.settings import ServiceSettings


class Settings(ServiceSettings):
    service_name: str = "conversation"
    http_port: int = 8081
    # How many messages one history page returns at most.
    history_page_size: int = 500
    # Customer silence with an operator before the conversation is WAITING_CUSTOMER.
    inactivity_minutes: float = Field(default=10, gt=0)
    # Further silence in WAITING_CUSTOMER before it is ABANDONED.
    abandon_after_minutes: float = Field(default=60, gt=0)
