"""The operator half of the public API: login, presence, the queue, taking and working a
conversation, and the live stream (see README.md).

Every conversation route first reads the conversation through the conversation service's read
API: another tenant's conversation answers 404 exactly like one that does not exist, so nothing
about it leaks. An operator may not work a conversation another operator has (403); supervisors
and admins may work any of their tenant's. Commands carry the sender's role: the conversation
service and routing, whose word on ownership is final, refuse what no longer applies.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import Awaitable, Callable
from typing import Annotated, cast

from fastapi import APIRouter, Depends, Query, Request, Security, WebSocket
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.exc import DBAPIError
from starlette.websockets import WebSocketDisconnect, WebSocketState

from contracts import Payload
from contracts.common import ConversationStatus, OperatorPresence
from contracts.events import (
    AddInternalNote,
    CloseConversation,
    OperatorRole,
    PostOperatorMessage,
    ReleaseConversation,
    SetOperatorPresence,
    StatusChanged,
    TransferConversation,
)
from contracts.readapi import (
    ConversationListItem,
    ConversationListView,
    ConversationView,
    HandoverSummaryView,
    NotesView,
    QueueView,
    SuggestionRequest,
    SuggestionView,
    TakeRequest,
    TakeResult,
)
from gateway.access import TENANT_DISABLED, TENANT_PENDING, TENANT_REFUSALS
from gateway.api import CLOSE_UNAUTHORIZED, RuntimeDep, client_frames, client_ip, limit_per_ip, runtime_of
from gateway.commands import send_command
from gateway.copilot import latest_question
from gateway.hub import PONG
from gateway.operator_stream import SUPERVISING_ROLES, OperatorConnection, error_frame
from gateway.operators import verify_password
from gateway.ratelimit import Limit, RateLimitExceeded
from gateway.runtime import GatewayRuntime
from gateway.schemas import (
    Accepted,
    CloseRequest,
    LoginRequest,
    NoteRequest,
    OperatorMessageAccepted,
    OperatorMessageRequest,
    OperatorsResponse,
    OperatorStatus,
    OperatorSummary,
    RefreshRequest,
    StatusRequest,
    TokenPair,
    TransferRequest,
    operator_errors,
)
from gateway.store import OperatorRow, operator_by_id, operator_by_username, operators_of, set_presence
from gateway.tokens import InvalidToken, OperatorClaims, issue_operator_token, read_operator_token
from servicekit.http import ApiError
from servicekit.logs import get_logger

log = get_logger(__name__)

CLOSE_POLICY = 4403
EMAIL_NOT_VERIFIED = "email_not_verified"
AUTH_FRAME_TIMEOUT_SECONDS = 10.0

operator_bearer = HTTPBearer(auto_error=False, description="The operator access token from POST /v1/operators/login")

router = APIRouter(prefix="/v1", tags=["operators"], dependencies=[Depends(limit_per_ip)])


# ------------------------------------------------------------------------------ authentication


def read_access_token(runtime: GatewayRuntime, token: str | None) -> OperatorClaims:
    if not token:
        raise ApiError(401, "unauthorized", "an operator access token is required")
    try:
        claims = read_operator_token(runtime.config.operator_jwt_secret, token)
    except InvalidToken as error:
        raise ApiError(401, "unauthorized", "invalid or expired access token") from error
    refused(runtime, claims)
    return claims


def refused(runtime: GatewayRuntime, claims: OperatorClaims) -> None:
    """Tokens already issued stop working at once when their tenant is disabled or their account
    deactivated (an in-memory check: see gateway.access). 401 rather than 403: the token is no
    longer valid, and every operator route documents 401."""
    reason = runtime.access.refusal(claims)
    if reason in TENANT_REFUSALS:
        raise ApiError(401, TENANT_DISABLED, "this tenant is disabled")
    if reason is not None:
        raise ApiError(401, "unauthorized", "this account is no longer active")


def refused_tenant(runtime: GatewayRuntime, tenant_id: str) -> None:
    """Login and refresh: 403 for a disabled tenant, and for a sign-up whose email address is not
    verified yet (`email_not_verified`: its admin is told what to do)."""
    reason = runtime.access.tenant_refusal(tenant_id)
    if reason == TENANT_PENDING:
        raise ApiError(403, EMAIL_NOT_VERIFIED, "verify your email address first: follow the link we sent you")
    if reason is not None:
        raise ApiError(403, TENANT_DISABLED, "this tenant is disabled")


async def current_operator(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Security(operator_bearer)]
) -> OperatorClaims:
    return read_access_token(runtime_of(request), credentials.credentials if credentials else None)


OperatorDep = Annotated[OperatorClaims, Depends(current_operator)]


def issue_pair(runtime: GatewayRuntime, row: OperatorRow) -> TokenPair:
    settings = runtime.config
    claims = OperatorClaims(
        operator_id=row.operator_id,
        tenant_id=row.tenant_id,
        role=row.role,
        display_name=row.display_name,
        generation=row.token_generation,
    )
    return TokenPair(
        access_token=issue_operator_token(settings.operator_jwt_secret, claims, settings.operator_access_ttl_seconds),
        refresh_token=issue_operator_token(
            settings.operator_jwt_secret, claims, settings.operator_refresh_ttl_seconds, refresh=True
        ),
        expires_in=settings.operator_access_ttl_seconds,
    )


@router.post(
    "/operators/login",
    response_model=TokenPair,
    summary="Log in with username and password: an access token (minutes) and a refresh token (hours)",
    responses=operator_errors(
        401,
        403,
        413,
        422,
        429,
        503,
        s401="Wrong username or password",
        s403="The tenant is disabled (`tenant_disabled`), or its sign-up is not verified yet (`email_not_verified`)",
    ),
)
async def login(request: Request, runtime: RuntimeDep, body: LoginRequest) -> TokenPair:
    username = body.username.lower()
    settings = runtime.config
    # Counted before the password is checked, unknown usernames too: guessing costs the same.
    await runtime.login_limiter.hit(
        Limit("login-ip", client_ip(request), settings.login_attempts_per_ip),
        Limit("login-account", username, settings.login_attempts_per_account),
    )
    row = await _operator(runtime, lambda session: operator_by_username(session, username))
    password_hash = row.password_hash if row is not None and row.active else None
    # argon2 is slow by design: off the event loop. An unknown or inactive account is checked
    # against a dummy hash, so that it answers like a wrong password, in about the same time.
    matched = await asyncio.to_thread(verify_password, password_hash, body.password)
    if row is None or not matched:
        log.info("operator login refused", username=username[:100])
        raise ApiError(401, "invalid_credentials", "wrong username or password")
    # Told only to whoever knows the password: a disabled tenant's operators learn why, and so
    # does the admin of a sign-up not verified yet.
    refused_tenant(runtime, row.tenant_id)
    log.info("operator logged in", operator_id=row.operator_id, tenant_id=row.tenant_id)
    return issue_pair(runtime, row)


@router.post(
    "/operators/refresh",
    response_model=TokenPair,
    summary="Exchange a refresh token for a new pair of tokens",
    responses=operator_errors(
        401,
        403,
        413,
        422,
        429,
        503,
        s401="Invalid or expired refresh token, or account deactivated",
        s403="The tenant is disabled (`tenant_disabled`)",
    ),
)
async def refresh(runtime: RuntimeDep, body: RefreshRequest) -> TokenPair:
    try:
        claims = read_operator_token(runtime.config.operator_jwt_secret, body.refresh_token, refresh=True)
    except InvalidToken as error:
        raise ApiError(401, "unauthorized", "invalid or expired refresh token") from error
    # The account is read again: a disabled operator, or a changed role, takes effect here.
    row = await _operator(runtime, lambda session: operator_by_id(session, claims.operator_id))
    # A token issued before a deactivation stays refused after the account is activated again.
    if row is None or not row.active or claims.generation < row.token_generation:
        raise ApiError(401, "unauthorized", "this account is no longer active")
    refused_tenant(runtime, row.tenant_id)
    return issue_pair(runtime, row)


async def _operator(runtime: GatewayRuntime, query: Callable[..., Awaitable[OperatorRow | None]]) -> OperatorRow | None:
    assert runtime.sessions is not None
    try:
        async with runtime.sessions() as session, session.begin():
            return await query(session)
    except (OSError, DBAPIError) as error:  # the database is unreachable
        raise ApiError(503, "unavailable", "operator accounts are unavailable now; retry") from error


# ------------------------------------------------------------------------------ presence and queue


def presence_command(row: OperatorRow, presence: str, chosen: bool = False) -> SetOperatorPresence:
    """`chosen`: the operator or an admin chose `presence` now (not a heartbeat repeating it)."""
    return SetOperatorPresence(
        operator_id=row.operator_id,
        display_name=row.display_name,
        presence=cast(OperatorPresence, presence),
        skills=list(row.skills),
        capacity=row.capacity,
        chosen=chosen,
    )


@router.put(
    "/operators/me/status",
    response_model=OperatorStatus,
    summary="Go online, away or offline (routing offers conversations to online operators)",
    responses=operator_errors(401, 413, 422, 429, 503),
)
async def set_status(runtime: RuntimeDep, operator: OperatorDep, body: StatusRequest) -> OperatorStatus:
    # Stored, so that every replica's heartbeat for this operator re-sends the chosen status.
    row = await _operator(runtime, lambda session: set_presence(session, operator.operator_id, body.status))
    if row is None or not row.active:
        raise ApiError(401, "unauthorized", "this account is no longer active")
    envelope = await send_command(
        runtime, presence_command(row, body.status, chosen=True), tenant_id=row.tenant_id, conversation_id=None
    )
    return OperatorStatus(operator_id=row.operator_id, status=body.status, command_id=envelope.event_id)


@router.get(
    "/queue",
    response_model=QueueView,
    summary="The conversations of the operator's tenant waiting for an operator, first served first",
    responses=operator_errors(401, 429, 502, 503),
)
async def queue(runtime: RuntimeDep, operator: OperatorDep) -> QueueView:
    return await runtime.routing.queue(operator.tenant_id)


@router.get(
    "/operators",
    response_model=OperatorsResponse,
    summary="The operators of the caller's tenant with their presence and load (for the transfer picker)",
    responses=operator_errors(401, 429, 502, 503),
)
async def list_operators(runtime: RuntimeDep, operator: OperatorDep) -> OperatorsResponse:
    assert runtime.sessions is not None
    try:
        async with runtime.sessions() as session:
            accounts = [row for row in await operators_of(session, operator.tenant_id) if row.active]
    except (OSError, DBAPIError) as error:
        raise ApiError(503, "unavailable", "operator accounts are unavailable now; retry") from error
    # The accounts are the gateway's; presence and load are routing's, for those it has heard from.
    routed = {view.operator_id: view for view in await runtime.routing.operators(operator.tenant_id)}
    summaries = []
    for row in accounts:
        seen = routed.get(row.operator_id)
        summaries.append(
            OperatorSummary(
                operator_id=row.operator_id,
                display_name=row.display_name,
                role=cast(OperatorRole, row.role),
                presence=cast(OperatorPresence, seen.presence if seen else "offline"),
                active_conversations=seen.active_conversations if seen else 0,
                capacity=row.capacity,
                pending_offers=seen.pending_offers if seen else 0,
                skills=list(row.skills),
            )
        )
    order = {"online": 0, "away": 1, "offline": 2}
    summaries.sort(key=lambda o: (order.get(o.presence, 3), o.display_name.lower(), o.operator_id))
    return OperatorsResponse(tenant_id=operator.tenant_id, operators=summaries)


# ------------------------------------------------------------------------------ conversations


# While a conversation is in these states its `operator_id` has it; otherwise it names, at most,
# who last had it.
HELD_STATUSES = frozenset({ConversationStatus.WITH_OPERATOR, ConversationStatus.WAITING_CUSTOMER})
# Waiting conversations any operator of the tenant may look at before taking one.
WAITING_STATUSES = frozenset({ConversationStatus.HANDOFF_OFFERED, ConversationStatus.QUEUED})
# A conversation that became a ticket is read by any operator of the tenant, like the ticket itself
# (the dashboard's "full conversation" of a ticket).
TENANT_READABLE_STATUSES = WAITING_STATUSES | {ConversationStatus.TICKET_CREATED}


async def tenant_conversation(
    runtime: GatewayRuntime, operator: OperatorClaims, conversation_id: uuid.UUID
) -> ConversationView:
    """The conversation, if it is of the operator's tenant (else 404, as for an unknown one)."""
    view = await runtime.reader.conversation(conversation_id)
    if view is None or view.tenant_id != operator.tenant_id:
        raise ApiError(404, "not_found", "no such conversation")
    return view


