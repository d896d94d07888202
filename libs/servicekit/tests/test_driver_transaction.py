"""`servicekit.db.driver_transaction` on a real PostgreSQL: what the session and the driver write
inside it commits together, or not at all, and the connection goes back to the pool as it was.
`servicekit.db.fetch` runs a text statement on the driver within the session's transaction."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from devkit.testing import Infra
from servicekit.db import create_engine, driver_transaction, fetch, session_factory


@pytest.fixture
async def engine(infra: Infra, database: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(infra.database_url(database), pool_size=1)  # one connection: each test reuses it
    async with engine.begin() as connection:
        await connection.execute(text("CREATE TABLE probe (n integer PRIMARY KEY)"))
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


class Base(DeclarativeBase):
    pass


class Probe(Base):
    __tablename__ = "probe"

    n: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)


# A named parameter used twice, arrays and JSON: as the services' batch statements use them.
ABOVE = text(
    "SELECT n, CAST(json_build_object('n', n) AS jsonb) AS body FROM probe"
    " WHERE n > :floor AND n = ANY(CAST(:wanted AS int[])) AND n <> :floor + 1 ORDER BY n"
)


async def test_fetch_sees_the_sessions_pending_rows_and_commits_with_the_driver_transaction(
    engine: AsyncEngine,
) -> None:
    sessions = session_factory(engine)
    async with sessions() as session, driver_transaction(session):
        session.add_all([Probe(n=1), Probe(n=2), Probe(n=3), Probe(n=4)])  # not flushed yet
        rows = await fetch(session, ABOVE, {"floor": 1, "wanted": [2, 3, 4, 9]})
        assert [(row["n"], row["body"]) for row in rows] == [(3, {"n": 3}), (4, {"n": 4})]
        await fetch(session, text("DELETE FROM probe WHERE n = :n"), {"n": 4})
    assert await stored(sessions) == [1, 2, 3]


async def test_fetch_outside_a_driver_transaction_is_refused(engine: AsyncEngine) -> None:
    # The session's own transaction begins on the server at its first statement: a statement sent
    # to the driver before it would commit on its own.
    async with session_factory(engine)() as session:
        with pytest.raises(RuntimeError, match="inside a driver_transaction"):
            await fetch(session, text("INSERT INTO probe VALUES (:n)"), {"n": 7})
        await session.rollback()
    assert await stored(session_factory(engine)) == []
