"""The widget half of the public API: REST commands and reads, and the live stream."""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Security, WebSocket
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from pydantic import ValidationError
from starlette.requests import HTTPConnection
from starlette.websockets import WebSocketDisconnect, WebSocketState

from contracts import Envelope
from contracts.common import ContactDetails, ConversationStatus
from contracts.events import (
    ChooseHandoff,
    GiveAnswerFeedback,
    PostCustomerMessage,
    RateConversation,
    StartConversation,
    SubmitTicketDetails,
)
from contracts.readapi import MessagesResponse
from gateway.access import TENANT_DISABLED, TENANT_PENDING
from gateway.commands import P, send_command
from gateway.hub import PONG, WidgetSocket, reply_frame
from gateway.ratelimit import Limit, RateLimitExceeded
from gateway.runtime import GatewayRuntime
from gateway.schemas import (
    Accepted,
    ActionRequest,
    FeedbackRequest,
    PostMessageRequest,
    PostMessageResponse,
    RatingRequest,
    StartConversationRequest,
    StartConversationResponse,
    TicketRequest,
    errors,
)
from gateway.tenants import Tenant
from gateway.tokens import InvalidToken, issue_customer_token, read_customer_token
from servicekit.http import ApiError, validation_problems
from servicekit.logs import get_logger
from servicekit.tracing import server_span

log = get_logger(__name__)

# WebSocket close codes (4000-4999 are the application's): the HTTP status they stand for.
CLOSE_UNAUTHORIZED = 4401
CLOSE_FORBIDDEN = 4403
CLOSE_RATE_LIMITED = 4429
CLOSE_UNAVAILABLE = 4503

widget_key_header = APIKeyHeader(name="X-Widget-Key", auto_error=False, description="The tenant's widget key")
customer_bearer = HTTPBearer(auto_error=False, description="The customer token from POST /v1/conversations")


def runtime_of(connection: HTTPConnection) -> GatewayRuntime:
    runtime: GatewayRuntime = connection.app.state.runtime
    return runtime


async def get_runtime(connection: HTTPConnection) -> GatewayRuntime:
    # async on purpose: FastAPI runs plain `def` dependencies in a thread pool, a hop per request.
    return runtime_of(connection)


RuntimeDep = Annotated[GatewayRuntime, Depends(get_runtime)]


def client_ip(connection: HTTPConnection) -> str:
    return connection.client.host if connection.client else "unknown"


def ip_limit(runtime: GatewayRuntime, connection: HTTPConnection) -> Limit:
    return Limit("ip", client_ip(connection), runtime.config.rate_limit_ip_requests)


async def limit_per_ip(request: Request, runtime: RuntimeDep) -> None:
    await runtime.limiter.hit(ip_limit(runtime, request))


TENANT_REFUSED = {
    TENANT_DISABLED: "this tenant is disabled",
    TENANT_PENDING: "this tenant has signed up but its email address is not verified yet: follow the emailed link",
}


def check_enabled(runtime: GatewayRuntime, tenant: Tenant) -> None:
    """A disabled tenant keeps its data, but its widget is refused, as is a signed-up tenant's
    until its sign-up is verified (a dictionary lookup: no I/O)."""
    if reason := runtime.access.tenant_refusal(tenant.tenant_id):
        raise ApiError(403, reason, TENANT_REFUSED[reason])


def check_origin(tenant: Tenant, origin: str | None) -> None:
    """Preflights are allowed for any tenant's origin (they carry no key); the real request is
    refused here unless the Origin is one of *this* tenant's."""
    if not tenant.allows(origin):
        raise ApiError(403, "origin_not_allowed", f"origin {origin} may not use this tenant's widget")


async def widget_tenant(
    request: Request, runtime: RuntimeDep, widget_key: Annotated[str | None, Security(widget_key_header)]
) -> Tenant:
    if not widget_key:
        raise ApiError(401, "unauthorized", "the X-Widget-Key header is required")
    tenant = await runtime.tenants.by_key(widget_key)
    if tenant is None:
        raise ApiError(401, "unauthorized", "unknown widget key")
    check_enabled(runtime, tenant)
    check_origin(tenant, request.headers.get("origin"))
    return tenant


@dataclass(frozen=True)
class Customer:
    tenant: Tenant
    conversation_id: uuid.UUID


