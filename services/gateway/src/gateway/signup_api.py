"""Self-service sign-up: a business creates its tenant and first admin without a token.

Open only when the platform sets `SIGNUP_ENABLED` (404 otherwise), rate limited per client IP.
The tenant is made by `gateway.tenants.create_tenant`, the platform CLI's path, but waits for its
admin's email address to be verified (`pending_verification`): until then the access gate refuses
its widget key (`tenant_pending`) and its admin's login (`email_not_verified`). The notifier emails
the signed link (`gateway.signuplinks`, valid 48 hours); following it opens the dashboard's verify
page, which posts the token to `POST /v1/signup/verify`.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Request
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints, ValidationError
from sqlalchemy import func, select
from sqlalchemy.exc import DBAPIError, IntegrityError

from contracts.common import ShortText
from contracts.events import AccountEmailRequested
from gateway import signuplinks
from gateway.admin_api import transaction
from gateway.api import RuntimeDep, client_ip, limit_per_ip
from gateway.operators import hash_password
from gateway.ratelimit import Limit
from gateway.runtime import GatewayRuntime
from gateway.schemas import DeliverableEmail, errors
from gateway.store import OperatorRow, TenantRow, record_audit, tenant_state
from gateway.tenant_events import stage_profiles
from gateway.tenants import (
    AccountEmail,
    NewTenant,
    TenantConfig,
    TenantIdText,
    TenantTaken,
    UsernameTaken,
    create_tenant,
    known_time_zone,
    new_widget_key,
)
from servicekit.http import ApiError
from servicekit.logs import get_logger

log = get_logger(__name__)

SIGNUP_ACTOR = "signup"
# The languages the assistant, the widget and the emails speak.
SignupLanguage = Literal["it", "en"]
MIN_PASSWORD_LENGTH = 10


async def signup_open(runtime: RuntimeDep) -> None:
    if not runtime.config.signup_enabled:
        raise ApiError(404, "not_found", "self-service sign-up is not open on this platform")


router = APIRouter(prefix="/v1/signup", tags=["signup"], dependencies=[Depends(signup_open), Depends(limit_per_ip)])


def _unique(languages: list[str]) -> list[str]:
    if len(set(languages)) != len(languages):
        raise ValueError("a language is listed twice")
    return languages


class SignupAdmin(BaseModel):
    model_config = ConfigDict(extra="forbid")

    username: Annotated[
        str, StringConstraints(strip_whitespace=True, to_lower=True, pattern=r"^[A-Za-z0-9_.@-]{2,100}$")
    ]
    display_name: ShortText
    email: DeliverableEmail
    password: Annotated[str, StringConstraints(min_length=MIN_PASSWORD_LENGTH, max_length=200)]


class SignupRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    business_name: ShortText
    tenant_id: TenantIdText = Field(description="Lower-case letters, digits and dashes; 2 to 63 characters")
    languages: Annotated[list[SignupLanguage], AfterValidator(_unique)] = Field(
        min_length=1, max_length=2, description="The first is the default"
    )
    time_zone: Annotated[str, AfterValidator(known_time_zone)] = Field(examples=["Europe/Rome"])
    admin: SignupAdmin


class SignupAccepted(BaseModel):
    tenant_id: str
    status: Literal["pending_verification"] = "pending_verification"


class VerifyRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    token: Annotated[str, StringConstraints(min_length=1, max_length=1000)]


class SignupVerified(BaseModel):
    tenant_id: str
    dashboard_url: str


async def signup_throttle(request: Request, runtime: RuntimeDep) -> None:
    """Counted before the body is checked: each sign-up creates rows and sends an email."""
    await runtime.login_limiter.hit(
        Limit("signup-ip", client_ip(request), runtime.config.signup_attempts_per_ip),
    )


def _verification_email(runtime: GatewayRuntime, request_id: uuid.UUID, expires_at: datetime) -> AccountEmail:
    settings = runtime.config

    def email(tenant: TenantRow, admin: OperatorRow) -> AccountEmailRequested:
        link = signuplinks.SignupLink(tenant.tenant_id, admin.operator_id)
        token = signuplinks.sign(settings.signup_link_secret, link)
        return AccountEmailRequested(
            request_id=request_id,
            kind="verify_signup",
            email=admin.email,
            recipient_name=admin.display_name,
            language=tenant.default_language,
            tenant_name=tenant.name,
            link=signuplinks.verify_page_url(settings.public_base_url, token),
            expires_at=expires_at,
        )

    return email


@contextlib.contextmanager
def tenant_creation_refusals(tenant_id: str, username: str) -> Iterator[None]:
    """`create_tenant`'s refusals as API answers, for sign-up and the platform API alike."""
    try:
        yield
    except TenantTaken as error:
        raise ApiError(409, "tenant_taken", f"the tenant id {tenant_id} is taken") from error
    except UsernameTaken as error:
        raise ApiError(409, "username_taken", f"the username {username} is taken") from error
    except IntegrityError as error:  # a concurrent request took the id, the username or the key first
        raise ApiError(409, "conflict", "the tenant id, the username or the widget key is taken") from error
    except (OSError, DBAPIError) as error:
        raise ApiError(503, "unavailable", "the tenant could not be created now; retry") from error


