"""The one event envelope every message on Kafka travels in.

A payload class declares its `type`, `version` and topic once (see `event`), which is how
a raw record is turned back into a typed envelope (`parse_envelope`) and how the JSON Schema
and AsyncAPI exports find every event.

Versioning: within a topic's major version (`.v1`) changes are additive only, and an event's
`version` counts its additive revisions; a breaking change is a new topic (`.v2`). So a record
of a known type with a newer version than this code knows is read with the newest model it has
(its extra fields are ignored); only a type this code has never heard of, or a version older
than any it registers, is unknown.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, Any, ClassVar, Generic, TypeVar

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints, ValidationError

TenantId = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9-]{1,62}$", max_length=63)]
EventType = Annotated[str, StringConstraints(pattern=r"^[a-z_]+\.[a-z_]+$", max_length=80)]


def _as_utc(value: datetime) -> datetime:
    return value.astimezone(UTC)


UtcDatetime = Annotated[AwareDatetime, AfterValidator(_as_utc)]


def utc_now() -> datetime:
    return datetime.now(UTC)


MAX_EVENT_BYTES = 64 * 1024
"""The largest serialised envelope: far below Kafka's default 1 MB request, so an event that
was accepted into the outbox is never refused by the broker. Large content travels as a bounded
excerpt plus a reference to the owning service's read API (see `TranscriptExcerpt`)."""


class EventTooLargeError(ValueError):
    """A serialised envelope is over `MAX_EVENT_BYTES`: the handler emitting it fails (and its
    record is dead-lettered) instead of its outbox row being refused by Kafka later."""


def idempotency_key(event_id: uuid.UUID, purpose: str) -> uuid.UUID:
    """The key of one side effect caused by an event (an LLM call, an email...): the same on every
    redelivery of the event, different per purpose, so the receiving end can do it only once."""
    return uuid.uuid5(event_id, purpose)


class Payload(BaseModel):
    """Base of every command and event payload.

    Unknown fields are ignored so that additive changes (which keep the version) do not
    break consumers that are still on the older model.
    """

    model_config = ConfigDict(extra="ignore", frozen=True, str_strip_whitespace=True)

    event_type: ClassVar[str]
    event_version: ClassVar[int]
    topic: ClassVar[str]
    summary: ClassVar[str]


P = TypeVar("P", bound=Payload)

REGISTRY: dict[tuple[str, int], type[Payload]] = {}
_NEWEST: dict[str, type[Payload]] = {}
"""Per type, the payload class of its highest registered version: what reads newer versions."""


def event(type_: str, version: int, topic: str) -> Callable[[type[P]], type[P]]:
    """Class decorator: registers a payload under its wire `type` and `version`."""

    def register(cls: type[P]) -> type[P]:
        key = (type_, version)
        if key in REGISTRY:
            raise ValueError(f"event {type_} v{version} is registered twice")
        cls.event_type, cls.event_version, cls.topic = type_, version, topic
        cls.summary = (cls.__doc__ or type_).strip().splitlines()[0]
        REGISTRY[key] = cls
        newest = _NEWEST.get(type_)
        if newest is None or version > newest.event_version:
            _NEWEST[type_] = cls
        return cls

    return register


class Envelope(BaseModel, Generic[P]):
    model_config = ConfigDict(extra="ignore", frozen=True)

    event_id: uuid.UUID = Field(default_factory=uuid.uuid4)
    type: EventType
    version: int = Field(ge=1)
    occurred_at: UtcDatetime = Field(default_factory=utc_now)
    tenant_id: TenantId
    conversation_id: uuid.UUID | None = None
    correlation_id: uuid.UUID
    causation_id: uuid.UUID | None = None
    payload: P

    @property
    def key(self) -> bytes:
        """Kafka key: the conversation keeps one conversation's events in order."""
        aggregate = self.conversation_id or getattr(self.payload, "aggregate_id", None) or self.event_id
        return str(aggregate).encode()

    def to_json(self) -> bytes:
        """The wire format; raises `EventTooLargeError` over `MAX_EVENT_BYTES`."""
        data = self.model_dump_json().encode()
        if len(data) > MAX_EVENT_BYTES:
            raise EventTooLargeError(
                f"event {self.type} v{self.version} is {len(data)} bytes serialised, over the {MAX_EVENT_BYTES} allowed"
            )
        return data


@functools.cache
def envelope_class(payload_cls: type[P]) -> type[Envelope[P]]:
    """`Envelope` parametrised with a concrete payload class, so that serialisation keeps all of its
    fields. Held here because pydantic keeps parametrised classes only weakly: without a strong
    reference each call would build the class anew."""
    return Envelope[payload_cls]  # type: ignore[valid-type]


def new_envelope(
    payload: P,
    *,
    tenant_id: str,
    conversation_id: uuid.UUID | None = None,
    correlation_id: uuid.UUID | None = None,
    causation: Envelope[Any] | None = None,
) -> Envelope[P]:
    """Builds an envelope; events caused by another carry its correlation and its id as causation."""
    if causation is not None:
        correlation_id = correlation_id or causation.correlation_id
    event_id = uuid.uuid4()
    return envelope_class(type(payload))(
        event_id=event_id,
        type=payload.event_type,
        version=payload.event_version,
        tenant_id=tenant_id,
        conversation_id=conversation_id,
        correlation_id=correlation_id or event_id,
        causation_id=causation.event_id if causation else None,
        payload=payload,
    )


class EnvelopeHeader(BaseModel):
    """What a record says it is, read without its payload (`read_header`)."""

    type: EventType
    version: int


class UnknownEventError(ValueError):
    """The record names a type this code does not know, or a version below 1."""


def payload_class_for(type_: str, version: int) -> type[Payload] | None:
    """The model that reads `version` of `type_`: its own, else the newest model of the type.
    Revisions are additive, so the newest model reads them all: an older one's missing fields
    take their defaults, a newer one's extra fields are ignored. None when the type is unknown."""
    payload_cls = REGISTRY.get((type_, version))
    if payload_cls is None and version >= 1:
        payload_cls = _NEWEST.get(type_)
    return payload_cls


def read_header(raw: bytes | str) -> EnvelopeHeader:
    """The type and version a raw record names, without validating its payload: a consumer skips
    the records it has no handler for at this cost. Raises a plain ValueError when the record is
    not JSON or names no type and version."""
    try:
        return EnvelopeHeader.model_validate_json(raw)
    except ValidationError as error:
        if any(detail["type"] == "json_invalid" for detail in error.errors()):
            raise ValueError(f"record is not JSON: {error}") from error
        raise ValueError(f"malformed envelope: {error}") from error


def parse_envelope(raw: bytes | str | dict[str, Any], header: EnvelopeHeader | None = None) -> Envelope[Any]:
    """Validates a raw record into a typed envelope, which keeps the version it arrived with.
    `header` is the record's own (`read_header`) when the caller has read it already.

    Raises `UnknownEventError` for a type this code does not know (or a version below 1) and a
    plain ValueError for anything malformed."""
    if isinstance(raw, dict):
        try:
            header = EnvelopeHeader.model_validate(raw)
        except ValidationError as error:
            raise ValueError(f"malformed envelope: {error}") from error
    elif header is None:
        header = read_header(raw)
    payload_cls = payload_class_for(header.type, header.version)
    if payload_cls is None:
        raise UnknownEventError(f"unknown event {header.type} v{header.version}")
    model = envelope_class(payload_cls)
    # Straight from the bytes: pydantic's own JSON parser builds no intermediate dictionaries.
    return model.model_validate(raw) if isinstance(raw, dict) else model.model_validate_json(raw)
