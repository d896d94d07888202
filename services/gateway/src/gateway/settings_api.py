"""The tenant's settings: its profile, its widget (origins and appearance) and the widget key's
rotation; and the public widget configuration the widget script draws itself with.

Admins change the settings, supervisors read them, operators get 403; always the token's tenant.
Each change is one transaction with its audit entry (and, for the profile, its
`tenant.profile_changed` event in the outbox); bad input is a 422 naming the field, and nothing of
the request is saved. After the commit every gateway replica is told (the access gate's version
key), so that each reloads its tenant directory: a rotated key, new origins or languages apply
everywhere within a second.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints, field_validator, model_validator
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from contracts.common import ContactChannel, RequiredText, ShortText
from contracts.events import BusinessWindow
from gateway.admin_api import AdminDep, transaction
from gateway.api import RuntimeDep, limit_per_ip, widget_tenant
from gateway.operator_api import OperatorDep
from gateway.runtime import GatewayRuntime
from gateway.schemas import errors, operator_errors
from gateway.store import TenantRow, record_audit, tenant_state
from gateway.tenant_events import stage_profiles
from gateway.tenants import Tenant, clean_origins, known_time_zone, new_widget_key
from gateway.tokens import OperatorClaims
from servicekit.http import ApiError
from servicekit.logs import get_logger

log = get_logger(__name__)

router = APIRouter(prefix="/v1/settings", tags=["settings"], dependencies=[Depends(limit_per_ip)])
widget_router = APIRouter(prefix="/v1/widget", tags=["widget"], dependencies=[Depends(limit_per_ip)])

# The languages a tenant may offer (ISO 639-1): those the assistant, the notifier's templates and
# the dashboard can be given texts in. A short explicit list, so that a typo is a 422, not a language.
SUPPORTED_LANGUAGES = ("it", "en", "de", "fr", "es", "pt", "nl", "ca", "sl", "hr", "ro", "pl")
MAX_GRACE_SECONDS = 30 * 24 * 3600

# The widget's built-in look (the CSS variables --g and --gold of static/widget.js).
DEFAULT_PRIMARY_COLOR = "#0e3b2c"
DEFAULT_ACCENT_COLOR = "#e0b54a"


def known_language(language: str) -> str:
    if language not in SUPPORTED_LANGUAGES:
        raise ValueError(f"unknown language {language!r} (supported: {', '.join(SUPPORTED_LANGUAGES)})")
    return language


SupportedLanguage = Annotated[str, AfterValidator(known_language)]
Color = Annotated[str, StringConstraints(pattern=r"^#[0-9a-fA-F]{6}$", max_length=7), AfterValidator(str.lower)]
Origins = Annotated[list[Annotated[str, StringConstraints(max_length=300)]], Field(max_length=50)]


LauncherLabel = Annotated[str, RequiredText(60)]
Greeting = Annotated[str, RequiredText(500)]
ButtonLabel = Annotated[str, RequiredText(40)]


# --------------------------------------------------------------------------------------- the profile


class Profile(BaseModel):
    """The tenant's profile: what the other services learn from `tenant.profile_changed`."""

    model_config = ConfigDict(extra="forbid")

    name: ShortText
    languages: list[SupportedLanguage] = Field(min_length=1, max_length=20, description="ISO 639-1 codes")
    default_language: SupportedLanguage
    time_zone: Annotated[str, StringConstraints(max_length=64), AfterValidator(known_time_zone)] = Field(
        examples=["Europe/Rome"]
    )
    business_hours: list[BusinessWindow] = Field(
        default_factory=list, max_length=14, description="When operators answer; empty: at any hour"
    )

    @field_validator("languages")
    @classmethod
    def _distinct(cls, languages: list[str]) -> list[str]:
        if len(set(languages)) != len(languages):
            raise ValueError("a language is listed twice")
        return languages

    @model_validator(mode="after")
    def _default_offered(self) -> Profile:
        if self.default_language not in self.languages:
            raise ValueError(f"default_language {self.default_language!r} is not one of languages")
        return self


class ProfileView(Profile):
    tenant_id: str
    profile_revision: int = Field(description="Grows with every change (the revision of `tenant.profile_changed`)")


def profile_view(row: TenantRow) -> ProfileView:
    return ProfileView.model_construct(
        tenant_id=row.tenant_id,
        name=row.name,
        languages=list(row.languages or [row.default_language]),
        default_language=row.default_language,
        time_zone=row.time_zone,
        business_hours=[BusinessWindow.model_validate(window) for window in row.business_hours],
        profile_revision=row.profile_revision,
    )


# ---------------------------------------------------------------------------------------- the widget


class WidgetTexts(BaseModel):
    """The widget's texts in one language; a text left out (null) is the widget's own."""

    model_config = ConfigDict(extra="forbid")

    launcher_label: LauncherLabel | None = None
    greeting: Greeting | None = None
    operator_button: ButtonLabel | None = Field(None, description="The label of the request_operator button")
    continue_button: ButtonLabel | None = Field(None, description="The label of the continue_ai button")


