"""The tickets service: tickets, their lifecycle and SLA clocks, and their internal read API."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI

from servicekit.http import Runtime, create_app
from tickets import handlers
from tickets.api import router
from tickets.config import Settings
from tickets.profiles import TenantProfiles
from tickets.tenants import load_policies

MIGRATIONS = Path(__file__).with_name("migrations")


def build_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    load_policies(settings.tenants_dir)  # a bad tenant file stops the start, not the first ticket
    runtime = Runtime.build(settings, migrations_dir=MIGRATIONS)
    # Every replica holds every tenant's stored profile, loaded before the consumer starts (the
    # start hooks run after the migrations) and kept current by notifications (profiles.py).
    profiles = TenantProfiles()
    database_url = settings.database_url

    async def load_profiles() -> None:
        await profiles.start(database_url)

    runtime.on_start.append(load_profiles)
    runtime.on_stop.append(profiles.stop)
    handlers.register(runtime.consumer(), settings, profiles=profiles)
    app = create_app(runtime, title="tickets", routers=[router])
    app.state.tenant_profiles = profiles  # the read API's clock states count in the same hours
    return app
