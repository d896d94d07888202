"""Tenants: YAML files upserted into the store, and an in-memory directory the routes read.

    python -m gateway.tenants load <file.yaml> [<file.yaml> ...]

The directory keeps every tenant in memory (a handful of rows) so that a request costs no
database round trip; it reloads them periodically, and at once when an unknown widget key shows
up (at most once a second, so that a flood of bad keys cannot hammer the database).
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated
from urllib.parse import urlsplit

import yaml
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.config import MIGRATIONS, Settings
from gateway.store import all_tenants, upsert_tenant
from servicekit.db import create_engine, session_factory
from servicekit.logs import get_logger
from servicekit.migrations import upgrade_to_head

log = get_logger(__name__)

REFRESH_SECONDS = 30.0
MISS_REFRESH_SECONDS = 1.0


class TenantConfig(BaseModel):
    """One tenant file (`tenants/<tenant_id>.yaml`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    tenant_id: Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9-]{1,62}$")]
    name: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
    widget_key: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{8,128}$")]
    allowed_origins: list[str] = Field(default_factory=list)
    default_language: Annotated[str, StringConstraints(pattern=r"^[a-z]{2}$")] = "it"

    @field_validator("allowed_origins")
    @classmethod
    def _origins(cls, origins: list[str]) -> list[str]:
        # Browsers send `scheme://host[:port]` with no path and no trailing slash.
        cleaned = [origin.strip().rstrip("/") for origin in origins]
        for origin in cleaned:
            if not origin.startswith(("http://", "https://")) or "/" in origin.split("://", 1)[1]:
                raise ValueError(f"{origin!r} is not an origin like https://example.com")
        return cleaned


def read_tenant_file(path: Path) -> TenantConfig:
    return TenantConfig.model_validate(yaml.safe_load(path.read_text()))


async def load_tenants(sessions: async_sessionmaker[AsyncSession], configs: Sequence[TenantConfig]) -> None:
    async with sessions() as session, session.begin():
        for config in configs:
            await upsert_tenant(session, **config.model_dump())


def tenant_files(directory: Path) -> list[Path]:
    if not directory.is_dir():
        return []
    return sorted([*directory.glob("*.yaml"), *directory.glob("*.yml")])


@dataclass(frozen=True)
class Tenant:
    tenant_id: str
    name: str
    widget_key: str
    allowed_origins: frozenset[str]
    default_language: str

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
                r.tenant_id,
                r.name,
                r.widget_key,
                frozenset(r.allowed_origins) | self._own_origins,
                r.default_language,
            )
            for r in rows
        ]
        self._by_id = {t.tenant_id: t for t in tenants}
        self._by_key = {t.widget_key: t for t in tenants}
        self._origins = frozenset(origin for t in tenants for origin in t.allowed_origins)
        self._loaded_at = time.monotonic()

    async def by_key(self, widget_key: str) -> Tenant | None:
        await self._refresh_if_older_than(REFRESH_SECONDS)
        tenant = self._by_key.get(widget_key)
        if tenant is None:
            await self._refresh_if_older_than(MISS_REFRESH_SECONDS)
            tenant = self._by_key.get(widget_key)
        return tenant

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


def main(argv: list[str]) -> int:
    if len(argv) < 3 or argv[1] != "load":
        print("usage: python -m gateway.tenants load <file.yaml> [<file.yaml> ...]", file=sys.stderr)
        return 2
    return asyncio.run(_load_command([Path(arg) for arg in argv[2:]]))


if __name__ == "__main__":
    sys.exit(main(sys.argv))
