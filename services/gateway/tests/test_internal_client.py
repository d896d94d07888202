"""The gateway's clients of other services' internal APIs keep the connections they open: a burst
of concurrent requests, then another, reuses the first burst's connections instead of opening new
ones (a new TCP connection per request costs both processes, and under load it was most of the
gateway's requests to routing)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from gateway.runtime import internal_client

RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok"


class CountingServer:
    """An HTTP/1.1 server with keep-alive that answers every request after a short pause (so a
    burst's requests overlap) and counts the connections it accepted."""

    def __init__(self) -> None:
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
                await asyncio.sleep(0.05)
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


@pytest.fixture
async def server() -> AsyncIterator[tuple[CountingServer, str]]:
    counting = CountingServer()
    url = await counting.start()
    yield counting, url
    await counting.close()


async def test_bursts_reuse_the_connections_of_earlier_ones(server: tuple[CountingServer, str]) -> None:
    counting, url = server
    burst = 30
    async with internal_client(url, timeout=5.0, max_connections=burst) as client:
        for _ in range(3):
            answers = await asyncio.gather(*(client.get("/internal/thing") for _ in range(burst)))
            assert [a.text for a in answers] == ["ok"] * burst
    assert counting.requests == 3 * burst
    # One connection per concurrent request of the first burst, none after it.
    assert counting.connections == burst


async def test_requests_beyond_the_bound_wait_for_a_connection(server: tuple[CountingServer, str]) -> None:
    counting, url = server
    async with internal_client(url, timeout=5.0, max_connections=5) as client:
        answers = await asyncio.gather(*(client.get("/internal/thing") for _ in range(20)))
    assert [a.status_code for a in answers] == [200] * 20
    assert counting.connections == 5
