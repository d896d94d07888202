"""The tenant's team: its accounts (roles, skills, capacity), invitations by email, and the public
routes that turn an invitation into an account.

Admins change the team, supervisors read it, operators get 403; always the token's tenant (another
tenant's account or invitation answers 404 like an unknown one). Each change is one transaction with
its audit entry; an invitation's email request (`tenant.account_email_requested`) is staged in the
outbox of that same transaction, so an invitation is never stored without its email, nor the reverse.

The invitation link carries a token signed with `INVITATION_LINK_SECRET` (itsdangerous, as
`contracts.ticketlinks`): it names the tenant and the invitation and expires with it. The row decides
the rest: an accepted, revoked or expired invitation is gone (410), whatever the token says.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Response
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from pydantic import BaseModel, ConfigDict, Field, StringConstraints
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from contracts.common import Language
from contracts.events import AccountEmailRequested, Skill
from gateway.admin_api import AdminDep, OperatorIdPath, transaction
from gateway.api import RuntimeDep, limit_per_ip
from gateway.commands import send_command
from gateway.operator_api import OperatorDep, presence_command
from gateway.operators import MIN_PASSWORD_CHARS, DisplayName, Role, Username, hash_password
from gateway.runtime import GatewayRuntime
from gateway.schemas import DeliverableEmail, operator_errors
from gateway.store import (
    InvitationRow,
    OperatorRow,
    TenantRow,
    invitation_state,
    operator_by_username,
    operator_state,
    record_audit,
)
from gateway.tenant_events import stage_account_email
from gateway.tokens import OperatorClaims
from servicekit.http import ApiError
from servicekit.logs import get_logger

log = get_logger(__name__)

router = APIRouter(prefix="/v1/team", tags=["team"], dependencies=[Depends(limit_per_ip)])
public_router = APIRouter(prefix="/v1/invitations", tags=["invitations"], dependencies=[Depends(limit_per_ip)])

SUPERVISING = ("supervisor", "admin")
# A demotion takes effect at once: the account's tokens are refused and it logs in with its new role.
RANK = {Role.OPERATOR.value: 0, Role.SUPERVISOR.value: 1, Role.ADMIN.value: 2}
_SALT = "operator-invitation"

Password = Annotated[str, StringConstraints(min_length=MIN_PASSWORD_CHARS, max_length=200)]
Skills = Annotated[list[Skill], Field(max_length=20)]
Capacity = Annotated[int, Field(ge=1, le=20)]
InvitationToken = Annotated[str, StringConstraints(min_length=1, max_length=500)]


async def supervisor(operator: OperatorDep) -> OperatorClaims:
    if operator.role not in SUPERVISING:
        raise ApiError(403, "forbidden", "only the tenant's supervisors and admins may see the team")
    return operator


SupervisorDep = Annotated[OperatorClaims, Depends(supervisor)]


# ------------------------------------------------------------------------------ bodies


class TeamMember(BaseModel):
    operator_id: str
    username: str
    display_name: str
    email: str | None
    role: Role
    skills: list[str]
    capacity: int
    active: bool


class PendingInvitation(BaseModel):
    invitation_id: uuid.UUID
    email: str
    role: Role
    skills: list[str]
    capacity: int
    language: str
    invited_by: str = Field(description="The admin's operator id")
    created_at: datetime
    expires_at: datetime


class TeamView(BaseModel):
    tenant_id: str
    operators: list[TeamMember]
    invitations: list[PendingInvitation] = Field(description="Neither accepted, revoked nor expired")


class NewOperator(BaseModel):
    model_config = ConfigDict(extra="forbid")

    username: Username = Field(description="Unique across tenants (stored lower-case)")
    operator_id: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.@-]{1,99}$")] | None = Field(
        default=None,
        description="The account's id, e.g. carried over from another system; `<tenant>-<username>` when absent. "
        "Unique across tenants (409 `operator_id_taken`)",
    )
    display_name: DisplayName
    email: DeliverableEmail
    password: Password
    role: Role = Role.OPERATOR
    skills: Skills = Field(default_factory=list)
    capacity: Capacity = 3


class OperatorPatch(BaseModel):
    """Only the fields given change."""

    model_config = ConfigDict(extra="forbid")

    display_name: DisplayName | None = None
    role: Role | None = None
    skills: Skills | None = None
    capacity: Capacity | None = None


class NewInvitation(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email: DeliverableEmail
    role: Role = Role.OPERATOR
    skills: Skills = Field(default_factory=list)
    capacity: Capacity = 3
    language: Language = Field(description="The email's language: one of the tenant's")


class InvitationView(BaseModel):
    """What the invitation page shows before the account is made."""

    tenant_name: str
    email: str
    role: Role
    expires_at: datetime


class AcceptInvitation(BaseModel):
    model_config = ConfigDict(extra="forbid")

    token: InvitationToken
    username: Username
    display_name: DisplayName
    password: Password


class NewAccount(BaseModel):
    operator_id: str
    username: str


def member(row: OperatorRow) -> TeamMember:
    return TeamMember(
        operator_id=row.operator_id,
        username=row.username,
        display_name=row.display_name,
        email=row.email,
        role=Role(row.role),
        skills=list(row.skills),
        capacity=row.capacity,
        active=row.active,
    )


def pending(row: InvitationRow) -> PendingInvitation:
    return PendingInvitation(
        invitation_id=row.invitation_id,
        email=row.email,
        role=Role(row.role),
        skills=list(row.skills),
        capacity=row.capacity,
        language=row.language,
        invited_by=row.invited_by,
        created_at=row.created_at,
        expires_at=row.expires_at,
    )


# ------------------------------------------------------------------------------ signed links


@dataclass(frozen=True)
class InvitationLink:
    tenant_id: str
    invitation_id: uuid.UUID


class InvalidInvitationLinkError(Exception):
    """Not a token this secret signed, or altered."""


class ExpiredInvitationLinkError(Exception):
    """Signed, but older than its maximum age."""


def _serializer(secret: str) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(secret, salt=_SALT)


def sign_invitation(secret: str, link: InvitationLink) -> str:
    return _serializer(secret).dumps([link.tenant_id, str(link.invitation_id)])


def verify_invitation(secret: str, token: str, max_age_seconds: int) -> InvitationLink:
    try:
        tenant_id, invitation_id = _serializer(secret).loads(token, max_age=max_age_seconds)
        return InvitationLink(tenant_id=str(tenant_id), invitation_id=uuid.UUID(str(invitation_id)))
    except SignatureExpired as error:
        raise ExpiredInvitationLinkError(str(error)) from error
    except (BadSignature, ValueError, TypeError) as error:
        raise InvalidInvitationLinkError(str(error)) from error


def invitation_url(public_base_url: str, token: str) -> str:
    """The dashboard's page that accepts the invitation of `token`."""
    return f"{public_base_url.rstrip('/')}/dashboard/invite?t={token}"


