"""The other services' internal APIs as the gateway calls them: one `InternalApi` per service.

aiohttp, not httpx: measured on one machine against a local uvicorn app, a request through
httpx cost the calling process 1.0-2.3 ms of CPU (httpcore walks its whole connection pool, and
asks each idle connection's socket whether it is readable, on every request), one through
aiohttp 0.2-0.27 ms; the gateway makes several per handoff (the take, the reads around it, the
history of each conversation an operator follows). Every connection opened is kept for reuse
until idle for `KEEPALIVE_SECONDS`: opening one per request costs both processes."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import aiohttp
from pydantic import BaseModel, ValidationError

from servicekit.http import ApiError
from servicekit.logs import get_logger

log = get_logger(__name__)

ViewT = TypeVar("ViewT", bound=BaseModel)
QueryValue = str | int
KEEPALIVE_SECONDS = 15.0


@dataclass(frozen=True)
class InternalResponse:
    """An answer, read whole (the internal APIs answer small bodies)."""

    status: int
    headers: Mapping[str, str]  # names in lower case
    content: bytes

    @property
    def text(self) -> str:
        return self.content.decode(errors="replace")

    def json(self) -> Any:
        """The body as JSON; ValueError when it is not."""
        return json.loads(self.content)


class InternalApi:
    """One service's internal API: `request` answers whatever the service answered (the client
    decides what each status means) and raises `ApiError` 503 when the service cannot be reached
    or does not answer within `timeout` seconds; `parse` reads a 200 as a model, else 502."""

    def __init__(self, name: str, base_url: str, timeout: float, max_connections: int) -> None:
        self.name = name  # as the errors say it: "routing", "the conversation service"
        self._base_url = base_url.rstrip("/")
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._max_connections = max_connections
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        # Made on first use: an aiohttp session belongs to the running event loop.
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(limit=self._max_connections, keepalive_timeout=KEEPALIVE_SECONDS)
            self._session = aiohttp.ClientSession(timeout=self._timeout, connector=connector)
        return self._session

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, QueryValue] | None = None,
        json: Any = None,
        content: bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> InternalResponse:
        """`json`: a body already made of JSON types (a model's `model_dump(mode="json")`)."""
        try:
            async with self._client().request(
                method, self._base_url + path, params=params, json=json, data=content, headers=headers
            ) as response:
                body = await response.read()
                names = {name.lower(): value for name, value in response.headers.items()}
                return InternalResponse(response.status, names, body)
        except (aiohttp.ClientError, TimeoutError) as error:
            log.warning(f"{self.name} unreachable", error=str(error) or type(error).__name__)
            raise ApiError(503, "unavailable", f"{self.name} is unreachable now; retry") from error

    def expect_ok(self, response: InternalResponse) -> None:
        """Raises `ApiError` 502 unless the service answered 200."""
        if response.status != 200:
            log.warning(f"{self.name} failed", status=response.status, body=response.text[:500])
            raise ApiError(502, "upstream_error", f"{self.name} answered {response.status}")

    def parse(self, model: type[ViewT], response: InternalResponse) -> ViewT:
        self.expect_ok(response)
        try:
            return model.model_validate_json(response.content)
        except ValidationError as error:
            log.warning(f"{self.name} answered an unexpected shape", error=str(error))
            raise ApiError(502, "upstream_error", f"{self.name} answered an unexpected body") from error

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
