"""Tenant profiles (`tenant.profile_changed`) on the real consumer and the real PostgreSQL: the
stored newest revision gives new SLA clocks the tenant's time zone and business hours, on every
replica (each replica's cache is fed by the database's notifications, not by what it consumed)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from contracts import Envelope, new_envelope, utc_now
from contracts.events import BusinessWindow, TenantProfileChanged, TicketOpened
from devkit.testing import Infra, eventually
from tickets.domain import WEEKDAYS
from tickets.profiles import TenantProfiles, windows_of
from tickets.store import TenantProfileRow
from tickets.tenants import TenantPolicy, load_policies

from .conftest import OTHER_TENANT, TENANT, TicketsHarness, open_ticket

ROME = ZoneInfo("Europe/Rome")
NORMAL_FIRST_RESPONSE = timedelta(seconds=5)  # the test tenant's YAML target (conftest.py)


def profile(revision: int, windows: list[BusinessWindow], tenant_id: str = TENANT) -> Envelope[TenantProfileChanged]:
    snapshot = TenantProfileChanged(
        tenant_id=tenant_id,
        revision=revision,
        name="Acme",
        languages=["it", "en"],
        time_zone="Europe/Rome",
        business_hours=windows,
    )
    return new_envelope(snapshot, tenant_id=tenant_id)


def one_hour_on(day: date) -> list[BusinessWindow]:
    """Open only 10:00-11:00 on `day`'s weekday, in Rome."""
    return [BusinessWindow(days=[WEEKDAYS[day.weekday()]], start="10:00", end="11:00")]


async def first_response_due(tickets: TicketsHarness, tenant_id: str = TENANT) -> datetime:
    await tickets.apply(open_ticket(uuid.uuid4(), tenant_id=tenant_id))
    (event,) = await tickets.new_events(TicketOpened)
    payload: TicketOpened = event.payload
    assert payload.first_response_due is not None
    return payload.first_response_due


async def stored(tickets: TicketsHarness, tenant_id: str = TENANT) -> TenantProfileRow | None:
    async with tickets.sessions() as session:
        return await session.get(TenantProfileRow, tenant_id)


@pytest.fixture
async def listening(tickets: TicketsHarness, infra: Infra, database: str) -> AsyncIterator[str]:
    """The harness's profile cache listening, as a started replica's is; yields the database URL."""
    url = infra.database_url(database)
    await tickets.profiles.start(url)
    yield url
    await tickets.profiles.stop()


@pytest.fixture
def in_three_days() -> date:
    # Its weekday is neither today's nor tomorrow's in Rome: the window is closed now, and the
    # next ticket's first response is due 5 business seconds after it opens that day.
    return (utc_now().astimezone(ROME) + timedelta(days=3)).date()


async def test_a_profile_gives_the_next_ticket_its_business_hours(
    tickets: TicketsHarness, listening: str, in_three_days: date
) -> None:
    before = utc_now()
    due = await first_response_due(tickets)
    assert before + NORMAL_FIRST_RESPONSE <= due <= utc_now() + NORMAL_FIRST_RESPONSE, "YAML: always open"

    await tickets.apply(profile(2, one_hour_on(in_three_days)))
    await eventually(lambda: tickets.profiles.revision_of(TENANT) == 2, 10, "the profile in the cache")

    expected = datetime.combine(in_three_days, time(10, 0, 5), ROME)
    assert await first_response_due(tickets) == expected
    assert await first_response_due(tickets, OTHER_TENANT) <= utc_now() + NORMAL_FIRST_RESPONSE, "only its tenant"