# ------------------------------------------------------------------------------ the team


TEAM_ERRORS = {"s403": "Only the tenant's admins may do this", "s404": "No such operator in the admin's tenant"}


@router.get(
    "",
    response_model=TeamView,
    summary="The tenant's accounts and pending invitations (supervisors and admins)",
    responses=operator_errors(401, 403, 429, 503, s403="Operators may not see the team"),
)
async def team(runtime: RuntimeDep, actor: SupervisorDep) -> TeamView:
    async with transaction(runtime) as session:
        operators = (
            await session.scalars(
                select(OperatorRow).where(OperatorRow.tenant_id == actor.tenant_id).order_by(OperatorRow.username)
            )
        ).all()
        invitations = (
            await session.scalars(
                select(InvitationRow)
                .where(
                    InvitationRow.tenant_id == actor.tenant_id,
                    InvitationRow.accepted_at.is_(None),
                    InvitationRow.revoked_at.is_(None),
                    InvitationRow.expires_at > func.now(),
                )
                .order_by(InvitationRow.created_at)
            )
        ).all()
    return TeamView(
        tenant_id=actor.tenant_id,
        operators=[member(row) for row in operators],
        invitations=[pending(row) for row in invitations],
    )


def new_operator_id(tenant_id: str, username: str) -> str:
    """`<tenant>-<username>` as the platform CLI names accounts, unless that is too long."""
    candidate = f"{tenant_id}-{username}"
    return candidate if len(candidate) <= 100 else f"{tenant_id}-{uuid.uuid4().hex[:16]}"


