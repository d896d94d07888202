"""The ai-responder service: answers customer messages from the tenant's knowledge base."""

from __future__ import annotations

from fastapi import FastAPI

from ai_responder import handlers
from ai_responder.admin import MIGRATIONS
from ai_responder.admin import router as admin_router
from ai_responder.assistant import Assistant
from ai_responder.assistant_settings import router as settings_router
from ai_responder.config import Settings
from ai_responder.kb_admin import router as kb_router
from ai_responder.suggestions import router as suggestions_router
from servicekit.http import Runtime, create_app


def build_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    runtime = Runtime.build(settings, redis=True, migrations_dir=MIGRATIONS)
    assert runtime.sessions is not None
    assert runtime.redis is not None
    assistant = Assistant(settings, runtime.sessions, runtime.redis)
    runtime.on_start.append(assistant.start)
    runtime.on_stop.append(assistant.stop)
    handlers.register(runtime.consumer(), assistant, settings.history_messages)
    app = create_app(
        runtime, title="ai-responder", routers=[admin_router, kb_router, settings_router, suggestions_router]
    )
    app.state.assistant = assistant
    return app