async def test_an_older_revision_after_a_newer_one_changes_nothing(
    tickets: TicketsHarness, listening: str, in_three_days: date
) -> None:
    await tickets.apply(profile(2, one_hour_on(in_three_days)))
    await eventually(lambda: tickets.profiles.revision_of(TENANT) == 2, 10, "the profile in the cache")
    kept = await stored(tickets)

    await tickets.apply(profile(1, []))  # older, always open
    await tickets.apply(profile(2, []))  # the same revision again (a gateway's start-up announcement)

    row = await stored(tickets)
    assert row is not None
    assert kept is not None
    assert (row.revision, row.business_hours, row.received_at) == (2, kept.business_hours, kept.received_at)
    assert tickets.profiles.revision_of(TENANT) == 2
    assert await first_response_due(tickets) == datetime.combine(in_three_days, time(10, 0, 5), ROME)


async def test_a_redelivered_profile_is_skipped(tickets: TicketsHarness, listening: str, in_three_days: date) -> None:
    first = profile(1, one_hour_on(in_three_days))
    await tickets.apply(first)
    await eventually(lambda: tickets.profiles.revision_of(TENANT) == 1, 10, "the profile in the cache")
    kept = await stored(tickets)

    await tickets.apply(profile(2, []))  # always open from revision 2
    await eventually(lambda: tickets.profiles.revision_of(TENANT) == 2, 10, "the newer profile in the cache")
    await tickets.apply(first)  # the first event delivered again: skipped by its id

    row = await stored(tickets)
    assert row is not None
    assert kept is not None
    assert (row.revision, row.business_hours) == (2, [])
    assert row.received_at > kept.received_at
    before = utc_now()
    assert await first_response_due(tickets) <= utc_now() + NORMAL_FIRST_RESPONSE
    assert await first_response_due(tickets) >= before + NORMAL_FIRST_RESPONSE


async def test_every_replica_uses_the_stored_profile_not_only_the_one_that_consumed_it(
    tickets: TicketsHarness, listening: str, in_three_days: date
) -> None:
    running = TenantProfiles()  # another replica, already started: told at commit
    await running.start(listening)
    try:
        await tickets.apply(profile(3, one_hour_on(in_three_days)))
        await eventually(lambda: running.revision_of(TENANT) == 3, 10, "the other replica's cache")
    finally:
        await running.stop()
    later = TenantProfiles()  # a replica started after the change: loads the table
    await later.start(listening)
    try:
        assert later.revision_of(TENANT) == 3
        policy = later.policy(_yaml_policy(tickets))
        assert policy.time_zone == ROME
        assert policy.business_hours is not None
        assert policy.targets == _yaml_policy(tickets).targets, "the YAML keeps the SLA targets"
        assert policy.ticket_prefix == "TCK"
    finally:
        await later.stop()


async def test_start_returns_once_the_table_is_loaded_not_at_its_timeout(listening: str) -> None:
    # A replica's start-up waits for it before consuming: it once always lasted the whole timeout.
    replica = TenantProfiles()
    try:
        await asyncio.wait_for(replica.start(listening, timeout=120), 30)
    finally:
        await replica.stop()


async def test_start_fails_clearly_when_the_database_cannot_be_reached() -> None:
    replica = TenantProfiles()
    with pytest.raises(RuntimeError, match="tenant profiles not loaded within 2s"):
        await replica.start("postgresql+asyncpg://nobody:wrong@127.0.0.1:1/none", timeout=2)


def _yaml_policy(tickets: TicketsHarness) -> TenantPolicy:
    return load_policies(tickets.settings.tenants_dir).of(TENANT)


def test_overlapping_windows_of_a_day_are_merged() -> None:
    windows = [
        {"days": ["mon", "tue"], "start": "09:00", "end": "13:00"},
        {"days": ["mon"], "start": "12:00", "end": "18:00"},
        {"days": ["mon"], "start": "19:00", "end": "20:00"},
    ]
    merged = [(w.weekday, w.start.isoformat("minutes"), w.end.isoformat("minutes")) for w in windows_of(windows)]
    assert merged == [(0, "09:00", "18:00"), (0, "19:00", "20:00"), (1, "09:00", "13:00")]