class WidgetAppearance(BaseModel):
    model_config = ConfigDict(extra="forbid")

    primary_color: Color = Field(DEFAULT_PRIMARY_COLOR, description="#RRGGBB: header, launcher, buttons")
    accent_color: Color = Field(DEFAULT_ACCENT_COLOR, description="#RRGGBB: the rings and the highlights")
    position: Literal["bottom-right", "bottom-left"] = "bottom-right"
    texts: dict[str, WidgetTexts] = Field(
        default_factory=dict, max_length=20, description="Per language of the tenant: {<lang>: texts}"
    )


class WidgetSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    allowed_origins: Origins = Field(
        default_factory=list, description="The sites that may embed the widget: https://host[:port], no path"
    )
    appearance: WidgetAppearance = Field(default_factory=WidgetAppearance)

    @field_validator("allowed_origins")
    @classmethod
    def _origins(cls, origins: list[str]) -> list[str]:
        cleaned = clean_origins(origins)  # the rule of the tenant files
        return list(dict.fromkeys(cleaned))


class WidgetSettingsView(WidgetSettings):
    widget_key: str
    previous_key_expires_at: datetime | None = Field(
        description="Until when the key before the last rotation still works; null: it does not"
    )
    embed_snippet: str = Field(description="The tag to paste into the site's pages")


def appearance_of(stored: dict[str, Any], languages: list[str] | tuple[str, ...]) -> WidgetAppearance:
    """The stored appearance with the widget's defaults for what was never set, and the texts of
    the languages the tenant offers now."""
    appearance = WidgetAppearance.model_validate(stored or {})
    appearance.texts = {language: texts for language, texts in appearance.texts.items() if language in languages}
    return appearance


def previous_expiry(row: TenantRow) -> datetime | None:
    expires = row.previous_key_expires_at
    return expires if row.previous_widget_key and expires is not None and expires > datetime.now(UTC) else None


def embed_snippet(runtime: GatewayRuntime, widget_key: str) -> str:
    # The widget reads data-widget-key (and optional data-title, data-lang, data-ticket-response-hours);
    # the title defaults to the tenant's name from GET /v1/widget/config.
    base = runtime.config.public_base_url.rstrip("/")
    return f'<script src="{base}/widget.js" data-widget-key="{widget_key}" defer></script>'


def widget_view(runtime: GatewayRuntime, row: TenantRow) -> WidgetSettingsView:
    return WidgetSettingsView(
        allowed_origins=list(row.allowed_origins),
        appearance=appearance_of(row.widget, row.languages or [row.default_language]),
        widget_key=row.widget_key,
        previous_key_expires_at=previous_expiry(row),
        embed_snippet=embed_snippet(runtime, row.widget_key),
    )


def widget_state(row: TenantRow) -> dict[str, Any]:
    """What the audit log keeps of a widget change (never the key)."""
    return {"allowed_origins": list(row.allowed_origins), "appearance": dict(row.widget or {})}


class RotateKeyRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    grace_seconds: int = Field(
        0, ge=0, le=MAX_GRACE_SECONDS, description="How long the current key keeps working (0 to 30 days)"
    )


class RotatedKey(BaseModel):
    widget_key: str = Field(description="The new key: the embed snippet changes with it")
    previous_key_expires_at: datetime | None = Field(description="null: the previous key is refused already")
    embed_snippet: str


class WidgetConfig(BaseModel):
    """What the widget draws: colours, position and texts, the widget's defaults filled in."""

    tenant_name: str
    languages: list[str]
    default_language: str
    appearance: WidgetAppearance
    channels: list[ContactChannel] = Field(default_factory=lambda: [ContactChannel.EMAIL])
    """Where the tenant's customers can be written to (email, then WhatsApp and SMS when the
    notifier can send them): the contact form offers these, and a call back."""


# ------------------------------------------------------------------------------------------ the routes


async def reader(operator: OperatorDep) -> OperatorClaims:
    if operator.role not in ("supervisor", "admin"):
        raise ApiError(403, "forbidden", "the tenant's settings are for supervisors (read) and admins")
    return operator


ReaderDep = Annotated[OperatorClaims, Depends(reader)]

READ_ERRORS = operator_errors(401, 403, 429, 503, s403="The settings are for the tenant's supervisors and admins")
WRITE_ERRORS = operator_errors(
    401, 403, 413, 422, 429, 503, s403="Only the tenant's admins may change the settings (supervisors read them)"
)


async def tenant_row(session: AsyncSession, tenant_id: str, *, for_update: bool = False) -> TenantRow:
    query = select(TenantRow).where(TenantRow.tenant_id == tenant_id)
    row = (await session.scalars(query.with_for_update() if for_update else query)).one_or_none()
    if row is None:  # a token of a tenant removed from the database
        raise ApiError(404, "not_found", "no such tenant")
    return row


async def announce(runtime: GatewayRuntime) -> None:
    """After the commit: this replica's directory at once, every other one within a second."""
    await runtime.tenants.refresh()
    await runtime.access.changed()


@router.get("/profile", response_model=ProfileView, summary="The tenant's profile", responses=READ_ERRORS)
async def get_profile(runtime: RuntimeDep, caller: ReaderDep) -> ProfileView:
    async with transaction(runtime) as session:
        return profile_view(await tenant_row(session, caller.tenant_id))


