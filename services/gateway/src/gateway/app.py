"""The gateway app: servicekit's app factory, the widget routers and the two middlewares."""

from __future__ import annotations

from fastapi import FastAPI

from gateway import (
    admin_api,
    analytics_api,
    api,
    assistant_api,
    canned_api,
    kb_api,
    operator_api,
    platform_api,
    settings_api,
    signup_api,
    team_api,
    ticket_api,
    web,
)
from gateway.config import Settings
from gateway.middleware import BodyLimit, WidgetCors
from gateway.runtime import GatewayRuntime
from servicekit.http import create_app

DESCRIPTION = """Public API of the support platform: the website widget and the operator dashboard.

The widget authenticates with its tenant's `X-Widget-Key` to start a conversation, then with the
customer token returned (`Authorization: Bearer <token>`).

**Live stream** (WebSocket, not listed below): `GET /v1/conversations/{id}/stream?token=<token>&after=<seq>`
sends the messages after `after`, then the current status, then live JSON frames:
`{"type":"message","message":{seq,message_id,sender,text,smart_actions,sources,created_at,language}}`,
`{"type":"status","status":"<status>"}`, `{"type":"typing","sender":"ai"}`; send `{"type":"ping"}` to get
`{"type":"pong"}`. A message may be sent on the stream as `{"type":"message","client_message_id","text"}`:
taken exactly as `POST /v1/conversations/{id}/messages` with that body, it is answered with
`{"type":"accepted","client_message_id","message_id"}` or
`{"type":"error","client_message_id","status","error":{"code","message"}}` (the HTTP status the POST would
answer). A socket never sees a seq twice or out of order. Close codes: 4401 bad token, 4403 wrong
conversation or origin, 4429 rate limited, 4503 history unavailable, 4408 too slow to read.

**Operators** log in (`POST /v1/operators/login`) for an access token (`Authorization: Bearer <token>`,
15 minutes) and a refresh token (12 hours, `POST /v1/operators/refresh`). Another tenant's conversation
answers 404, like an unknown one. **Operator stream** (WebSocket): `GET /v1/operators/stream?access_token=<token>`
(or the token in a first frame `{"type":"auth","access_token":"..."}`) sends `{"type":"ready"}`, then routing's
events for the tenant as `{"type", "event", "conversation_id", "occurred_at", "data"}` (`type`: `queue`, `offer`,
`assignment` or `presence`)
(offers only to the operator offered and to supervisors), and, for each conversation the operator has or
subscribes to (`{"type":"subscribe","conversation_id","after"}`), its `message`, `status` and `note` frames
tagged with `conversation_id`, with the widget stream's seq rules. While it is open the gateway re-sends the
operator's presence to routing every 15 s. Close codes: 4401 bad token, 4429 rate limited, 4408 too slow to read.

Errors are `{"error": {"code", "message"}}`; 429 answers carry `Retry-After` (seconds)."""


def build_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    runtime = GatewayRuntime.create(settings)
    app = create_app(
        runtime,
        title="Support platform gateway",
        version="1.0.0",
        description=DESCRIPTION,
        routers=[
            api.router,
            api.messages_router,
            api.stream_router,
            operator_api.router,
            operator_api.stream_router,
            # Operators' ticket routes first: the public ones include a path a ticket id would match.
            ticket_api.router,
            ticket_api.public_router,
            analytics_api.router,
            kb_api.router,
            admin_api.router,
            assistant_api.router,
            team_api.router,
            team_api.public_router,
            canned_api.router,
            settings_api.router,
            settings_api.widget_router,
            signup_api.router,
            platform_api.router,
            web.router,
        ],
        # A span held open for a socket's whole life (hours) says nothing and costs memory on each
        # of 10,000 idle sockets; the commands a socket's customer sends are traced as HTTP requests.
        telemetry={"exclude": lambda scope: scope["type"] == "websocket"},
    )
    # Added last is outermost: CORS also decorates the 413 of BodyLimit.
    # A document upload may be as large as a document, plus its multipart framing.
    uploads = {"/v1/kb/documents": settings.kb_document_max_bytes + 64 * 1024}
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes, larger=uploads)
    app.add_middleware(WidgetCors, directory=lambda: runtime.tenants)
    return app