async def authorize(
    runtime: GatewayRuntime, token: str | None, conversation_id: uuid.UUID, origin: str | None
) -> Customer:
    """The customer token must be valid, name this conversation, and come from the tenant's origin."""
    if not token:
        raise ApiError(401, "unauthorized", "a customer token is required")
    try:
        claims = read_customer_token(runtime.config.jwt_secret, token)
    except InvalidToken as error:
        raise ApiError(401, "unauthorized", "invalid or expired customer token") from error
    if claims.conversation_id != conversation_id:
        raise ApiError(403, "forbidden", "this token belongs to another conversation")
    tenant = await runtime.tenants.by_id(claims.tenant_id)
    if tenant is None:
        raise ApiError(401, "unauthorized", "the token's tenant no longer exists")
    check_enabled(runtime, tenant)
    check_origin(tenant, origin)
    return Customer(tenant, conversation_id)


async def customer(
    conversation_id: uuid.UUID,
    request: Request,
    runtime: RuntimeDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Security(customer_bearer)],
) -> Customer:
    token = credentials.credentials if credentials else None
    return await authorize(runtime, token, conversation_id, request.headers.get("origin"))


CustomerDep = Annotated[Customer, Depends(customer)]


async def send_for(runtime: GatewayRuntime, who: Customer, payload: P) -> Envelope[P]:
    """Publishes a command about the customer's own conversation."""
    return await send_command(runtime, payload, tenant_id=who.tenant.tenant_id, conversation_id=who.conversation_id)


router = APIRouter(prefix="/v1", tags=["widget"], dependencies=[Depends(limit_per_ip)])
AUTHED = (401, 403, 413, 422, 429, 503)


@router.post(
    "/conversations",
    status_code=201,
    response_model=StartConversationResponse,
    summary="Start a conversation (widget key)",
    responses=errors(*AUTHED),
)
async def start_conversation(
    runtime: RuntimeDep,
    tenant: Annotated[Tenant, Depends(widget_tenant)],
    body: StartConversationRequest | None = None,
) -> StartConversationResponse:
    body = body or StartConversationRequest()
    conversation_id = uuid.uuid4()
    payload = StartConversation(locale=body.locale or tenant.default_language, page_url=body.page_url)
    await send_command(runtime, payload, tenant_id=tenant.tenant_id, conversation_id=conversation_id)
    token = issue_customer_token(
        runtime.config.jwt_secret, tenant.tenant_id, conversation_id, runtime.config.customer_token_ttl_seconds
    )
    return StartConversationResponse(
        conversation_id=conversation_id, customer_token=token, status=ConversationStatus.AI
    )


# Posting a message is counted against the per-IP and the per-conversation limits in one Redis
# round trip, once the token has named the conversation: the busiest route pays one call, and a
# request with a bad token is refused before it costs Redis anything.
messages_router = APIRouter(prefix="/v1", tags=["widget"])


@messages_router.post(
    "/conversations/{conversation_id}/messages",
    status_code=202,
    response_model=PostMessageResponse,
    summary="Send a customer message (idempotent on client_message_id)",
    responses=errors(*AUTHED),
)
async def post_message(
    request: Request, runtime: RuntimeDep, who: CustomerDep, body: PostMessageRequest
) -> PostMessageResponse:
    return await accept_message(runtime, who, body, ip_limit(runtime, request))


async def accept_message(
    runtime: GatewayRuntime, who: Customer, body: PostMessageRequest, ip: Limit
) -> PostMessageResponse:
    """A customer's message, posted over HTTP or sent on the widget's stream: counted against the
    per-IP and per-conversation limits, then published as a command."""
    conversation_limit = Limit(
        "conversation", str(who.conversation_id), runtime.config.rate_limit_conversation_messages
    )
    await runtime.limiter.hit(ip, conversation_limit)
    # Derived, not random: a retry of the same client message gets the same id.
    message_id = uuid.uuid5(who.conversation_id, body.client_message_id)
    payload = PostCustomerMessage(message_id=message_id, client_message_id=body.client_message_id, text=body.text)
    await send_for(runtime, who, payload)
    return PostMessageResponse(message_id=message_id)