async def add_account(session: AsyncSession, row: OperatorRow) -> None:
    """Adds the account; 409 when its username (unique across tenants) or id is taken."""
    if await operator_by_username(session, row.username) is not None:
        raise ApiError(409, "username_taken", "this username is taken")
    if await session.get(OperatorRow, row.operator_id) is not None:
        raise ApiError(409, "operator_id_taken", f"the account id {row.operator_id} is taken")
    session.add(row)
    try:
        await session.flush()
    except IntegrityError as error:  # taken meanwhile by a concurrent request
        raise ApiError(409, "username_taken", "this username is taken") from error


@router.post(
    "/operators",
    status_code=201,
    response_model=TeamMember,
    summary="Create an account in the admin's tenant (admins)",
    responses=operator_errors(
        401, 403, 409, 413, 422, 429, 503, **TEAM_ERRORS, s409="The username is taken (`username_taken`)"
    ),
)
async def create_operator(runtime: RuntimeDep, actor: AdminDep, body: NewOperator) -> TeamMember:
    password_hash = await asyncio.to_thread(hash_password, body.password)  # slow by design: off the loop
    async with transaction(runtime) as session:
        row = OperatorRow(
            operator_id=body.operator_id or new_operator_id(actor.tenant_id, body.username),
            tenant_id=actor.tenant_id,
            username=body.username,
            display_name=body.display_name,
            email=str(body.email),
            password_hash=password_hash,
            role=body.role.value,
            skills=list(body.skills),
            capacity=body.capacity,
            active=True,
            presence="offline",
            token_generation=0,
        )
        await add_account(session, row)
        await record_audit(
            session,
            tenant_id=actor.tenant_id,
            actor=actor.operator_id,
            action="operator.create",
            target=f"operator:{row.operator_id}",
            before=None,
            after=operator_state(row),
        )
        created = member(row)
    log.info("operator created", operator_id=created.operator_id, by=actor.operator_id)
    return created


async def active_admins(session: AsyncSession, tenant_id: str) -> list[str]:
    """The tenant's active admins, locked until the transaction ends: two admins demoting each
    other at once cannot leave the tenant with none."""
    query = (
        select(OperatorRow.operator_id)
        .where(OperatorRow.tenant_id == tenant_id, OperatorRow.role == "admin", OperatorRow.active.is_(True))
        .with_for_update()
    )
    return list((await session.scalars(query)).all())


@router.patch(
    "/operators/{operator_id}",
    response_model=TeamMember,
    summary="Change an account's name, role, skills or capacity (admins); routing learns skills and "
    "capacity at once. A demoted account's tokens are refused: it logs in again with its new role",
    responses=operator_errors(
        401,
        403,
        404,
        409,
        413,
        422,
        429,
        503,
        **TEAM_ERRORS,
        s409="The tenant's last active admin may not be demoted (`last_admin`)",
    ),
)
async def update_operator(
    runtime: RuntimeDep, actor: AdminDep, operator_id: OperatorIdPath, body: OperatorPatch
) -> TeamMember:
    changes = {name: value for name, value in body.model_dump(exclude_none=True).items()}
    async with transaction(runtime) as session:
        admins: list[str] = []
        if "role" in changes and changes["role"] != Role.ADMIN:
            admins = await active_admins(session, actor.tenant_id)
        row = (
            await session.scalars(
                select(OperatorRow)
                .where(OperatorRow.operator_id == operator_id, OperatorRow.tenant_id == actor.tenant_id)
                .with_for_update()
            )
        ).one_or_none()
        if row is None:
            raise ApiError(404, "not_found", "no such operator")
        before = operator_state(row)
        if admins == [row.operator_id] and row.role == "admin":  # only they are an active admin
            raise ApiError(409, "last_admin", "the tenant's last active admin may not be demoted")
        demoted = "role" in changes and RANK[str(changes["role"])] < RANK[row.role]
        for name, value in changes.items():
            setattr(row, name, str(value) if name == "role" else value)
        if demoted:
            row.token_generation += 1
        after = operator_state(row)
        if after == before:
            return member(row)
        row.updated_at = datetime.now(UTC)
        await session.flush()
        await record_audit(
            session,
            tenant_id=actor.tenant_id,
            actor=actor.operator_id,
            action="operator.update",
            target=f"operator:{operator_id}",
            before=before,
            after=after,
        )
        updated = member(row)
        presence = row.presence if row.active else "offline"
        command = presence_command(row, presence)
    if demoted:
        await runtime.access.changed()  # every replica refuses the tokens of the old role
    # Routing applies the new skills and capacity now, not at the next heartbeat.
    await send_command(runtime, command, tenant_id=actor.tenant_id, conversation_id=None)
    log.info("operator updated", operator_id=operator_id, by=actor.operator_id, fields=sorted(changes))
    return updated


