"""Canned responses: the replies an operator inserts with `/shortcut`, per tenant and language.

Every role of the tenant reads them; admins add, change and delete them, each change with its
audit entry in the same transaction. A shortcut is unique per tenant and language (409); another
tenant's response answers 404 like an unknown one.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Response
from pydantic import BaseModel, ConfigDict, Field, StringConstraints
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from contracts.common import Language, RequiredText, ShortText
from gateway.admin_api import AdminDep, transaction
from gateway.api import RuntimeDep, limit_per_ip
from gateway.operator_api import OperatorDep
from gateway.schemas import operator_errors
from gateway.store import CannedResponseRow, canned_state, record_audit
from gateway.tokens import OperatorClaims
from servicekit.http import ApiError

router = APIRouter(prefix="/v1/canned-responses", tags=["canned responses"], dependencies=[Depends(limit_per_ip)])

Shortcut = Annotated[
    str,
    StringConstraints(strip_whitespace=True, to_lower=True, pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]{0,39}$", max_length=40),
]
Title = ShortText
# An operator's message is at most 4000 characters: a longer response could never be sent.
Text = Annotated[str, RequiredText(4000)]

ERRORS = {
    "s403": "Only the tenant's admins may change canned responses",
    "s404": "No such canned response in the tenant",
    "s409": "The language already has this shortcut (`shortcut_taken`)",
}


class CannedResponseBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    language: Language
    shortcut: Shortcut = Field(description="Typed after `/` in the composer; unique per language")
    title: Title
    text: Text = Field(description="`{operator}` is replaced by the operator's name when inserted")


class CannedResponse(BaseModel):
    response_id: uuid.UUID
    language: str
    shortcut: str
    title: str
    text: str
    created_at: datetime
    updated_at: datetime


class CannedResponses(BaseModel):
    responses: list[CannedResponse]


def view(row: CannedResponseRow) -> CannedResponse:
    return CannedResponse(
        response_id=row.response_id,
        language=row.language,
        shortcut=row.shortcut,
        title=row.title,
        text=row.text,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


@router.get(
    "",
    response_model=CannedResponses,
    summary="The tenant's canned responses (every role), by language and shortcut",
    responses=operator_errors(401, 422, 429, 503),
)
async def list_responses(
    runtime: RuntimeDep, operator: OperatorDep, language: Annotated[Language | None, Query()] = None
) -> CannedResponses:
    query = select(CannedResponseRow).where(CannedResponseRow.tenant_id == operator.tenant_id)
    if language is not None:
        query = query.where(CannedResponseRow.language == language)
    async with transaction(runtime) as session:
        rows = (await session.scalars(query.order_by(CannedResponseRow.language, CannedResponseRow.shortcut))).all()
    return CannedResponses(responses=[view(row) for row in rows])


async def saved(session: AsyncSession) -> None:
    """Flushes; the unique (tenant, language, shortcut) refuses a taken shortcut, also a racing one."""
    try:
        await session.flush()
    except IntegrityError as error:
        raise ApiError(409, "shortcut_taken", "this language already has this shortcut") from error


async def audit(
    session: AsyncSession, actor: OperatorClaims, action: str, row: CannedResponseRow, before: dict[str, Any] | None
) -> None:
    await record_audit(
        session,
        tenant_id=actor.tenant_id,
        actor=actor.operator_id,
        action=action,
        target=f"canned:{row.response_id}",
        before=before,
        after=canned_state(row) if action != "canned.delete" else None,
    )


@router.post(
    "",
    status_code=201,
    response_model=CannedResponse,
    summary="Add a canned response (admins)",
    responses=operator_errors(401, 403, 409, 413, 422, 429, 503, **ERRORS),
)
async def create_response(runtime: RuntimeDep, actor: AdminDep, body: CannedResponseBody) -> CannedResponse:
    now = datetime.now(UTC)
    async with transaction(runtime) as session:
        row = CannedResponseRow(
            response_id=uuid.uuid4(), tenant_id=actor.tenant_id, created_at=now, updated_at=now, **body.model_dump()
        )
        session.add(row)
        await saved(session)
        await audit(session, actor, "canned.create", row, None)
        return view(row)


async def own(session: AsyncSession, actor: OperatorClaims, response_id: uuid.UUID) -> CannedResponseRow:
    row = (
        await session.scalars(
            select(CannedResponseRow)
            .where(CannedResponseRow.response_id == response_id, CannedResponseRow.tenant_id == actor.tenant_id)
            .with_for_update()
        )
    ).one_or_none()
    if row is None:
        raise ApiError(404, "not_found", "no such canned response")
    return row


@router.put(
    "/{response_id}",
    response_model=CannedResponse,
    summary="Change a canned response (admins)",
    responses=operator_errors(401, 403, 404, 409, 413, 422, 429, 503, **ERRORS),
)
async def update_response(
    runtime: RuntimeDep, actor: AdminDep, response_id: uuid.UUID, body: CannedResponseBody
) -> CannedResponse:
    async with transaction(runtime) as session:
        row = await own(session, actor, response_id)
        before = canned_state(row)
        for name, value in body.model_dump().items():
            setattr(row, name, value)
        if canned_state(row) != before:
            row.updated_at = datetime.now(UTC)
            await saved(session)
            await audit(session, actor, "canned.update", row, before)
        return view(row)


@router.delete(
    "/{response_id}",
    status_code=204,
    response_class=Response,
    summary="Delete a canned response (admins)",
    responses=operator_errors(401, 403, 404, 422, 429, 503, **ERRORS),
)
async def delete_response(runtime: RuntimeDep, actor: AdminDep, response_id: uuid.UUID) -> Response:
    async with transaction(runtime) as session:
        row = await own(session, actor, response_id)
        await audit(session, actor, "canned.delete", row, canned_state(row))
        await session.delete(row)
    return Response(status_code=204)
