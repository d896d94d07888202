"""Metrics of the routing service, beside the platform's (`servicekit.metrics`)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from prometheus_client import Gauge
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

OPERATORS_ONLINE = Gauge(
    "routing_operators_online",
    "Operators online now (taking offers), per tenant: every tenant with an operator account known to routing"
    " has a series, 0 when none is online.",
    ["tenant_id"],
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
