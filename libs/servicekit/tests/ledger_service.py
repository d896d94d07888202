"""A minimal real service built on servicekit, run as a separate process by the outbox tests.

    python ledger_service.py --tenant T --count N [--hold-relay]

It commits N ledger entries and their N events in one transaction (state + outbox), prints
COMMITTED, and then relays the outbox to Kafka like every service does. With --hold-relay it
stops right after the commit and waits, so a test can SIGKILL it before anything is relayed.
"""

from __future__ import annotations

import argparse
import asyncio
import uuid

from sqlalchemy import String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from contracts import new_envelope
from devkit.testing import probe_fact
from servicekit.db import Base as PlatformBase
from servicekit.http import Runtime
from servicekit.outbox import add_to_outbox
from servicekit.settings import ServiceSettings


class Base(DeclarativeBase):
    """The ledger's own tables (the platform's outbox and inbox live on PlatformBase)."""


class LedgerEntry(Base):
    __tablename__ = "ledger_entries"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(64))


async def main(tenant: str, count: int, hold_relay: bool) -> None:
    runtime = Runtime.build(ServiceSettings(service_name="ledger"))
    assert runtime.engine is not None
    assert runtime.sessions is not None
    assert runtime.relay is not None
    async with runtime.engine.begin() as connection:
        await connection.run_sync(PlatformBase.metadata.create_all)
        await connection.run_sync(Base.metadata.create_all)
    async with runtime.sessions() as session, session.begin():
        already = await session.get(LedgerEntry, f"{tenant}-done")
        if already is None:
            session.add(LedgerEntry(id=f"{tenant}-done", tenant_id=tenant))
            for index in range(count):
                entry_id = uuid.uuid4()
                session.add(LedgerEntry(id=str(entry_id), tenant_id=tenant))
                fact = probe_fact("ledger_entry", entry_id, index=index + 1)
                add_to_outbox(session, [new_envelope(fact, tenant_id=tenant)])
    print("COMMITTED", flush=True)
    if hold_relay:
        await asyncio.Event().wait()
    await runtime.broker.start()
    runtime.relay.start()
    print("RELAYING", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--tenant", required=True)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--hold-relay", action="store_true")
    args = parser.parse_args()
    asyncio.run(main(args.tenant, args.count, args.hold_relay))
