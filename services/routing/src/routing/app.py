"""The routing service: operator presence, the waiting queue, offers and assignments."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI

from routing import handlers
from routing.api import router
from routing.config import Settings
from routing.metrics import operators_online_sampler
from servicekit.http import Runtime, create_app

MIGRATIONS = Path(__file__).with_name("migrations")


def build_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    runtime = Runtime.build(settings, migrations_dir=MIGRATIONS)
    # Its decisions depend on the order of events across conversations (an operator going
    # offline, then a customer asking for one), and the tenant lock serialises its transactions.
    handlers.register(runtime.consumer(order="written"), settings)
    assert runtime.sessions is not None
    runtime.samplers.append(operators_online_sampler(runtime.sessions))
    return create_app(runtime, title="routing", routers=[router])