@router.put(
    "/profile",
    response_model=ProfileView,
    summary="Change the tenant's profile (announced as tenant.profile_changed with the next revision)",
    responses=WRITE_ERRORS,
)
async def put_profile(runtime: RuntimeDep, admin: AdminDep, body: Profile) -> ProfileView:
    async with transaction(runtime) as session:
        row = await tenant_row(session, admin.tenant_id, for_update=True)
        before = tenant_state(row)
        row.name = body.name
        row.languages = list(body.languages)
        row.default_language = body.default_language
        row.time_zone = body.time_zone
        row.business_hours = [window.model_dump() for window in body.business_hours]
        row.profile_revision += 1
        await session.flush()
        stage_profiles(session, [row])
        await record_audit(
            session,
            tenant_id=admin.tenant_id,
            actor=admin.operator_id,
            action="tenant.update_profile",
            target=f"tenant:{admin.tenant_id}",
            before=before,
            after=tenant_state(row),
        )
        view = profile_view(row)
    await announce(runtime)
    log.info("profile changed", tenant_id=admin.tenant_id, revision=view.profile_revision, by=admin.operator_id)
    return view


@router.get(
    "/widget",
    response_model=WidgetSettingsView,
    summary="The widget's origins and appearance, its key and the embed snippet",
    responses=READ_ERRORS,
)
async def get_widget(runtime: RuntimeDep, caller: ReaderDep) -> WidgetSettingsView:
    async with transaction(runtime) as session:
        return widget_view(runtime, await tenant_row(session, caller.tenant_id))


@router.put(
    "/widget",
    response_model=WidgetSettingsView,
    summary="Change the widget's allowed origins and appearance",
    responses=WRITE_ERRORS,
)
async def put_widget(runtime: RuntimeDep, admin: AdminDep, body: WidgetSettings) -> WidgetSettingsView:
    async with transaction(runtime) as session:
        row = await tenant_row(session, admin.tenant_id, for_update=True)
        languages = list(row.languages or [row.default_language])
        for language in body.appearance.texts:
            if language not in languages:
                raise ApiError(
                    422,
                    "invalid_request",
                    f"appearance.texts.{language}: not one of the tenant's languages ({', '.join(languages)})",
                )
        before = widget_state(row)
        row.allowed_origins = list(body.allowed_origins)
        row.widget = body.appearance.model_dump(mode="json", exclude_none=True)
        await session.flush()
        await record_audit(
            session,
            tenant_id=admin.tenant_id,
            actor=admin.operator_id,
            action="widget.update",
            target=f"tenant:{admin.tenant_id}",
            before=before,
            after=widget_state(row),
        )
        view = widget_view(runtime, row)
    await announce(runtime)
    return view


@router.post(
    "/widget/rotate-key",
    response_model=RotatedKey,
    summary="A new widget key; the current one keeps working for grace_seconds, then is refused",
    responses=WRITE_ERRORS,
)
async def rotate_key(runtime: RuntimeDep, admin: AdminDep, body: RotateKeyRequest) -> RotatedKey:
    async with transaction(runtime) as session:
        row = await tenant_row(session, admin.tenant_id, for_update=True)
        before = {"previous_key_expires_at": iso(previous_expiry(row))}
        # One previous key at a time: rotating again within a grace period ends the older key's.
        expires = datetime.now(UTC) + timedelta(seconds=body.grace_seconds) if body.grace_seconds else None
        row.previous_widget_key = row.widget_key if expires is not None else None
        row.previous_key_expires_at = expires
        row.widget_key = new_widget_key()
        await session.flush()
        await record_audit(
            session,
            tenant_id=admin.tenant_id,
            actor=admin.operator_id,
            action="widget.rotate_key",
            target=f"tenant:{admin.tenant_id}",
            before=before,
            after={"widget_key": "rotated", "previous_key_expires_at": iso(expires)},
        )
        rotated = RotatedKey(
            widget_key=row.widget_key,
            previous_key_expires_at=expires,
            embed_snippet=embed_snippet(runtime, row.widget_key),
        )
    await announce(runtime)
    log.info("widget key rotated", tenant_id=admin.tenant_id, by=admin.operator_id, grace_seconds=body.grace_seconds)
    return rotated


def iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


@widget_router.get(
    "/config",
    response_model=WidgetConfig,
    summary="What the widget draws: the tenant's name, languages, colours, position and texts (widget key)",
    responses=errors(401, 403, 429, 503),
)
async def widget_config(tenant: Annotated[Tenant, Depends(widget_tenant)], runtime: RuntimeDep) -> WidgetConfig:
    # From the directory in memory, and the notifier's channels from a cache: a page load costs
    # no database round trip, and at most one call to the notifier per tenant and TTL.
    languages = list(tenant.languages or (tenant.default_language,))
    return WidgetConfig(
        tenant_name=tenant.name,
        languages=languages,
        default_language=tenant.default_language,
        appearance=appearance_of(dict(tenant.widget), languages),
        channels=list(await runtime.notifier.channels(tenant.tenant_id)),
    )
