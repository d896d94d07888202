"""The JSON log lines carry the ids bound by `log_context`, through structlog and the standard
library's loggers alike, and only inside the context that bound them."""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import structlog

from servicekit.logs import configure_logging, get_logger, log_context


@pytest.fixture
def lines(capsys: pytest.CaptureFixture[str]) -> Iterator[Any]:
    """The JSON lines logged so far. Each test configures the logging itself: the standard output
    it writes to is the test's own only once the test runs."""

    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level

    def read() -> list[dict[str, Any]]:
        return [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.strip()]

    yield read
    structlog.reset_defaults()
    structlog.contextvars.clear_contextvars()
    root.handlers, root.level = handlers, level  # not the test's standard output, closed after it


def test_lines_carry_the_ids_of_the_enclosing_contexts(lines: Any) -> None:
    configure_logging("test-service", "INFO")
    log = get_logger("test")
    conversation_id = uuid.uuid4()
    with log_context(correlation_id="c-1", conversation_id=conversation_id, tenant_id=None):
        log.info("outer")
        with log_context(tenant_id="lucine-di-natale", correlation_id="c-2"):
            log.info("inner")
            logging.getLogger("library").warning("from a library")
        log.info("outer again", correlation_id="given")
    log.info("outside")

    outer, inner, library, again, outside = lines()
    assert outer["message"] == "outer"
    assert outer["service"] == "test-service"
    assert outer["correlation_id"] == "c-1"
    assert outer["conversation_id"] == str(conversation_id)
    assert "tenant_id" not in outer  # an id given as None is left out
    assert inner["correlation_id"] == "c-2"  # the inner context's own value
    assert inner["conversation_id"] == str(conversation_id)  # the outer one's, kept
    assert inner["tenant_id"] == "lucine-di-natale"
    assert library["message"] == "from a library"
    assert library["correlation_id"] == "c-2"
    assert library["tenant_id"] == "lucine-di-natale"
    assert again["correlation_id"] == "given"  # a line's own key wins
    assert "tenant_id" not in again  # the inner context ended
    assert "correlation_id" not in outside
    assert "conversation_id" not in outside
    assert outside["service"] == "test-service"


async def test_concurrent_tasks_keep_their_own_ids(lines: Any) -> None:
    configure_logging("test-service", "INFO")
    log = get_logger("test")

    async def handle(correlation_id: str, pause: float) -> None:
        with log_context(correlation_id=correlation_id):
            await asyncio.sleep(pause)
            log.info("handled")

    await asyncio.gather(handle("first", 0.02), handle("second", 0.0))
    assert [(line["message"], line["correlation_id"]) for line in lines()] == [
        ("handled", "second"),
        ("handled", "first"),
    ]


def test_the_context_ends_when_its_block_raises(lines: Any) -> None:
    configure_logging("test-service", "INFO")
    log = get_logger("test")
    with pytest.raises(RuntimeError), log_context(correlation_id="c-3"):
        raise RuntimeError("boom")
    log.info("after")
    [after] = lines()
    assert "correlation_id" not in after
