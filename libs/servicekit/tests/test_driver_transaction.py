"""`servicekit.db.driver_transaction` on a real PostgreSQL: what the session and the driver write
inside it commits together, or not at all, and the connection goes back to the pool as it was."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from devkit.testing import Infra
from servicekit.db import create_engine, driver_transaction, session_factory


@pytest.fixture
async def engine(infra: Infra, database: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(infra.database_url(database), pool_size=1)  # one connection: each test reuses it
    async with engine.begin() as connection:
        await connection.execute(text("CREATE TABLE probe (n integer)"))
    yield engine
    await engine.dispose()


async def stored(sessions: async_sessionmaker[AsyncSession]) -> list[int]:
    async with sessions() as session:
        return list(await session.scalars(text("SELECT n FROM probe ORDER BY n")))


async def test_the_session_and_the_driver_commit_together(infra: Infra, database: str, engine: AsyncEngine) -> None:
    sessions = session_factory(engine)
    onlooker = create_engine(infra.database_url(database), pool_size=1)
    try:
        async with sessions() as session, driver_transaction(session) as driver:
            await session.execute(text("INSERT INTO probe VALUES (1)"))
            await driver.execute("INSERT INTO probe VALUES (2)")
            assert await stored(session_factory(onlooker)) == []  # nothing visible before the COMMIT
        assert await stored(session_factory(onlooker)) == [1, 2]
    finally:
        await onlooker.dispose()


async def fail_in_driver_transaction(sessions: async_sessionmaker[AsyncSession]) -> None:
    async with sessions() as session, driver_transaction(session) as driver:
        await driver.execute("INSERT INTO probe VALUES (1)")
        await session.execute(text("INSERT INTO probe VALUES (2)"))
        raise RuntimeError("a handler failed")


async def fail_in_session_transaction(sessions: async_sessionmaker[AsyncSession]) -> None:
    async with sessions() as session, session.begin():
        await session.execute(text("INSERT INTO probe VALUES (3)"))
        connection = await (await session.connection()).get_raw_connection()
        assert connection.driver_connection.is_in_transaction()  # type: ignore[union-attr]
        raise RuntimeError("a route failed")


async def test_an_error_rolls_back_both_and_the_connection_is_transactional_again(engine: AsyncEngine) -> None:
    sessions = session_factory(engine)
    with pytest.raises(RuntimeError, match="a handler failed"):
        await fail_in_driver_transaction(sessions)
    assert await stored(sessions) == []

    # The same pooled connection, used by an ordinary session: in a transaction again, rolled back.
    with pytest.raises(RuntimeError, match="a route failed"):
        await fail_in_session_transaction(sessions)
    assert await stored(sessions) == []
