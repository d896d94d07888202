from __future__ import annotations

from servicekit.settings import ServiceSettings


class Settings(ServiceSettings):
    service_name: str = "conversation"
    http_port: int = 8081
    # How many messages one history page returns at most.
    history_page_size: int = 500
