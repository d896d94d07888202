"""Routing's internal API for the gateway: the atomic take, the queue and the operators."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from sqlalchemy.ext.asyncio import AsyncSession

from contracts import Envelope, new_envelope, utc_now
from contracts.events import TakeConversation
from contracts.readapi import OperatorView, QueueEntryView, QueueView, TakeRequest, TakeResult
from routing import domain, store
from routing.config import Settings
from routing.handlers import AlreadyTakenError, Cause, Decision, NotWaitingError, assign, drain, take
from routing.metrics import TAKE_SECONDS
from servicekit.consumer import collided
from servicekit.http import ApiError, ReadSession, Session

router = APIRouter(prefix="/internal", tags=["routing API"])
TenantId = Annotated[str, Query(min_length=1, max_length=64)]


class _AloneWithTheTenant(Exception):
    """This take has to drain the queue or add an operator: it needs the tenant's lock alone."""


@router.post("/conversations/{conversation_id}/take", response_model=TakeResult)
async def take_conversation(
    conversation_id: uuid.UUID, body: TakeRequest, request: Request, session: Session
) -> TakeResult:
    settings: Settings = request.app.state.runtime.settings
    # The request as the command it stands for: the cause of the events it emits.
    cause = new_envelope(
        TakeConversation(operator_id=body.operator_id), tenant_id=body.tenant_id, conversation_id=conversation_id
    )
    async with _take_turns(request.app.state, settings):
        started = time.perf_counter()
        via = await _accept_own_offer(session, settings, cause, body)
        if via is not None:
            TAKE_SECONDS.labels("own_offer").observe(time.perf_counter() - started)
        else:
            # While nobody waits, a take counts no seat and moves no one's position (takes ignore
            # capacity; a seat it frees has no taker), so takes share the tenant's lock: they run
            # side by side, two takes of one conversation serialised by its row lock, and never
            # beside a consumer batch, which takes the lock alone. Otherwise the take drains the
            # queue, alone.
            try:
                via = await _take(session, settings, cause, body, alone=False)
            except _AloneWithTheTenant:
                via = await _take(session, settings, cause, body, alone=True)
            TAKE_SECONDS.labels("tenant_lock").observe(time.perf_counter() - started)
    return TakeResult(conversation_id=conversation_id, operator_id=body.operator_id, via=via)


def _take_turns(state: Any, settings: Settings) -> asyncio.Semaphore:
    """The app's turns for takes (`Settings.concurrent_takes`), made on its first take."""
    if not hasattr(state, "take_turns"):
        state.take_turns = asyncio.Semaphore(settings.concurrent_takes)
    turns: asyncio.Semaphore = state.take_turns
    return turns


async def _accept_own_offer(
    session: AsyncSession, settings: Settings, cause: Envelope[TakeConversation], body: TakeRequest
) -> str | None:
    """The usual take: an operator accepting the offer made to it while nobody waits without one.
    It counts no seat (the offer already counts in the operator's load) and frees none, so it
    waits for neither the tenant's lock nor a consumer batch holding it, and drains nothing: the
    conversation's row lock, then the operator's, order it against a colleague's take, the offer's
    expiry or its withdrawal, which lock the same rows (see `routing.store`). With someone waiting
    it would move their positions (offered conversations count in them), so it is left to the
    caller, under the tenant's lock. A batch deciding meanwhile (not yet committed) may still
    count this offer ahead of the conversations it queues: their positions are then one too high
    until the tenant's next drain. None when the take is anything else (or collided with a
    decision locking the rows the other way round): the caller takes the tenant's lock then."""
    conversation_id = cause.conversation_id
    assert conversation_id is not None
    try:
        async with session.begin():
            if await store.anyone_waiting(session, body.tenant_id):
                return None
            conversation = await store.get_conversation(session, conversation_id)
            if (
                conversation is None
                or conversation.tenant_id != body.tenant_id
                or conversation.state != "offered"
                or conversation.operator_id != body.operator_id
            ):
                return None
            operator = await store.get_operator(session, body.tenant_id, body.operator_id, lock=True)
            if operator is None:
                return None
            decision = Decision(session, Cause.current(cause), settings, utc_now())
            assign(decision, conversation, operator, "offer")
            decision.flush()
        return "offer"
    except Exception as error:
        if collided(error):
            return None
        raise
    finally:
        session.expunge_all()  # the next transaction reads what it needs afresh


async def _take(
    session: AsyncSession, settings: Settings, cause: Envelope[TakeConversation], body: TakeRequest, *, alone: bool
) -> str:
    conversation_id = cause.conversation_id
    assert conversation_id is not None
    async with session.begin():
        await store.lock_tenant(session, body.tenant_id, shared=not alone)
        if not alone and (
            await store.anyone_waiting(session, body.tenant_id)
            or await store.get_operator(session, body.tenant_id, body.operator_id) is None
        ):
            raise _AloneWithTheTenant
        decision = Decision(session, Cause.current(cause), settings, utc_now())
        try:
            via = await take(decision, conversation_id, body.operator_id, body.display_name)
            if alone:
                await drain(decision)
        except NotWaitingError:
            raise ApiError(
                404, "not_waiting", f"conversation {conversation_id} is not waiting for an operator"
            ) from None
        except AlreadyTakenError:
            raise ApiError(
                409, "already_taken", f"conversation {conversation_id} was taken by another operator"
            ) from None
        decision.flush()
    return via


@router.get("/queue", response_model=QueueView)
async def get_queue(tenant_id: TenantId, session: ReadSession) -> QueueView:
    queue = {c.conversation_id: c for c in await store.unassigned(session, tenant_id)}
    positions = domain.positions(c.as_waiting() for c in queue.values())
    entries = [
        QueueEntryView(
            conversation_id=c.conversation_id,
            tenant_id=c.tenant_id,
            position=positions[c.conversation_id],
            priority=c.priority,
            reason=c.reason,
            intent=c.intent,
            waiting_since=c.waiting_since,
            offered_to=c.operator_id if c.state == "offered" else None,
        )
        for c in sorted(queue.values(), key=lambda c: positions[c.conversation_id])
    ]
    return QueueView(tenant_id=tenant_id, entries=entries)


@router.get("/operators", response_model=list[OperatorView])
async def get_operators(tenant_id: TenantId, session: ReadSession) -> list[OperatorView]:
    counts = await store.loads(session, tenant_id)
    return [
        OperatorView(
            operator_id=o.operator_id,
            display_name=o.display_name,
            presence=o.presence,
            skills=o.skills,
            capacity=o.capacity,
            active_conversations=counts.get(o.operator_id, {}).get("assigned", 0),
            pending_offers=counts.get(o.operator_id, {}).get("offered", 0),
        )
        for o in await store.operator_records(session, tenant_id)
    ]
