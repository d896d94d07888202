"""The tenant admin's API: deactivating and activating operator accounts, and the audit log.

Admins only (403 for operators and supervisors), and only of the token's tenant: another
tenant's account answers 404 like an unknown one, and the audit log lists the tenant's entries.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query
from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from contracts.common import ConversationStatus
from contracts.events import TransferConversation
from gateway.api import RuntimeDep, limit_per_ip
from gateway.commands import send_command
from gateway.operator_api import OperatorDep, presence_command
from gateway.runtime import GatewayRuntime
from gateway.schemas import operator_errors
from gateway.store import OperatorRow, audit_of, operator_state, record_audit
from gateway.tokens import OperatorClaims
from servicekit.http import ApiError
from servicekit.logs import get_logger

log = get_logger(__name__)

router = APIRouter(prefix="/v1/admin", tags=["admin"], dependencies=[Depends(limit_per_ip)])

REQUEUE_REASON = "operator deactivated"
# While a conversation is in these states its operator has it (operator_api.HELD_STATUSES).
HELD = (ConversationStatus.WITH_OPERATOR, ConversationStatus.WAITING_CUSTOMER)
MAX_ENTRY_ID = 2**63 - 1  # PostgreSQL's bigint: a larger cursor is a 422, not a database error


async def admin(operator: OperatorDep) -> OperatorClaims:
    if operator.role != "admin":
        raise ApiError(403, "forbidden", "only the tenant's admins may do this")
    return operator


AdminDep = Annotated[OperatorClaims, Depends(admin)]
# Starts with a letter or digit: "." and ".." are no path segment to send.
OperatorIdPath = Annotated[str, Path(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,99}$")]


class AccountChange(BaseModel):
    operator_id: str
    active: bool
    changed: bool = Field(description="False when the account already was in that state (no audit entry)")
    requeued: list[uuid.UUID] = Field(
        default_factory=list, description="The conversations the operator had, sent back to the queue"
    )


class AuditEntry(BaseModel):
    entry_id: int
    actor: str = Field(description="The admin's operator id, or `platform-cli`")
    action: str = Field(examples=["operator.deactivate"])
    target: str = Field(examples=["operator:lucine-marco"])
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    occurred_at: datetime


class AuditPage(BaseModel):
    tenant_id: str
    entries: list[AuditEntry]
    next_before: int | None = Field(description="Pass as `before` for the next (older) page; null at the end")


@asynccontextmanager
async def transaction(runtime: GatewayRuntime) -> AsyncIterator[AsyncSession]:
    assert runtime.sessions is not None
    try:
        async with runtime.sessions() as session, session.begin():
            yield session
    except (OSError, DBAPIError) as error:  # the database is unreachable
        raise ApiError(503, "unavailable", "operator accounts are unavailable now; retry") from error


async def set_active(runtime: GatewayRuntime, actor: OperatorClaims, operator_id: str, active: bool) -> AccountChange:
    """Changes the account and writes its audit entry in one transaction; a deactivation bumps
    the token generation, so that every token issued so far is refused for good."""
    async with transaction(runtime) as session:
        row = (
            await session.scalars(
                select(OperatorRow)
                .where(OperatorRow.operator_id == operator_id, OperatorRow.tenant_id == actor.tenant_id)
                .with_for_update()
            )
        ).one_or_none()
        if row is None:
            raise ApiError(404, "not_found", "no such operator")
        if row.active == active:
            return AccountChange(operator_id=operator_id, active=active, changed=False)
        before = operator_state(row)
        row.active = active
        if not active:
            row.token_generation += 1
            row.presence = "offline"
        await session.flush()
        await record_audit(
            session,
            tenant_id=actor.tenant_id,
            actor=actor.operator_id,
            action="operator.activate" if active else "operator.deactivate",
            target=f"operator:{operator_id}",
            before=before,
            after=operator_state(row),
        )
    await runtime.access.changed()  # every replica refuses the tokens from now on
    return AccountChange(operator_id=operator_id, active=active, changed=True)


ACCOUNT_ERRORS = operator_errors(
    401,
    403,
    404,
    409,
    422,
    429,
    502,
    503,
    s403="Only the tenant's admins may do this",
    s404="No such operator in the admin's tenant",
    s409="An admin may not deactivate their own account (`own_account`)",
)


@router.post(
    "/operators/{operator_id}/deactivate",
    response_model=AccountChange,
    summary="Deactivate an operator: their tokens stop working at once, their stream is closed, routing "
    "has them offline, and their conversations go back to the queue",
    responses=ACCOUNT_ERRORS,
)
async def deactivate(runtime: RuntimeDep, actor: AdminDep, operator_id: OperatorIdPath) -> AccountChange:
    if operator_id == actor.operator_id:
        raise ApiError(409, "own_account", "an admin may not deactivate their own account")
    change = await set_active(runtime, actor, operator_id, False)
    # Also when it was already inactive: a retry completes a deactivation cut short after its commit.
    async with transaction(runtime) as session:
        row = await session.get(OperatorRow, operator_id)
    assert row is not None
    await send_command(
        runtime, presence_command(row, "offline", chosen=True), tenant_id=actor.tenant_id, conversation_id=None
    )
    change.requeued = await requeue_held(runtime, actor, operator_id)
    log.info("operator deactivated", operator_id=operator_id, by=actor.operator_id, requeued=len(change.requeued))
    return change


async def requeue_held(runtime: GatewayRuntime, actor: OperatorClaims, operator_id: str) -> list[uuid.UUID]:
    """Sends each conversation the operator has back to the queue: the command the dashboard's
    "back to the queue" sends (a transfer to nobody), as the admin. Routing queues it again (others
    are offered it before its last operator), and the conversation service follows."""
    held: list[uuid.UUID] = []
    for status in HELD:
        view = await runtime.reader.conversations(actor.tenant_id, status=status, operator_id=operator_id, limit=200)
        # The tenant checked here too: nothing of another tenant is ever sent.
        held += [c.conversation_id for c in view.conversations if c.tenant_id == actor.tenant_id]
    for conversation_id in held:
        payload = TransferConversation(
            operator_id=actor.operator_id, to_operator_id=None, reason=REQUEUE_REASON, role="admin"
        )
        await send_command(runtime, payload, tenant_id=actor.tenant_id, conversation_id=conversation_id)
    return held


@router.post(
    "/operators/{operator_id}/activate",
    response_model=AccountChange,
    summary="Activate a deactivated operator again (they log in anew: their old tokens stay refused)",
    responses=operator_errors(
        401,
        403,
        404,
        422,
        429,
        503,
        s403="Only the tenant's admins may do this",
        s404="No such operator in the admin's tenant",
    ),
)
async def activate(runtime: RuntimeDep, actor: AdminDep, operator_id: OperatorIdPath) -> AccountChange:
    return await set_active(runtime, actor, operator_id, True)


@router.get(
    "/audit",
    response_model=AuditPage,
    summary="The tenant's administrative changes, newest first",
    responses=operator_errors(401, 403, 422, 429, 503, s403="Only the tenant's admins may read the audit log"),
)
async def audit(
    runtime: RuntimeDep,
    actor: AdminDep,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    before: Annotated[int | None, Query(ge=1, le=MAX_ENTRY_ID, description="Entries older than this entry_id")] = None,
) -> AuditPage:
    async with transaction(runtime) as session:
        rows = await audit_of(session, actor.tenant_id, limit=limit, before=before)
    entries = [
        AuditEntry(
            entry_id=r.entry_id,
            actor=r.actor,
            action=r.action,
            target=r.target,
            before=r.before,
            after=r.after,
            occurred_at=r.occurred_at,
        )
        for r in rows
    ]
    next_before = entries[-1].entry_id if len(entries) == limit else None
    return AuditPage(tenant_id=actor.tenant_id, entries=entries, next_before=next_before)
