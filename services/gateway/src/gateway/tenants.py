"""Tenants: YAML files upserted into the store, the platform's command line, and an in-memory
directory the routes read.

    python -m gateway.tenants load <file.yaml> [<file.yaml> ...]
    python -m gateway.tenants create --tenant-id T --name N --languages it,en [--origin URL ...]
                                     --admin-username U --admin-email E [--admin-display-name D]
    python -m gateway.tenants list
    python -m gateway.tenants disable <tenant_id>
    python -m gateway.tenants enable <tenant_id>

`create` prints the new widget key and the first admin's generated password, once: neither is
shown again (`list` leaves keys out). `disable` keeps every row of the tenant but refuses its
widget key, its customers' tokens and its operators (tokens already issued and open streams
included) on every gateway replica within a second (gateway.access); `enable` undoes it. Each
change is written to the audit log as `platform-cli`.

The directory keeps every tenant in memory (a handful of rows) so that a request costs no
database round trip; it reloads them periodically, and at once when an unknown widget key shows
up (at most once a second, so that a flood of bad keys cannot hammer the database).
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    EmailStr,
    Field,
    StringConstraints,
    ValidationError,
    field_validator,
)
from redis.asyncio import Redis
from redis.exceptions import RedisError
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from contracts.common import ShortText
from contracts.events import AccountEmailRequested
from gateway.access import announce_change
from gateway.config import MIGRATIONS, Settings
from gateway.operators import hash_password
from gateway.store import (
    OperatorRow,
    TenantRow,
    all_tenants,
    operator_by_username,
    operator_state,
    record_audit,
    tenant_state,
    upsert_tenant,
)
from gateway.tenant_events import stage_account_email, stage_profiles
from servicekit.db import create_engine, session_factory
from servicekit.logs import get_logger
from servicekit.migrations import upgrade_to_head

log = get_logger(__name__)

REFRESH_SECONDS = 30.0
MISS_REFRESH_SECONDS = 1.0


# Lower-case letters, digits and dashes: a tenant id appears in URLs, topics' keys and file names.
TenantIdText = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9-]{1,62}$")]


class TenantConfig(BaseModel):
    """One tenant file (`tenants/<tenant_id>.yaml`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    tenant_id: TenantIdText
    name: ShortText
    widget_key: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{8,128}$")]
    allowed_origins: list[str] = Field(default_factory=list)
    default_language: Annotated[str, StringConstraints(pattern=r"^[a-z]{2}$")] = "it"

    @field_validator("allowed_origins")
    @classmethod
    def _origins(cls, origins: list[str]) -> list[str]:
        return clean_origins(origins)


def clean_origins(origins: list[str]) -> list[str]:
    """Origins as browsers send them in the Origin header: `scheme://host[:port]`, lower case, with
    no path, query or trailing slash (a trailing slash is dropped); ValueError for anything else."""
    cleaned = []
    for given in origins:
        origin = given.strip().rstrip("/")
        problem = f"{given!r} is not an origin like https://example.com"
        try:
            parts = urlsplit(origin)
            port_ok = parts.port is None or parts.port > 0  # reading .port checks it is a number
        except ValueError as error:
            raise ValueError(problem) from error
        if (
            parts.scheme not in ("http", "https")
            or not parts.hostname
            or not port_ok
            or "@" in parts.netloc
            or any(character.isspace() for character in origin)
            or f"{parts.scheme}://{parts.netloc}".lower() != origin.lower()
        ):
            raise ValueError(problem)
        cleaned.append(origin.lower())
    return cleaned


def read_tenant_file(path: Path) -> TenantConfig:
    return TenantConfig.model_validate(yaml.safe_load(path.read_text()))


async def load_tenants(sessions: async_sessionmaker[AsyncSession], configs: Sequence[TenantConfig]) -> None:
    async with sessions() as session, session.begin():
        for config in configs:
            await upsert_tenant(session, **config.model_dump())


def tenant_files(directory: Path | None) -> list[Path]:
    if directory is None or not directory.is_dir():
        return []
    return sorted([*directory.glob("*.yaml"), *directory.glob("*.yml")])


@dataclass(frozen=True)
class Tenant:
    tenant_id: str
    name: str
    widget_key: str
    allowed_origins: frozenset[str]
    default_language: str
    languages: tuple[str, ...] = ()
    # The profile's IANA zone: the public status page writes promised times in it.
    time_zone: str = "UTC"
    # The widget's appearance as stored (gateway.settings_api.WidgetAppearance fills the defaults).
    widget: Mapping[str, Any] = field(default_factory=dict, compare=False, hash=False)

    def allows(self, origin: str | None) -> bool:
        """Requests without an Origin come from servers, not browsers: they are allowed."""
        return origin is None or origin in self.allowed_origins


def origin_of(url: str) -> str:
    """scheme://host[:port] of a URL, as browsers send it in the Origin header."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


class TenantDirectory:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], own_origin: str | None = None) -> None:
        self._sessions = sessions
        # The gateway serves the demo page itself, so its own origin may use every tenant's widget.
        self._own_origins = frozenset({own_origin} if own_origin else ())
        self._by_id: dict[str, Tenant] = {}
        self._by_key: dict[str, Tenant] = {}
        # A rotated key, still valid until its expiry (checked on each lookup: no reload needed).
        self._by_previous_key: dict[str, tuple[Tenant, datetime]] = {}
        self._origins: frozenset[str] = frozenset()
        self._loaded_at = 0.0
        self._lock = asyncio.Lock()

    @property
    def tenants(self) -> list[Tenant]:
        return list(self._by_id.values())

    async def refresh(self) -> None:
        async with self._lock:
            await self._load()

    async def _refresh_if_older_than(self, seconds: float) -> None:
        if time.monotonic() - self._loaded_at > seconds:
            async with self._lock:
                # Requests that waited for the lock find the directory fresh: one query, not one
                # per request that arrived while it ran (which had stalled the gateway each time).
                if time.monotonic() - self._loaded_at > seconds:
                    await self._load()

    async def _load(self) -> None:
        async with self._sessions() as session:
            rows = await all_tenants(session)
        tenants = [
            Tenant(
                tenant_id=r.tenant_id,
                name=r.name,
                widget_key=r.widget_key,
                allowed_origins=frozenset(r.allowed_origins) | self._own_origins,
                default_language=r.default_language,
                languages=tuple(r.languages or [r.default_language]),
                time_zone=r.time_zone,
                widget=dict(r.widget or {}),
            )
            for r in rows
        ]
        self._by_id = {t.tenant_id: t for t in tenants}
        self._by_key = {t.widget_key: t for t in tenants}
        self._by_previous_key = {
            r.previous_widget_key: (self._by_id[r.tenant_id], r.previous_key_expires_at)
            for r in rows
            if r.previous_widget_key and r.previous_key_expires_at is not None
        }
        self._origins = frozenset(origin for t in tenants for origin in t.allowed_origins)
        self._loaded_at = time.monotonic()

    async def by_key(self, widget_key: str) -> Tenant | None:
        """The tenant of a widget key: its current one, or its previous one until that expires
        (after which it is refused like a key never seen)."""
        await self._refresh_if_older_than(REFRESH_SECONDS)
        tenant = self._key_lookup(widget_key)
        if tenant is None:
            await self._refresh_if_older_than(MISS_REFRESH_SECONDS)
            tenant = self._key_lookup(widget_key)
        return tenant

    def _key_lookup(self, widget_key: str) -> Tenant | None:
        tenant = self._by_key.get(widget_key)
        if tenant is not None:
            return tenant
        previous = self._by_previous_key.get(widget_key)
        if previous is not None and datetime.now(UTC) < previous[1]:
            return previous[0]
        return None

    async def by_id(self, tenant_id: str) -> Tenant | None:
        await self._refresh_if_older_than(REFRESH_SECONDS)
        tenant = self._by_id.get(tenant_id)
        if tenant is None:
            await self._refresh_if_older_than(MISS_REFRESH_SECONDS)
            tenant = self._by_id.get(tenant_id)
        return tenant

    async def origin_known(self, origin: str) -> bool:
        """True when some tenant allows `origin` (what a CORS preflight, which has no key, can check)."""
        await self._refresh_if_older_than(REFRESH_SECONDS)
        return origin in self._origins


async def _load_command(paths: list[Path]) -> int:
    configs = [read_tenant_file(path) for path in paths]
    settings = Settings()
    # The table may not exist yet when the gateway has never started against this database.
    await asyncio.to_thread(upgrade_to_head, MIGRATIONS, settings.database_url)
    engine = create_engine(settings.database_url, pool_size=1)
    try:
        await load_tenants(session_factory(engine), configs)
    finally:
        await engine.dispose()
    for config in configs:
        print(f"loaded tenant {config.tenant_id} ({config.name})")
    return 0


# ------------------------------------------------------------------------------ the platform CLI

PLATFORM_ACTOR = "platform-cli"
Language = Annotated[str, StringConstraints(pattern=r"^[a-z]{2}$")]


class CommandError(Exception):
    """A refusal worth one line on stderr and exit status 2 (unknown tenant, name taken...)."""


class TenantTaken(CommandError):
    """The tenant id is another tenant's."""


class UsernameTaken(CommandError):
    """The first admin's username is another account's."""


def known_time_zone(name: str) -> str:
    """`name` when the tz database has it (ValueError otherwise)."""
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as error:
        raise ValueError(f"unknown time zone {name!r}") from error
    return name


class NewTenant(BaseModel):
    """What `create` is given, checked before anything is written."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    tenant: TenantConfig
    languages: list[Language] = Field(min_length=1, max_length=20)
    admin_username: Annotated[
        str, StringConstraints(strip_whitespace=True, to_lower=True, pattern=r"^[A-Za-z0-9_.@-]{2,100}$")
    ]
    admin_email: EmailStr
    admin_display_name: ShortText
    time_zone: Annotated[str, AfterValidator(known_time_zone)] | None = None


def new_widget_key() -> str:
    return "wk_" + secrets.token_urlsafe(24)


def new_password() -> str:
    return secrets.token_urlsafe(18)


AccountEmail = Callable[[TenantRow, OperatorRow], AccountEmailRequested]


async def create_tenant(
    sessions: async_sessionmaker[AsyncSession],
    new: NewTenant,
    password_hash: str,
    *,
    actor: str = PLATFORM_ACTOR,
    pending_verification: bool = False,
    account_email: AccountEmail | None = None,
) -> tuple[TenantRow, OperatorRow]:
    """The tenant and its first admin, with their two audit entries, in one transaction.

    A self-service sign-up passes `pending_verification` (the tenant is refused until its admin
    follows the emailed link) and `account_email`, the notifier's request for that email, staged
    in the same transaction: a tenant without its email, or the reverse, cannot happen."""
    config = new.tenant
    async with sessions() as session, session.begin():
        if await session.get(TenantRow, config.tenant_id) is not None:
            raise TenantTaken(f"tenant {config.tenant_id} already exists")
        if await operator_by_username(session, new.admin_username) is not None:
            raise UsernameTaken(f"the username {new.admin_username} is taken (usernames are unique across tenants)")
        tenant = TenantRow(
            tenant_id=config.tenant_id,
            name=config.name,
            widget_key=config.widget_key,
            allowed_origins=list(config.allowed_origins),
            default_language=config.default_language,
            languages=list(new.languages),
            pending_verification=pending_verification,
        )
        if new.time_zone is not None:
            tenant.time_zone = new.time_zone
        admin = OperatorRow(
            operator_id=f"{config.tenant_id}-{new.admin_username}",
            tenant_id=config.tenant_id,
            username=new.admin_username,
            email=str(new.admin_email),
            display_name=new.admin_display_name,
            password_hash=password_hash,
            role="admin",
            skills=[],
            capacity=3,
            active=True,
            presence="offline",
            token_generation=0,
        )
        session.add(tenant)
        await session.flush()  # the tenant before its operator (foreign key)
        session.add(admin)
        await session.flush()
        await session.refresh(tenant)
        stage_profiles(session, [tenant])
        if account_email is not None:
            stage_account_email(session, tenant.tenant_id, account_email(tenant, admin))
        for action, target, after in (
            ("tenant.create", f"tenant:{tenant.tenant_id}", tenant_state(tenant)),
            ("operator.create", f"operator:{admin.operator_id}", operator_state(admin)),
        ):
            await record_audit(
                session,
                tenant_id=tenant.tenant_id,
                actor=actor,
                action=action,
                target=target,
                before=None,
                after=after,
            )
    return tenant, admin


async def set_tenant_disabled(sessions: async_sessionmaker[AsyncSession], tenant_id: str, disabled: bool) -> bool:
    """Disables or enables the tenant with its audit entry; False when it already was so."""
    async with sessions() as session, session.begin():
        query = select(TenantRow).where(TenantRow.tenant_id == tenant_id).with_for_update()
        tenant = (await session.scalars(query)).one_or_none()
        if tenant is None:
            raise CommandError(f"unknown tenant {tenant_id}")
        if (tenant.disabled_at is not None) == disabled:
            return False
        before = tenant_state(tenant)
        tenant.disabled_at = func.now() if disabled else None
        tenant.profile_revision += 1
        await session.flush()
        await session.refresh(tenant)
        stage_profiles(session, [tenant])
        await record_audit(
            session,
            tenant_id=tenant_id,
            actor=PLATFORM_ACTOR,
            action="tenant.disable" if disabled else "tenant.enable",
            target=f"tenant:{tenant_id}",
            before=before,
            after=tenant_state(tenant),
        )
    return True


async def _announce(settings: Settings) -> None:
    """Every gateway replica reloads its access gate (at worst within its full reload otherwise)."""
    redis = Redis.from_url(settings.redis_url)
    try:
        await announce_change(redis, settings.kafka_topic_prefix)
    except (RedisError, OSError) as error:
        print(f"warning: gateways not told at once ({error!r}); they notice within 30 s", file=sys.stderr)
    finally:
        await redis.aclose()


async def _platform_command(arguments: argparse.Namespace) -> int:
    settings = Settings()
    # The tables may not exist yet when the gateway has never started against this database.
    await asyncio.to_thread(upgrade_to_head, MIGRATIONS, settings.database_url)
    engine = create_engine(settings.database_url, pool_size=1)
    sessions = session_factory(engine)
    try:
        if arguments.command == "list":
            async with sessions() as session:
                for row in sorted(await all_tenants(session), key=lambda r: r.tenant_id):
                    state = "disabled" if row.disabled_at is not None else "enabled"
                    languages = ",".join(row.languages or [row.default_language])
                    origins = " ".join(row.allowed_origins) or "-"
                    print(f"{row.tenant_id:24} {state:9} {languages:8} {row.name}  origins: {origins}")
            return 0
        if arguments.command in ("disable", "enable"):
            disabled = arguments.command == "disable"
            if await set_tenant_disabled(sessions, arguments.tenant_id, disabled):
                await _announce(settings)
                print(f"tenant {arguments.tenant_id} {arguments.command}d")
            else:
                print(f"tenant {arguments.tenant_id} was already {arguments.command}d")
            return 0
        return await _create(arguments, sessions)
    finally:
        await engine.dispose()


async def _create(arguments: argparse.Namespace, sessions: async_sessionmaker[AsyncSession]) -> int:
    languages = [language.strip() for language in arguments.languages.split(",") if language.strip()]
    try:
        new = NewTenant(
            tenant=TenantConfig(
                tenant_id=arguments.tenant_id,
                name=arguments.name,
                widget_key=new_widget_key(),
                allowed_origins=arguments.origin,
                default_language=languages[0] if languages else "it",
            ),
            languages=languages,
            admin_username=arguments.admin_username,
            admin_email=arguments.admin_email,
            admin_display_name=arguments.admin_display_name or arguments.admin_username,
        )
    except ValidationError as error:
        raise CommandError(str(error)) from error
    password = new_password()
    tenant, admin = await create_tenant(sessions, new, await asyncio.to_thread(hash_password, password))
    print(f"tenant {tenant.tenant_id} ({tenant.name}) created")
    print(f"widget key: {tenant.widget_key}")
    print(f"admin: {admin.username} ({admin.operator_id})")
    print(f"password: {password}")
    print("the widget key and the password are shown only now: store them")
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m gateway.tenants", description="Tenants of the platform.")
    commands = parser.add_subparsers(dest="command", required=True)
    load = commands.add_parser("load", help="upsert tenant files (YAML)")
    load.add_argument("files", nargs="+", type=Path)
    create = commands.add_parser("create", help="a new tenant, its widget key and its first admin")
    create.add_argument("--tenant-id", required=True)
    create.add_argument("--name", required=True)
    create.add_argument("--languages", default="it", help="comma-separated, the default first: it,en")
    create.add_argument("--origin", action="append", default=[], help="an origin allowed to embed the widget")
    create.add_argument("--admin-username", required=True)
    create.add_argument("--admin-email", required=True)
    create.add_argument("--admin-display-name")
    commands.add_parser("list", help="the tenants and whether they are enabled")
    for name, text in (("disable", "refuse the tenant's widget and operators"), ("enable", "undo a disable")):
        command = commands.add_parser(name, help=text)
        command.add_argument("tenant_id")
    return parser


def main(argv: list[str]) -> int:
    arguments = _parser().parse_args(argv[1:])
    if arguments.command == "load":
        return asyncio.run(_load_command(arguments.files))
    try:
        return asyncio.run(_platform_command(arguments))
    except CommandError as error:
        print(error, file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