async def workable_conversation(
    runtime: GatewayRuntime, operator: OperatorClaims, conversation_id: uuid.UUID
) -> ConversationView:
    """Of the tenant, and not held by another operator unless the operator supervises."""
    view = await tenant_conversation(runtime, operator, conversation_id)
    held_by_another = view.status in HELD_STATUSES and view.operator_id not in (None, operator.operator_id)
    if held_by_another and operator.role not in SUPERVISING_ROLES:
        raise ApiError(403, "forbidden", "another operator has this conversation")
    return view


async def readable_conversation(
    runtime: GatewayRuntime, operator: OperatorClaims, conversation_id: uuid.UUID
) -> ConversationView:
    """Of the tenant, and for an operator: waiting, a ticket's, or theirs (now or last); supervisors read all."""
    view = await tenant_conversation(runtime, operator, conversation_id)
    mine = view.operator_id == operator.operator_id
    if operator.role not in SUPERVISING_ROLES and not mine and view.status not in TENANT_READABLE_STATUSES:
        raise ApiError(403, "forbidden", "this conversation is not yours")
    return view


def role_of(operator: OperatorClaims) -> OperatorRole:
    """The role the token names, sent with each command: the owning services let a supervisor
    act on a conversation another operator has."""
    return cast(OperatorRole, operator.role)


