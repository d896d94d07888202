"""Metrics of the routing service, beside the platform's (`servicekit.metrics`)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from prometheus_client import Gauge, Histogram
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

OPERATORS_ONLINE = Gauge(
    "routing_operators_online",
    "Operators online now (taking offers), per tenant: every tenant with an operator account known to routing"
    " has a series, 0 when none is online.",
    ["tenant_id"],
)
TAKE_SECONDS = Histogram(
    "routing_take_seconds",
    "Time an HTTP take spent deciding, by how it was decided: own_offer (an operator accepting its"
    " offer, under the conversation's and the operator's row locks) or tenant_lock (any other take,"
    " and an accept while someone waits, under the tenant's lock). Includes waiting for the locks.",
    ["decided_by"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)
# One row per tenant (a closed, configured set), so the series stay few.
_ONLINE_PER_TENANT = text(
    "SELECT tenant_id, count(*) FILTER (WHERE presence = 'online') FROM operators GROUP BY tenant_id"
)


def operators_online_sampler(sessions: async_sessionmaker[AsyncSession]) -> Callable[[], Awaitable[None]]:
    """Sets `routing_operators_online` from the store (presence is decided there: an operator's
    heartbeats, missed offers and expiries), for `Runtime.samplers`."""

    async def sample() -> None:
        async with sessions() as session:
            rows = (await session.execute(_ONLINE_PER_TENANT)).all()
        for tenant_id, online in rows:
            OPERATORS_ONLINE.labels(tenant_id).set(online)

    return sample
