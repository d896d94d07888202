"""The platform's API: what `python -m gateway.tenants create` does, over HTTP, for the platform's
own tools (`gateway.seed` seeds the shipped demo tenants with it).

`Authorization: Bearer <PLATFORM_ADMIN_TOKEN>`; with no token configured the API answers 404, as
if it did not exist. The tenant is made by `gateway.tenants.create_tenant` (the CLI's and the
sign-up's path), enabled at once, with its first admin and their audit entries.
"""

from __future__ import annotations

import asyncio
import secrets
from typing import Annotated

from fastapi import APIRouter, Depends, Header
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from contracts.common import ShortText
from gateway.api import RuntimeDep, limit_per_ip
from gateway.operators import hash_password
from gateway.schemas import errors
from gateway.signup_api import SignupAdmin, SignupLanguage, _unique, tenant_creation_refusals
from gateway.tenants import (
    NewTenant,
    TenantConfig,
    TenantIdText,
    clean_origins,
    create_tenant,
    known_time_zone,
    new_widget_key,
)
from servicekit.http import ApiError
from servicekit.logs import get_logger

log = get_logger(__name__)

PLATFORM_API_ACTOR = "platform-api"


async def platform_admin(runtime: RuntimeDep, authorization: Annotated[str | None, Header()] = None) -> None:
    expected = runtime.config.platform_admin_token
    if not expected:
        raise ApiError(404, "not_found", "the platform API is not enabled on this gateway")
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not secrets.compare_digest(token.encode(), expected.encode()):
        raise ApiError(401, "unauthorized", "a valid platform token is required")


router = APIRouter(
    prefix="/v1/platform", tags=["platform"], dependencies=[Depends(limit_per_ip), Depends(platform_admin)]
)


class PlatformTenant(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tenant_id: TenantIdText = Field(description="Lower-case letters, digits and dashes; 2 to 63 characters")
    name: ShortText
    languages: Annotated[list[SignupLanguage], AfterValidator(_unique)] = Field(
        min_length=1, max_length=2, description="The first is the default"
    )
    time_zone: Annotated[str, AfterValidator(known_time_zone)] = "Europe/Rome"
    widget_key: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{8,128}$")] | None = Field(
        default=None, description="Generated when absent (a demo keeps the key its pages embed)"
    )
    allowed_origins: Annotated[list[str], AfterValidator(clean_origins)] = Field(default_factory=list, max_length=50)
    admin: SignupAdmin


class PlatformTenantCreated(BaseModel):
    tenant_id: str
    widget_key: str
    admin_operator_id: str


@router.post(
    "/tenants",
    status_code=201,
    response_model=PlatformTenantCreated,
    summary="Create a tenant and its first admin (enabled at once)",
    responses=errors(
        401,
        404,
        409,
        413,
        422,
        429,
        503,
        s404="The platform API is not enabled (`PLATFORM_ADMIN_TOKEN` unset)",
        s409="The tenant id (`tenant_taken`) or the username (`username_taken`) is taken",
        s503="The database is unreachable",
    ),
)
async def create(runtime: RuntimeDep, body: PlatformTenant) -> PlatformTenantCreated:
    try:
        new = NewTenant(
            tenant=TenantConfig(
                tenant_id=body.tenant_id,
                name=body.name,
                widget_key=body.widget_key or new_widget_key(),
                allowed_origins=body.allowed_origins,
                default_language=body.languages[0],
            ),
            languages=list(body.languages),
            admin_username=body.admin.username,
            admin_email=body.admin.email,
            admin_display_name=body.admin.display_name,
            time_zone=body.time_zone,
        )
    except ValidationError as error:  # the request's own checks are the same: not expected
        raise ApiError(422, "invalid_request", str(error)) from error
    password_hash = await asyncio.to_thread(hash_password, body.admin.password)
    with tenant_creation_refusals(body.tenant_id, body.admin.username):
        tenant, admin = await create_tenant(
            runtime.sessions,  # type: ignore[arg-type]
            new,
            password_hash,
            actor=PLATFORM_API_ACTOR,
        )
    await runtime.access.changed()
    await runtime.tenants.refresh()
    log.info("tenant created through the platform API", tenant_id=tenant.tenant_id)
    return PlatformTenantCreated(
        tenant_id=tenant.tenant_id, widget_key=tenant.widget_key, admin_operator_id=admin.operator_id
    )