@router.get(
    "/conversations/{conversation_id}/messages",
    response_model=MessagesResponse,
    summary="Messages after a sequence number, and the conversation's status",
    responses=errors(401, 403, 422, 429, 502, 503),
)
async def list_messages(
    runtime: RuntimeDep,
    who: CustomerDep,
    after: Annotated[int, Query(ge=0, description="Only messages with seq greater than this")] = 0,
) -> MessagesResponse:
    transcript = await runtime.reader.messages(who.conversation_id, after)
    if transcript is None:
        # Not materialised yet by the conversation service; the token proves the gateway created it.
        return MessagesResponse(conversation_id=who.conversation_id, status=ConversationStatus.AI, messages=[])
    if transcript.tenant_id != who.tenant.tenant_id:
        raise ApiError(403, "forbidden", "this conversation belongs to another tenant")
    return MessagesResponse(conversation_id=who.conversation_id, status=transcript.status, messages=transcript.messages)


@router.post(
    "/conversations/{conversation_id}/actions",
    status_code=202,
    response_model=Accepted,
    summary="Answer the handoff offer: request an operator, or continue with the assistant",
    responses=errors(*AUTHED),
)
async def choose_action(runtime: RuntimeDep, who: CustomerDep, body: ActionRequest) -> Accepted:
    envelope = await send_for(runtime, who, ChooseHandoff(choice=body.action))
    return Accepted(command_id=envelope.event_id)


@router.post(
    "/conversations/{conversation_id}/ticket",
    status_code=202,
    response_model=Accepted,
    summary="Leave contact details so that a ticket is opened",
    responses=errors(*AUTHED),
)
async def submit_ticket(runtime: RuntimeDep, who: CustomerDep, body: TicketRequest) -> Accepted:
    envelope = await send_for(runtime, who, ticket_details(body))
    return Accepted(command_id=envelope.event_id)


def ticket_details(body: TicketRequest) -> SubmitTicketDetails:
    """The details under the contract's cross-field rules (a way to reach the customer); 422 when
    they fail. Operators opening a ticket are held to the same rules."""
    try:
        return SubmitTicketDetails(
            contact=ContactDetails(
                name=body.name, email=body.email, phone=body.phone, preferred_contact=body.preferred_contact
            ),
            message=body.message,
        )
    except ValidationError as error:
        message = "; ".join(str(problem["msg"]).removeprefix("Value error, ") for problem in error.errors())
        raise ApiError(422, "invalid_request", message) from error


@router.post(
    "/conversations/{conversation_id}/rating",
    status_code=202,
    response_model=Accepted,
    summary="Rate the conversation (1 to 5)",
    responses=errors(*AUTHED),
)
async def rate(runtime: RuntimeDep, who: CustomerDep, body: RatingRequest) -> Accepted:
    payload = RateConversation(score=body.score, comment=body.comment)
    envelope = await send_for(runtime, who, payload)
    return Accepted(command_id=envelope.event_id)


@router.post(
    "/conversations/{conversation_id}/messages/{message_id}/feedback",
    status_code=202,
    response_model=Accepted,
    summary="Mark an AI answer helpful or not (the first feedback on an answer counts; not helpful offers a person)",
    responses=errors(*AUTHED),
)
async def give_feedback(
    runtime: RuntimeDep, who: CustomerDep, message_id: uuid.UUID, body: FeedbackRequest
) -> Accepted:
    # The conversation service checks that the message is an AI answer of this conversation.
    envelope = await send_for(runtime, who, GiveAnswerFeedback(message_id=message_id, helpful=body.helpful))
    return Accepted(command_id=envelope.event_id)


stream_router = APIRouter(prefix="/v1", tags=["widget"])
STREAM_ROUTE = "/v1/conversations/{conversation_id}/stream"


