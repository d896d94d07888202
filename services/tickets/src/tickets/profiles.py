"""Tenants' time zones and business hours from their profiles (`tenant.profile_changed` on
`tenant.events.v1`, announced by the gateway), which override the YAML file's business hours for
new SLA clocks. The YAML keeps the ticket prefix, the SLA targets and the priority words, and its
business hours stay the default of a tenant whose profile never arrived.

Where it lives:

- **Stored**: the newest revision per tenant in `tenant_profiles` (one upsert guarded by the
  revision, in the consumer's transaction: an older or equal revision changes nothing, and a
  redelivered event is already skipped by its id).
- **Cached**: every replica holds every tenant's profile in memory (`TenantProfiles`), so opening a
  ticket reads no extra row. Each replica consumes the events of its own partitions only, so the
  cache is not fed by what it consumed: the upsert also sends `pg_notify` with the stored snapshot,
  which PostgreSQL delivers at commit to every replica's listening connection (the one that stored
  it included). A listener loads the whole table after its `LISTEN` (at start-up, before the
  consumer, and after any reconnection), so a notification missed while it was disconnected is not
  a change missed. Profiles change rarely: one small message per change, no query per ticket.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import time
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import asyncpg
from sqlalchemy import func, select
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession

from contracts import utc_now
from contracts.events import TenantProfileChanged
from servicekit.db import store_if_newer
from servicekit.logs import get_logger
from tickets.domain import WEEKDAYS, BusinessHours, Window
from tickets.store import TenantProfileRow
from tickets.tenants import TenantPolicy

log = get_logger(__name__)
CHANNEL = "tickets_tenant_profiles"
KEEPALIVE_SECONDS = 30.0  # how often an idle listening connection is checked
MAX_RECONNECT_BACKOFF = 10.0


@dataclass(frozen=True)
class Profile:
    """A tenant's stored profile as the SLA rules use it. `zone` is None when this host does not
    know the time zone's name: the tenant's YAML policy then applies unchanged."""

    revision: int
    zone: ZoneInfo | None
    hours: BusinessHours | None  # None: always open


def windows_of(business_hours: Sequence[dict[str, Any]]) -> tuple[Window, ...]:
    """The contract's `{days, start "HH:MM", end}` windows as the domain's, one per day; windows
    that overlap or touch on a day are merged (the domain refuses overlaps; open is open)."""
    by_day: dict[int, list[tuple[time, time]]] = {}
    for window in business_hours:
        span = (time.fromisoformat(window["start"]), time.fromisoformat(window["end"]))
        for day in window["days"]:
            by_day.setdefault(WEEKDAYS.index(day), []).append(span)
    merged: list[Window] = []
    for day, spans in sorted(by_day.items()):
        spans.sort()
        start, end = spans[0]
        for next_start, next_end in spans[1:]:
            if next_start <= end:
                end = max(end, next_end)
            else:
                merged.append(Window(day, start, end))
                start, end = next_start, next_end
        merged.append(Window(day, start, end))
    return tuple(merged)


def profile_of(revision: int, time_zone: str, business_hours: Sequence[dict[str, Any]]) -> Profile:
    try:
        zone = ZoneInfo(time_zone)
    except (ZoneInfoNotFoundError, ValueError):
        log.warning("unknown time zone in a tenant profile; its YAML business hours apply", time_zone=time_zone)
        return Profile(revision, None, None)
    windows = windows_of(business_hours)
    return Profile(revision, zone, BusinessHours(zone, windows) if windows else None)


class TenantProfiles:
    """Every tenant's newest profile, in memory, kept current by PostgreSQL notifications."""

    def __init__(self) -> None:
        self._by_tenant: dict[str, Profile] = {}
        self._listener: asyncio.Task[None] | None = None

    def revision_of(self, tenant_id: str) -> int | None:
        profile = self._by_tenant.get(tenant_id)
        return profile.revision if profile else None

    def policy(self, base: TenantPolicy) -> TenantPolicy:
        """The tenant's YAML policy with its profile's time zone and business hours, if any."""
        profile = self._by_tenant.get(base.tenant_id)
        if profile is None or profile.zone is None:
            return base
        return dataclasses.replace(base, business_hours=profile.hours, zone=profile.zone)

    def learn(self, tenant_id: str, revision: int, time_zone: str, business_hours: Sequence[dict[str, Any]]) -> None:
        """Keeps the profile if it is newer than the one held (notifications and a full load may
        cross)."""
        held = self._by_tenant.get(tenant_id)
        if held is not None and held.revision >= revision:
            return
        self._by_tenant[tenant_id] = profile_of(revision, time_zone, business_hours)
        log.info("tenant profile in use", tenant_id=tenant_id, revision=revision, time_zone=time_zone)

    # ------------------------------------------------------------------ listening

    async def start(self, database_url: str, timeout: float = 30.0) -> None:
        """Listens for stored profiles and returns once the table is loaded (before the consumer
        starts, so that the first ticket already counts in the tenant's hours)."""
        dsn = make_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False)
        loaded = asyncio.Event()
        self._listener = asyncio.create_task(self._listen_forever(dsn, loaded), name="tenant-profiles")
        loaded_or_failed = asyncio.ensure_future(loaded.wait())
        # FIRST_COMPLETED: the listener runs until stopped, so waiting for both waits the timeout.
        done, _ = await asyncio.wait(
            {loaded_or_failed, self._listener}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
        )
        if loaded_or_failed not in done:
            loaded_or_failed.cancel()
            listener = self._listener
            await self.stop()
            if listener in done and listener.exception() is not None:
                raise RuntimeError("the tenant profile listener failed") from listener.exception()
            raise RuntimeError(f"tenant profiles not loaded within {timeout:.0f}s")

    async def stop(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listener
            self._listener = None

    async def _listen_forever(self, dsn: str, loaded: asyncio.Event) -> None:
        backoff = 0.5
        while True:
            try:
                await self._listen_once(dsn, loaded)
                backoff = 0.5
            except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as error:
                log.warning("tenant profile listener disconnected; reconnecting", error=repr(error))
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, MAX_RECONNECT_BACKOFF)

    async def _listen_once(self, dsn: str, loaded: asyncio.Event) -> None:
        """One listening connection, until it is lost."""
        connection: asyncpg.Connection = await asyncpg.connect(dsn)
        lost = asyncio.Event()
        try:
            connection.add_termination_listener(lambda _connection: lost.set())
            await connection.add_listener(CHANNEL, self._on_notification)
            await self._load_all(connection)  # after LISTEN: no change falls in between
            loaded.set()
            while not lost.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(lost.wait(), KEEPALIVE_SECONDS)
                if not lost.is_set():
                    await connection.execute("SELECT 1")  # a dead link raises here
        finally:
            with contextlib.suppress(Exception):
                await connection.close(timeout=2)

    async def _load_all(self, connection: asyncpg.Connection) -> None:
        rows = await connection.fetch("SELECT tenant_id, revision, time_zone, business_hours FROM tenant_profiles")
        for row in rows:
            self.learn(row["tenant_id"], row["revision"], row["time_zone"], json.loads(row["business_hours"]))

    def _on_notification(self, _connection: object, _pid: int, _channel: str, payload: str) -> None:
        try:
            snapshot = json.loads(payload)
            self.learn(snapshot["tenant_id"], snapshot["revision"], snapshot["time_zone"], snapshot["business_hours"])
        except Exception:
            log.exception("unreadable tenant profile notification")


async def store_profile(session: AsyncSession, profile: TenantProfileChanged) -> bool:
    """Stores the snapshot unless the tenant's stored revision is as new or newer, and tells every
    replica at commit. Returns whether it was stored."""
    windows = [window.model_dump(mode="json") for window in profile.business_hours]
    values = {
        "tenant_id": profile.tenant_id,
        "revision": profile.revision,
        "time_zone": profile.time_zone,
        "business_hours": windows,
        "received_at": utc_now(),
    }
    if not await store_if_newer(session, TenantProfileRow, values, key="tenant_id"):
        return False
    snapshot = {k: values[k] for k in ("tenant_id", "revision", "time_zone", "business_hours")}
    # Delivered only if and when this transaction commits.
    await session.execute(select(func.pg_notify(CHANNEL, json.dumps(snapshot))))
    return True