@router.post(
    "",
    status_code=202,
    response_model=SignupAccepted,
    summary="Sign a business up: its tenant and first admin, refused until the emailed link is followed",
    dependencies=[Depends(signup_throttle)],
    responses=errors(
        404,
        409,
        413,
        422,
        429,
        503,
        s404="Self-service sign-up is not open (`SIGNUP_ENABLED` off)",
        s409="The tenant id (`tenant_taken`) or the username (`username_taken`) is taken",
        s503="The database is unreachable",
    ),
)
async def signup(runtime: RuntimeDep, body: SignupRequest) -> SignupAccepted:
    admin = body.admin
    try:
        new = NewTenant(
            tenant=TenantConfig(
                tenant_id=body.tenant_id,
                name=body.business_name,
                widget_key=new_widget_key(),
                default_language=body.languages[0],
            ),
            languages=list(body.languages),
            admin_username=admin.username,
            admin_email=admin.email,
            admin_display_name=admin.display_name,
            time_zone=body.time_zone,
        )
    except ValidationError as error:  # the request's own checks are the same: not expected
        raise ApiError(422, "invalid_request", str(error)) from error
    password_hash = await asyncio.to_thread(hash_password, admin.password)
    expires_at = datetime.now(UTC) + timedelta(seconds=signuplinks.SIGNUP_MAX_AGE_SECONDS)
    # The widget key is not answered here: the admin reads it in the dashboard once verified.
    with tenant_creation_refusals(body.tenant_id, admin.username):
        await create_tenant(
            runtime.sessions,  # type: ignore[arg-type]
            new,
            password_hash,
            actor=SIGNUP_ACTOR,
            pending_verification=True,
            account_email=_verification_email(runtime, uuid.uuid4(), expires_at),
        )
    # Every replica's gate learns that the tenant is pending before anyone has its key.
    await runtime.access.changed()
    log.info("tenant signed up", tenant_id=body.tenant_id)
    return SignupAccepted(tenant_id=body.tenant_id)


@router.post(
    "/verify",
    response_model=SignupVerified,
    summary="Verify a sign-up with the token of its emailed link (again: the same answer, nothing changes)",
    responses=errors(
        404,
        410,
        413,
        422,
        429,
        503,
        s404="Self-service sign-up is not open (`SIGNUP_ENABLED` off)",
        s410="The link is invalid or has expired (`link_gone`)",
        s503="The database is unreachable",
    ),
)
async def verify(runtime: RuntimeDep, body: VerifyRequest) -> SignupVerified:
    gone = ApiError(410, "link_gone", "this link is invalid or has expired: sign up again")
    try:
        link = signuplinks.verify(runtime.config.signup_link_secret, body.token)
    except signuplinks.InvalidSignupLinkError as error:
        raise gone from error
    changed = False
    async with transaction(runtime) as session:
        query = select(TenantRow).where(TenantRow.tenant_id == link.tenant_id).with_for_update()
        tenant = (await session.scalars(query)).one_or_none()
        admin = await session.get(OperatorRow, link.operator_id)
        if tenant is None or admin is None or admin.tenant_id != tenant.tenant_id:
            raise gone
        if tenant.pending_verification:
            before = tenant_state(tenant)
            tenant.pending_verification = False
            tenant.profile_revision += 1
            tenant.updated_at = func.now()
            await session.flush()
            await session.refresh(tenant)
            stage_profiles(session, [tenant])
            await record_audit(
                session,
                tenant_id=tenant.tenant_id,
                actor=admin.operator_id,
                action="tenant.verify_signup",
                target=f"tenant:{tenant.tenant_id}",
                before=before,
                after=tenant_state(tenant),
            )
            changed = True
    if changed:
        await runtime.access.changed()  # every replica lets the widget and the admin in
        log.info("sign-up verified", tenant_id=link.tenant_id)
    return SignupVerified(
        tenant_id=link.tenant_id, dashboard_url=f"{runtime.config.public_base_url.rstrip('/')}/dashboard"
    )