@stream_router.websocket(STREAM_ROUTE.removeprefix("/v1"))
async def stream(websocket: WebSocket, conversation_id: str) -> None:
    """History after `?after=`, then live frames (see README); `?token=` is the customer token."""
    runtime = runtime_of(websocket)
    # Accept first: a close code (4401, 4403...) only reaches the browser on an open socket.
    await websocket.accept()
    try:
        await runtime.limiter.hit(ip_limit(runtime, websocket))
        try:
            wanted = uuid.UUID(conversation_id)
        except ValueError as error:
            raise ApiError(403, "forbidden", "not a conversation id") from error
        who = await authorize(runtime, websocket.query_params.get("token"), wanted, websocket.headers.get("origin"))
        after = int(websocket.query_params.get("after") or 0)
    except RateLimitExceeded as error:
        await websocket.close(CLOSE_RATE_LIMITED, error.message[:120])
        return
    except ApiError as error:
        await websocket.close(CLOSE_FORBIDDEN if error.status == 403 else CLOSE_UNAUTHORIZED, error.message[:120])
        return
    except ValueError:
        await websocket.close(CLOSE_FORBIDDEN, "after must be an integer")
        return

    hub = runtime.hub
    socket = WidgetSocket(hub, websocket, who.tenant.tenant_id, who.conversation_id, max(after, 0))
    # Registered before the history is fetched: live events of that window wait in its queue.
    hub.add(socket)
    try:
        try:
            await hub.catch_up(socket, who.tenant.tenant_id)
        except ApiError as error:
            await websocket.close(CLOSE_FORBIDDEN if error.status == 403 else CLOSE_UNAVAILABLE, error.message[:120])
            return
        await receive_loop(runtime, websocket, socket, websocket.query_params.get("token"))
    except WebSocketDisconnect:
        pass
    finally:
        hub.remove(socket)
        if (
            websocket.application_state is WebSocketState.CONNECTED
            and websocket.client_state is WebSocketState.CONNECTED
        ):
            with contextlib.suppress(RuntimeError, WebSocketDisconnect):  # the client left meanwhile
                await websocket.close()


async def client_frames(websocket: WebSocket, max_chars: int = 1000) -> AsyncIterator[dict[str, Any]]:
    """The JSON objects a client sends, until it disconnects; anything else (binary, longer than
    `max_chars`, not JSON, not an object) is passed over."""
    while True:
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            return
        text = message.get("text")
        if not text or len(text) > max_chars:
            continue
        try:
            frame = json.loads(text)
        except ValueError:
            continue
        if isinstance(frame, dict):
            yield frame


async def receive_loop(runtime: GatewayRuntime, websocket: WebSocket, socket: WidgetSocket, token: str | None) -> None:
    """The only per-socket task: answers pings and the customer's messages, one at a time, and
    notices the disconnect."""
    async for frame in client_frames(websocket, max_chars=runtime.config.max_body_bytes):
        kind = frame.get("type")
        if kind == "ping":
            socket.push(PONG)
        elif kind == "message":
            socket.push(reply_frame(await answer_message(runtime, websocket, socket.conversation_id, token, frame)))


async def answer_message(
    runtime: GatewayRuntime, websocket: WebSocket, conversation_id: uuid.UUID, token: str | None, frame: dict[str, Any]
) -> dict[str, Any]:
    """A message sent on the stream (`{"type":"message","client_message_id","text"}`) is taken as
    its POST would be, checks included: the token and the tenant are checked again at every
    message, as they are at every request. The answer carries the client_message_id: `accepted`
    with the message id, or `error` with the HTTP status, code and message the POST would have
    answered (and `retry_after` seconds for a rate limit)."""
    tag = frame.get("client_message_id")
    tag = tag if isinstance(tag, str) else None
    try:
        with server_span(f"message {STREAM_ROUTE}", **{"http.route": STREAM_ROUTE, "url.path": websocket.url.path}):
            who = await authorize(runtime, token, conversation_id, websocket.headers.get("origin"))
            body = PostMessageRequest.model_validate(frame)
            accepted = await accept_message(runtime, who, body, ip_limit(runtime, websocket))
    except ValidationError as error:
        return refusal(tag, ApiError(422, "invalid_request", validation_problems(error.errors())))
    except ApiError as error:
        return refusal(tag, error)
    return {"type": "accepted", "client_message_id": tag, "message_id": str(accepted.message_id)}


def refusal(client_message_id: str | None, error: ApiError) -> dict[str, Any]:
    """The `error` frame of a message refused as its POST would have been."""
    answer: dict[str, Any] = {
        "type": "error",
        "client_message_id": client_message_id,
        "status": error.status,
        "error": {"code": error.code, "message": error.message},
    }
    if isinstance(error, RateLimitExceeded):
        answer["retry_after"] = error.retry_after
    return answer
