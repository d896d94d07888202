"""structlog JSON logging; correlation, conversation and tenant ids ride in contextvars."""

from __future__ import annotations

import logging
import sys
from collections.abc import Mapping, MutableMapping
from contextvars import ContextVar, Token
from types import MappingProxyType, TracebackType
from typing import Any

import structlog

# The ids bound by `log_context`, as given: turned into text only when a line is logged. A consumer
# binds them for every event it handles and logs for few, so binding must cost little.
_NO_IDS: Mapping[str, Any] = MappingProxyType({})
_CONTEXT: ContextVar[Mapping[str, Any]] = ContextVar("servicekit_log_context", default=_NO_IDS)


def merge_log_context(_logger: Any, _method: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """structlog processor: the ids of the enclosing `log_context`s (a line's own keys win)."""
    for key, value in _CONTEXT.get().items():
        event.setdefault(key, str(value))
    return event


def configure_logging(service_name: str, level: str = "INFO") -> None:
    shared: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        merge_log_context,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    structlog.configure(
        processors=[
            *shared,
            structlog.processors.dict_tracebacks,
            structlog.processors.EventRenamer("message"),
            structlog.processors.JSONRenderer(),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=structlog.PrintLoggerFactory(sys.stdout),
        cache_logger_on_first_use=True,
    )
    structlog.contextvars.bind_contextvars(service=service_name)
    # Libraries (uvicorn, FastStream, aiokafka, SQLAlchemy) log through the standard library:
    # the same JSON lines, with the same context ids, on the same stream.
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[*shared, structlog.stdlib.add_logger_name, structlog.stdlib.ExtraAdder()],
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.EventRenamer("message"),
                structlog.processors.JSONRenderer(),
            ],
        )
    )
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(logging.WARNING)
    logging.getLogger("broker").setLevel(logging.getLevelName(level.upper()))


class LogContext:
    """Binds ids for everything logged inside (`with log_context(...)`), over the outer ones."""

    __slots__ = ("_token", "_values")

    def __init__(self, values: Mapping[str, Any]) -> None:
        self._values = values
        self._token: Token[Mapping[str, Any]] | None = None

    def __enter__(self) -> None:
        self._token = _CONTEXT.set({**_CONTEXT.get(), **self._values})

    def __exit__(
        self, _type: type[BaseException] | None, _error: BaseException | None, _traceback: TracebackType | None
    ) -> None:
        if self._token is not None:
            _CONTEXT.reset(self._token)


def log_context(**values: Any) -> LogContext:
    """Binds ids (correlation_id, conversation_id, tenant_id...) for everything logged inside; an
    id given as None is left out."""
    return LogContext({key: value for key, value in values.items() if value is not None})


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    return structlog.get_logger(name)  # type: ignore[no-any-return]
