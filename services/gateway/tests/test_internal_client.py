"""The gateway's client of another service's internal API (`gateway.internal.InternalApi`) against
a real HTTP server: it keeps the connections it opens (a burst of concurrent requests, then
another, reuses the first burst's connections: a new TCP connection per request costs both
processes), holds at most its bound, and says 503 when the service cannot be reached."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from gateway.internal import InternalApi
from servicekit.http import ApiError

RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok"


class CountingServer:
    """An HTTP/1.1 server with keep-alive that answers every request after a short pause (so a
    burst's requests overlap) and counts the connections it accepted."""

    def __init__(self, pause: float = 0.05) -> None:
        self.pause = pause
        self.connections = 0
        self.requests = 0
        self.server: asyncio.Server | None = None

    async def start(self) -> str:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port = self.server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while await reader.readuntil(b"\r\n\r\n"):  # requests without a body: GETs
                self.requests += 1
                await asyncio.sleep(self.pause)
                writer.write(RESPONSE)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()
            self.server = None


@pytest.fixture
async def server() -> AsyncIterator[tuple[CountingServer, str]]:
    counting = CountingServer()
    url = await counting.start()
    yield counting, url
    await counting.close()


async def test_bursts_reuse_the_connections_of_earlier_ones(server: tuple[CountingServer, str]) -> None:
    counting, url = server
    burst = 30
    api = InternalApi("the thing", url, timeout=5.0, max_connections=burst)
    try:
        for _ in range(3):
            answers = await asyncio.gather(*(api.request("GET", "/internal/thing") for _ in range(burst)))
            assert [(a.status, a.text) for a in answers] == [(200, "ok")] * burst
    finally:
        await api.close()
    assert counting.requests == 3 * burst
    # One connection per concurrent request of the first burst, none after it.
    assert counting.connections == burst


async def test_requests_beyond_the_bound_wait_for_a_connection(server: tuple[CountingServer, str]) -> None:
    counting, url = server
    api = InternalApi("the thing", url, timeout=5.0, max_connections=5)
    try:
        answers = await asyncio.gather(*(api.request("GET", "/internal/thing") for _ in range(20)))
    finally:
        await api.close()
    assert [a.status for a in answers] == [200] * 20
    assert counting.connections == 5


async def test_a_service_that_cannot_be_reached_is_503_and_a_slow_one_too(server: tuple[CountingServer, str]) -> None:
    counting, url = server
    await counting.close()
    api = InternalApi("the thing", url, timeout=5.0, max_connections=5)
    with pytest.raises(ApiError) as gone:
        await api.request("GET", "/internal/thing")
    assert (gone.value.status, gone.value.code, gone.value.message) == (
        503,
        "unavailable",
        "the thing is unreachable now; retry",
    )
    await api.close()
    slow = CountingServer(pause=1.0)
    api = InternalApi("the thing", await slow.start(), timeout=0.2, max_connections=5)
    try:
        with pytest.raises(ApiError) as late:
            await api.request("GET", "/internal/thing")
        assert late.value.status == 503
    finally:
        await api.close()
        await slow.close()