# ------------------------------------------------------------------------------ invitations


@router.post(
    "/invitations",
    status_code=201,
    response_model=PendingInvitation,
    summary="Invite someone by email (admins): the notifier emails a signed link valid 7 days",
    responses=operator_errors(401, 403, 413, 422, 429, 503, **TEAM_ERRORS),
)
async def invite(runtime: RuntimeDep, actor: AdminDep, body: NewInvitation) -> PendingInvitation:
    settings = runtime.config
    async with transaction(runtime) as session:
        tenant = await session.get(TenantRow, actor.tenant_id)
        assert tenant is not None  # the token's tenant exists: accounts reference it
        languages = list(tenant.languages) or [tenant.default_language]
        if body.language not in languages:
            raise ApiError(422, "invalid_request", f"language: must be one of the tenant's ({', '.join(languages)})")
        row = InvitationRow(
            invitation_id=uuid.uuid4(),
            tenant_id=actor.tenant_id,
            email=str(body.email),
            role=body.role.value,
            skills=list(body.skills),
            capacity=body.capacity,
            language=body.language,
            invited_by=actor.operator_id,
            created_at=datetime.now(UTC),
            expires_at=datetime.now(UTC) + timedelta(seconds=settings.invitation_ttl_seconds),
        )
        session.add(row)
        await session.flush()
        token = sign_invitation(settings.invitation_link_secret, InvitationLink(actor.tenant_id, row.invitation_id))
        stage_account_email(
            session,
            actor.tenant_id,
            AccountEmailRequested(
                request_id=row.invitation_id,
                kind="operator_invite",
                email=row.email,
                language=row.language,
                tenant_name=tenant.name,
                invited_by=actor.display_name,
                link=invitation_url(settings.public_base_url, token),
                expires_at=row.expires_at,
            ),
        )
        await record_audit(
            session,
            tenant_id=actor.tenant_id,
            actor=actor.operator_id,
            action="invitation.create",
            target=f"invitation:{row.invitation_id}",
            before=None,
            after=invitation_state(row),
        )
        created = pending(row)
    log.info("operator invited", invitation_id=str(created.invitation_id), by=actor.operator_id)
    return created


@router.delete(
    "/invitations/{invitation_id}",
    status_code=204,
    response_class=Response,
    summary="Revoke an invitation (admins): its link stops working",
    responses=operator_errors(
        401,
        403,
        404,
        409,
        422,
        429,
        503,
        s403=TEAM_ERRORS["s403"],
        s404="No such invitation in the admin's tenant",
        s409="The invitation was accepted already (`invitation_accepted`): deactivate the account instead",
    ),
)
async def revoke(runtime: RuntimeDep, actor: AdminDep, invitation_id: uuid.UUID) -> Response:
    async with transaction(runtime) as session:
        row = (
            await session.scalars(
                select(InvitationRow)
                .where(InvitationRow.invitation_id == invitation_id, InvitationRow.tenant_id == actor.tenant_id)
                .with_for_update()
            )
        ).one_or_none()
        if row is None:
            raise ApiError(404, "not_found", "no such invitation")
        if row.accepted_at is not None:
            raise ApiError(409, "invitation_accepted", "the invitation was accepted already")
        if row.revoked_at is None:  # revoking twice changes nothing
            before = invitation_state(row)
            row.revoked_at = datetime.now(UTC)
            await session.flush()
            await record_audit(
                session,
                tenant_id=actor.tenant_id,
                actor=actor.operator_id,
                action="invitation.revoke",
                target=f"invitation:{invitation_id}",
                before=before,
                after=invitation_state(row),
            )
    return Response(status_code=204)


# ------------------------------------------------------------------------------ public: accepting