async def send_about(
    runtime: GatewayRuntime, operator: OperatorClaims, conversation_id: uuid.UUID, payload: Payload
) -> Accepted:
    await workable_conversation(runtime, operator, conversation_id)
    envelope = await send_command(runtime, payload, tenant_id=operator.tenant_id, conversation_id=conversation_id)
    return Accepted(command_id=envelope.event_id)


CONVERSATION_ERRORS = operator_errors(401, 403, 404, 413, 422, 429, 502, 503)


@router.get(
    "/conversations",
    response_model=ConversationListView,
    summary="The tenant's conversations the caller may see, most recently changed first: an operator's own "
    "(assigned now or last) and the queue; a supervisor's or admin's, all of the tenant",
    responses=operator_errors(401, 422, 429, 502, 503),
)
async def list_conversations(
    runtime: RuntimeDep,
    operator: OperatorDep,
    status: ConversationStatus | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> ConversationListView:
    tenant_id = operator.tenant_id
    # A supervisor sees the whole tenant; an operator, by the same rule as reading one, their own
    # (now or last) and those waiting for anyone to take them.
    asks: list[tuple[ConversationStatus | None, str | None]] = [(status, None)]
    if operator.role not in SUPERVISING_ROLES:
        asks = [(status, operator.operator_id)]
        if status in (None, ConversationStatus.QUEUED):
            asks.append((ConversationStatus.QUEUED, None))
    found: dict[uuid.UUID, ConversationListItem] = {}
    for wanted_status, operator_id in asks:
        view = await runtime.reader.conversations(tenant_id, status=wanted_status, operator_id=operator_id, limit=limit)
        # Checked again here: whatever the read API answers, nothing of another tenant goes out.
        found.update((c.conversation_id, c) for c in view.conversations if c.tenant_id == tenant_id)
    newest_first = sorted(found.values(), key=lambda c: c.updated_at, reverse=True)[:limit]
    return ConversationListView(tenant_id=tenant_id, conversations=newest_first)


@router.get(
    "/conversations/{conversation_id}/notes",
    response_model=NotesView,
    summary="The internal notes of a conversation (operators only; never shown to the customer)",
    responses=operator_errors(401, 403, 404, 429, 502, 503),
)
async def list_notes(runtime: RuntimeDep, operator: OperatorDep, conversation_id: uuid.UUID) -> NotesView:
    await readable_conversation(runtime, operator, conversation_id)
    return await runtime.reader.notes(conversation_id)


@router.get(
    "/conversations/{conversation_id}/summary",
    response_model=HandoverSummaryView,
    summary="What the customer wants, what the AI answered, what is open, and the customer's mood",
    responses=operator_errors(401, 403, 404, 429, 502, 503),
)
async def handover_summary(
    runtime: RuntimeDep, operator: OperatorDep, conversation_id: uuid.UUID
) -> HandoverSummaryView:
    await readable_conversation(runtime, operator, conversation_id)
    return await runtime.reader.summary(conversation_id)


@router.get(
    "/conversations/{conversation_id}/suggestion",
    response_model=SuggestionView,
    summary="A reply to the customer's latest message(s) suggested by the assistant from the knowledge base, "
    "with its sources, for the operator to edit and send (nothing is sent to the customer)",
    responses=operator_errors(
        401,
        403,
        404,
        409,
        429,
        502,
        503,
        s409="The customer has written nothing to answer yet (`no_question`)",
        s502="The conversation service or the assistant answered badly",
        s503="The conversation service or the assistant is unreachable",
    ),
)
async def suggestion(runtime: RuntimeDep, operator: OperatorDep, conversation_id: uuid.UUID) -> SuggestionView:
    await readable_conversation(runtime, operator, conversation_id)
    transcript = await runtime.reader.messages(conversation_id)
    question = latest_question(transcript.messages) if transcript is not None else None
    if question is None:
        raise ApiError(409, "no_question", "the customer has written nothing to answer yet")
    request = SuggestionRequest(tenant_id=operator.tenant_id, conversation_id=conversation_id, question=question)
    return await runtime.copilot.suggest(request)


@router.post(
    "/conversations/{conversation_id}/take",
    response_model=TakeResult,
    summary="Accept an offer, or take a waiting conversation from the queue",
    responses=operator_errors(
        401, 404, 409, 413, 422, 429, 502, 503, s404="No such conversation in the tenant, or it is not waiting"
    ),
)
async def take(runtime: RuntimeDep, operator: OperatorDep, conversation_id: uuid.UUID) -> TakeResult:
    await tenant_conversation(runtime, operator, conversation_id)
    request = TakeRequest(
        tenant_id=operator.tenant_id, operator_id=operator.operator_id, display_name=operator.display_name
    )
    operator_id = operator.operator_id
    # Watched before routing is asked, so that the conversation service's change, however soon it
    # comes, cannot slip by.
    with runtime.hub.watching(conversation_id, lambda change: held_by(operator_id, change)) as applied:
        result = await runtime.routing.take(conversation_id, request)
        await until_writable(runtime, conversation_id, operator_id, applied, just_assigned=result.via == "offer")
    return result


# How long a take waits for the conversation service to apply routing's assignment.
TAKE_SETTLE_SECONDS = 3.0


def held_by(operator_id: str, change: StatusChanged | ConversationView) -> bool:
    return change.status in HELD_STATUSES and change.operator_id == operator_id


async def until_writable(
    runtime: GatewayRuntime,
    conversation_id: uuid.UUID,
    operator_id: str,
    applied: asyncio.Future[None],
    *,
    just_assigned: bool,
) -> None:
    """Returns once the conversation service holds the conversation for `operator_id`.

    Routing decides the take, but the conversation service, which accepts or refuses the
    operator's messages, learns of it from routing's `operator_assigned` on another topic: a
    message posted right after routing's answer could overtake it and be refused. Waiting here
    keeps one owner of each rule (routing for seats, the conversation service for who may write)
    and makes the 200 mean "write now". The wait is for the conversation's own status change among
    the events this process fans out (`applied`, watched since before routing was asked): an
    offer accepted (`just_assigned`) is an assignment routing has just made, whose change is on
    its way, so nothing is read; any other take may find the conversation held already (the same
    take again after a 503), so the current state is read once first. Polling the read API for
    every take loaded the conversation service exactly when it was busiest. Beyond the bound the
    operator gets 503 and retries: the same take again answers 200 (routing keeps the
    conversation with them)."""

    async def held_now() -> bool:
        view = await runtime.reader.conversation(conversation_id)
        return view is not None and held_by(operator_id, view)

    if applied.done() or (not just_assigned and await held_now()):
        return
    try:
        await asyncio.wait_for(applied, TAKE_SETTLE_SECONDS)
        return
    except TimeoutError:
        pass
    if await held_now():  # the event may have been missed
        return
    log.warning("take answered by routing, not yet applied by the conversation service", operator_id=operator_id)
    raise ApiError(503, "unavailable", "the conversation is yours but not ready for messages yet; retry the take")


@router.post(
    "/conversations/{conversation_id}/operator-messages",
    status_code=202,
    response_model=OperatorMessageAccepted,
    summary="Write to the customer",
    responses=CONVERSATION_ERRORS,
)
async def post_operator_message(
    runtime: RuntimeDep, operator: OperatorDep, conversation_id: uuid.UUID, body: OperatorMessageRequest
) -> OperatorMessageAccepted:
    # Derived when the dashboard names the message: a retry is the same message.
    message_id = (
        uuid.uuid5(conversation_id, f"operator:{operator.operator_id}:{body.client_message_id}")
        if body.client_message_id
        else uuid.uuid4()
    )
    payload = PostOperatorMessage(
        operator_id=operator.operator_id, message_id=message_id, text=body.text, role=role_of(operator)
    )
    accepted = await send_about(runtime, operator, conversation_id, payload)
    return OperatorMessageAccepted(command_id=accepted.command_id, message_id=message_id)


@router.post(
    "/conversations/{conversation_id}/notes",
    status_code=202,
    response_model=Accepted,
    summary="Add an internal note (operators only, never shown to the customer)",
    responses=CONVERSATION_ERRORS,
)
async def add_note(
    runtime: RuntimeDep, operator: OperatorDep, conversation_id: uuid.UUID, body: NoteRequest
) -> Accepted:
    payload = AddInternalNote(
        operator_id=operator.operator_id, note_id=uuid.uuid4(), text=body.text, role=role_of(operator)
    )
    return await send_about(runtime, operator, conversation_id, payload)


@router.post(
    "/conversations/{conversation_id}/transfer",
    status_code=202,
    response_model=Accepted,
    summary="Hand the conversation to another operator, or back to the queue",
    responses=CONVERSATION_ERRORS,
)
async def transfer(
    runtime: RuntimeDep, operator: OperatorDep, conversation_id: uuid.UUID, body: TransferRequest | None = None
) -> Accepted:
    body = body or TransferRequest()
    payload = TransferConversation(
        operator_id=operator.operator_id, to_operator_id=body.operator_id, reason=body.reason, role=role_of(operator)
    )
    return await send_about(runtime, operator, conversation_id, payload)


@router.post(
    "/conversations/{conversation_id}/close",
    status_code=202,
    response_model=Accepted,
    summary="Close the conversation as resolved, not resolved or cancelled",
    responses=CONVERSATION_ERRORS,
)
async def close(runtime: RuntimeDep, operator: OperatorDep, conversation_id: uuid.UUID, body: CloseRequest) -> Accepted:
    payload = CloseConversation(
        operator_id=operator.operator_id, outcome=body.resolution.outcome, role=role_of(operator)
    )
    return await send_about(runtime, operator, conversation_id, payload)


@router.post(
    "/conversations/{conversation_id}/release",
    status_code=202,
    response_model=Accepted,
    summary="Hand the conversation back to the AI assistant",
    responses=CONVERSATION_ERRORS,
)
async def release(runtime: RuntimeDep, operator: OperatorDep, conversation_id: uuid.UUID) -> Accepted:
    payload = ReleaseConversation(operator_id=operator.operator_id, role=role_of(operator))
    return await send_about(runtime, operator, conversation_id, payload)


# ------------------------------------------------------------------------------ live stream

stream_router = APIRouter(prefix="/v1", tags=["operators"])


@stream_router.websocket("/operators/stream")
async def operator_stream(websocket: WebSocket) -> None:
    """Routing's events for the tenant and the operator's conversations (see README).
    The access token comes as `?access_token=`, or as a first frame `{"type":"auth","access_token":...}`."""
    runtime = runtime_of(websocket)
    await websocket.accept()
    try:
        await runtime.limiter.hit(Limit("ip", client_ip(websocket), runtime.config.rate_limit_ip_requests))
        claims = read_access_token(runtime, websocket.query_params.get("access_token") or await _auth_frame(websocket))
    except RateLimitExceeded as error:
        await websocket.close(4429, error.message[:120])
        return
    except ApiError as error:
        code = CLOSE_POLICY if error.code == TENANT_DISABLED else CLOSE_UNAUTHORIZED
        await websocket.close(code, error.message[:120])
        return
    except WebSocketDisconnect:
        return

    connection = OperatorConnection(runtime.hub, websocket, claims)
    runtime.operator_hub.add(connection)
    heartbeat = asyncio.create_task(_heartbeat(runtime, connection), name="operator-heartbeat")
    try:
        connection.push(json.dumps({"type": "ready", "operator_id": claims.operator_id, "role": claims.role}))
        await _receive_loop(runtime, websocket, connection)
    except WebSocketDisconnect:
        pass
    finally:
        heartbeat.cancel()
        runtime.operator_hub.remove(connection)
        if (
            websocket.application_state is WebSocketState.CONNECTED
            and websocket.client_state is WebSocketState.CONNECTED
        ):
            with contextlib.suppress(RuntimeError, WebSocketDisconnect):
                await websocket.close()


async def _auth_frame(websocket: WebSocket) -> str | None:
    try:
        text = await asyncio.wait_for(websocket.receive_text(), AUTH_FRAME_TIMEOUT_SECONDS)
        frame = json.loads(text)
    except (TimeoutError, ValueError, KeyError):
        return None
    if isinstance(frame, dict) and frame.get("type") == "auth" and isinstance(frame.get("access_token"), str):
        return str(frame["access_token"])
    return None


async def _heartbeat(runtime: GatewayRuntime, connection: OperatorConnection) -> None:
    """While the stream is open, re-sends the operator's chosen presence (routing sets an
    operator offline when these stop). Read from the store each time: the status may have been
    changed through another replica."""
    operator_id = connection.claims.operator_id
    assert runtime.sessions is not None
    while True:
        try:
            async with runtime.sessions() as session:
                row = await operator_by_id(session, operator_id)
            if row is None or not row.active:
                connection.close(CLOSE_UNAUTHORIZED, "this account is no longer active")
                return
            if row.presence != "offline":
                await send_command(
                    runtime, presence_command(row, row.presence), tenant_id=row.tenant_id, conversation_id=None
                )
        except Exception as error:  # a missed beat is retried at the next one
            log.warning("operator heartbeat not sent", operator_id=operator_id, error=repr(error))
        await asyncio.sleep(runtime.config.presence_heartbeat_seconds)


async def _receive_loop(runtime: GatewayRuntime, websocket: WebSocket, connection: OperatorConnection) -> None:
    """Pings, and following or leaving a conversation:
    `{"type":"subscribe","conversation_id":"...","after":N}`, `{"type":"unsubscribe","conversation_id":"..."}`."""
    async for frame in client_frames(websocket):
        kind = frame.get("type")
        if kind == "ping":
            connection.push(PONG[2])
        elif kind in {"subscribe", "unsubscribe"}:
            try:
                conversation_id = uuid.UUID(str(frame.get("conversation_id")))
                after = max(int(frame.get("after") or 0), 0)
            except (ValueError, TypeError):
                connection.push(error_frame("invalid_request", "conversation_id must be a UUID, after an integer"))
                continue
            if kind == "unsubscribe":
                connection.unfollow(conversation_id)
            else:
                runtime.hub.spawn(_subscribe(runtime, connection, conversation_id, after))


async def _subscribe(
    runtime: GatewayRuntime, connection: OperatorConnection, conversation_id: uuid.UUID, after: int
) -> None:
    """Follows a conversation the operator may read: of their tenant (else `not_found`, as for an
    unknown one), and, for an operator, waiting or theirs (else `forbidden`)."""
    try:
        await readable_conversation(runtime, connection.claims, conversation_id)
    except ApiError as error:
        connection.push(error_frame(error.code, error.message, conversation_id))
        return
    await connection.follow(conversation_id, after)
