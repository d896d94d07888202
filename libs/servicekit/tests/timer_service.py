"""A minimal real service with durable timers, run as a separate process by the timer tests.

    python timer_service.py --tenant T [--schedule-in SECONDS]

With --schedule-in it commits one timer (an analytics fact named "timer_fired" for tenant T, due
that many seconds later) and prints `SCHEDULED <due time, ISO 8601>`. Then, with or without it,
it relays the outbox and fires due timers like a service does, and prints FIRING.
"""

from __future__ import annotations

import argparse
import asyncio
from datetime import timedelta

from contracts import new_envelope, utc_now
from devkit.testing import probe_fact
from servicekit.db import Base as PlatformBase
from servicekit.http import Runtime
from servicekit.settings import ServiceSettings
from servicekit.timers import TimerFirer, schedule


async def main(tenant: str, schedule_in: float | None) -> None:
    runtime = Runtime.build(ServiceSettings(service_name="timers"))
    assert runtime.engine is not None
    assert runtime.sessions is not None
    assert runtime.relay is not None
    async with runtime.engine.begin() as connection:
        await connection.run_sync(PlatformBase.metadata.create_all)
    if schedule_in is not None:
        due_at = utc_now() + timedelta(seconds=schedule_in)
        fact = probe_fact("timer_fired")
        async with runtime.sessions() as session, session.begin():
            schedule(session, f"kill-test:{tenant}", due_at, new_envelope(fact, tenant_id=tenant))
        print("SCHEDULED", due_at.isoformat(), flush=True)
    await runtime.broker.start()
    runtime.relay.start()
    firer = TimerFirer(runtime.sessions, relay=runtime.relay, poll_interval=0.2)
    firer.start()
    print("FIRING", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--tenant", required=True)
    parser.add_argument("--schedule-in", type=float)
    args = parser.parse_args()
    asyncio.run(main(args.tenant, args.schedule_in))
