"""The conversation service: owns conversations, messages, notes and ratings."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI

from conversation import handlers
from conversation.api import router
from conversation.config import Settings
from servicekit.http import Runtime, create_app

MIGRATIONS = Path(__file__).with_name("migrations")


def build_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    runtime = Runtime.build(settings, migrations_dir=MIGRATIONS)
    handlers.register(runtime.consumer(), settings)
    return create_app(runtime, title="conversation", routers=[router])
