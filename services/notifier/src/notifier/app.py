"""The notifier: email, WhatsApp/SMS and webhook notifications about tickets, with a delivery log."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI

from notifier import handlers
from notifier.api import channels_router, router
from notifier.config import Settings
from notifier.messages import Templates
from notifier.senders import Senders
from notifier.tenants import load_tenants
from notifier.worker import DeliveryWorker
from servicekit.http import Runtime, create_app

MIGRATIONS = Path(__file__).with_name("migrations")


def build_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    runtime = Runtime.build(settings, migrations_dir=MIGRATIONS)
    assert runtime.sessions is not None
    tenants = load_tenants(settings.tenants_dir)
    handlers.register(runtime.consumer(), settings, tenants, Templates())
    senders = Senders(settings, tenants)
    worker = DeliveryWorker(runtime.sessions, settings, senders)

    async def start_worker() -> None:
        worker.start()

    async def stop_worker() -> None:
        await worker.stop()
        await senders.aclose()

    runtime.on_start.append(start_worker)
    runtime.on_stop.append(stop_worker)
    return create_app(runtime, title="notifier", routers=[router, channels_router(settings, tenants)])