GONE = ApiError(410, "invitation_gone", "this invitation was used, revoked or has expired")


def read_link(runtime: GatewayRuntime, token: str) -> InvitationLink:
    settings = runtime.config
    try:
        return verify_invitation(settings.invitation_link_secret, token, settings.invitation_ttl_seconds)
    except ExpiredInvitationLinkError as error:
        raise GONE from error
    except InvalidInvitationLinkError as error:
        raise ApiError(404, "not_found", "no such invitation") from error


async def open_invitation(session: AsyncSession, link: InvitationLink, *, lock: bool) -> InvitationRow:
    """The invitation the link names while it can still be accepted; 410 once it cannot."""
    query = select(InvitationRow).where(
        InvitationRow.invitation_id == link.invitation_id, InvitationRow.tenant_id == link.tenant_id
    )
    row = (await session.scalars(query.with_for_update() if lock else query)).one_or_none()
    if row is None:
        raise ApiError(404, "not_found", "no such invitation")
    if row.accepted_at is not None or row.revoked_at is not None or row.expires_at <= datetime.now(UTC):
        raise GONE
    return row


PUBLIC_ERRORS = {
    "s404": "Not an invitation link",
    "s410": "The invitation was used, revoked or has expired (`invitation_gone`)",
    "s403": "The tenant is disabled (`tenant_disabled`)",
}


@public_router.get(
    "/{token}",
    response_model=InvitationView,
    summary="Who invites whom (no token: the link's own signed token names the invitation)",
    responses=operator_errors(403, 404, 410, 422, 429, 503, **PUBLIC_ERRORS),
)
async def show_invitation(runtime: RuntimeDep, token: Annotated[InvitationToken, Path()]) -> InvitationView:
    link = read_link(runtime, token)
    async with transaction(runtime) as session:
        row = await open_invitation(session, link, lock=False)
        tenant = await session.get(TenantRow, row.tenant_id)
    assert tenant is not None
    if runtime.access.tenant_disabled(row.tenant_id):
        raise ApiError(403, "tenant_disabled", "this tenant is disabled")
    return InvitationView(tenant_name=tenant.name, email=row.email, role=Role(row.role), expires_at=row.expires_at)


@public_router.post(
    "/accept",
    status_code=201,
    response_model=NewAccount,
    summary="Accept an invitation: the account is made with the invitation's role, skills, capacity and email (once)",
    responses=operator_errors(
        403, 404, 409, 410, 413, 422, 429, 503, **PUBLIC_ERRORS, s409="The username is taken (`username_taken`)"
    ),
)
async def accept_invitation(runtime: RuntimeDep, body: AcceptInvitation) -> NewAccount:
    link = read_link(runtime, body.token)
    if runtime.access.tenant_disabled(link.tenant_id):
        raise ApiError(403, "tenant_disabled", "this tenant is disabled")
    password_hash = await asyncio.to_thread(hash_password, body.password)
    async with transaction(runtime) as session:
        invitation = await open_invitation(session, link, lock=True)  # a second accept waits, then is 410
        before = invitation_state(invitation)
        row = OperatorRow(
            operator_id=new_operator_id(invitation.tenant_id, body.username),
            tenant_id=invitation.tenant_id,
            username=body.username,
            display_name=body.display_name,
            email=invitation.email,
            password_hash=password_hash,
            role=invitation.role,
            skills=list(invitation.skills),
            capacity=invitation.capacity,
            active=True,
            presence="offline",
            token_generation=0,
        )
        await add_account(session, row)
        invitation.accepted_at = datetime.now(UTC)
        invitation.operator_id = row.operator_id
        await session.flush()
        for action, target, state_before, state_after in (
            ("invitation.accept", f"invitation:{invitation.invitation_id}", before, invitation_state(invitation)),
            ("operator.create", f"operator:{row.operator_id}", None, operator_state(row)),
        ):
            await record_audit(
                session,
                tenant_id=invitation.tenant_id,
                actor=row.operator_id,
                action=action,
                target=target,
                before=state_before,
                after=state_after,
            )
        account = NewAccount(operator_id=row.operator_id, username=row.username)
    log.info("invitation accepted", operator_id=account.operator_id, tenant_id=link.tenant_id)
    return account
