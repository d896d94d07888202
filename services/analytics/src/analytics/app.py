"""The analytics service: facts from every domain topic, the public analytics topic, the figures."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI

from analytics import handlers
from analytics.api import router
from analytics.config import Settings
from servicekit.http import Runtime, create_app

MIGRATIONS = Path(__file__).with_name("migrations")


def build_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    runtime = Runtime.build(settings, migrations_dir=MIGRATIONS)
    handlers.register(runtime.consumer(), settings)
    return create_app(runtime, title="analytics", routers=[router])
