"""A route's database session (`servicekit.http.Session`, `ReadSession`) on a real PostgreSQL: a
read runs outside any transaction, so it costs its statements alone, and the connection it used
goes back to the pool transactional again: a writing route that fails after it stores nothing."""

from __future__ import annotations

from collections.abc import AsyncIterator
from types import SimpleNamespace

import httpx
import pytest
from fastapi import FastAPI, HTTPException
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from devkit.testing import Infra
from servicekit.db import create_engine, session_factory
from servicekit.http import ReadSession, Session


async def in_transaction(session: AsyncSession) -> bool:
    """What the server last told the driver about the connection: inside a transaction block or not."""
    connection = await (await session.connection()).get_raw_connection()
    return bool(connection.driver_connection.is_in_transaction())  # type: ignore[union-attr]


@pytest.fixture
async def client(infra: Infra, database: str) -> AsyncIterator[httpx.AsyncClient]:
    engine = create_engine(infra.database_url(database), pool_size=1)
    async with engine.begin() as connection:
        await connection.execute(text("CREATE TABLE probe (n integer)"))
    app = FastAPI()
    app.state.runtime = SimpleNamespace(sessions=session_factory(engine))

    @app.get("/read")
    async def read(session: ReadSession) -> dict[str, object]:
        count = await session.scalar(text("SELECT count(*) FROM probe"))
        return {"count": count, "in_transaction": await in_transaction(session)}

    @app.post("/write")
    async def write(session: Session, fail: bool = False) -> dict[str, object]:
        async with session.begin():
            await session.execute(text("INSERT INTO probe VALUES (1)"))
            inside = await in_transaction(session)
            if fail:  # the session's transaction ends with the error: rolled back
                raise HTTPException(409, "refused")
        return {"in_transaction": inside}

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://routes") as http:
        yield http
    await engine.dispose()


async def test_a_read_runs_outside_a_transaction_and_a_write_after_it_is_atomic(client: httpx.AsyncClient) -> None:
    read = (await client.get("/read")).json()
    assert read == {"count": 0, "in_transaction": False}

    # The same pooled connection, used by a writing route: inside a transaction, and a failure
    # after its insert leaves nothing behind.
    assert (await client.post("/write", params={"fail": True})).status_code == 409
    assert (await client.get("/read")).json()["count"] == 0
    written = await client.post("/write")
    assert written.json() == {"in_transaction": True}
    assert (await client.get("/read")).json() == {"count": 1, "in_transaction": False}
