"""The tickets service: tickets, their lifecycle and SLA clocks, and their internal read API."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI

from servicekit.http import Runtime, create_app
from tickets import handlers
from tickets.api import router
from tickets.config import Settings
from tickets.tenants import load_policies

MIGRATIONS = Path(__file__).with_name("migrations")


def build_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    load_policies(settings.tenants_dir)  # a bad tenant file stops the start, not the first ticket
    runtime = Runtime.build(settings, migrations_dir=MIGRATIONS)
    handlers.register(runtime.consumer(), settings)
    return create_app(runtime, title="tickets", routers=[router])
