"""Event envelope, commands, events and topic names shared by every service.

Importing this package registers every payload, so `parse_envelope` knows them all.
"""

from contracts import common, events, topics
from contracts.envelope import (
    REGISTRY,
    Envelope,
    EnvelopeHeader,
    Payload,
    UnknownEventError,
    new_envelope,
    parse_envelope,
    read_header,
    utc_now,
)

__all__ = [
    "REGISTRY",
    "Envelope",
    "EnvelopeHeader",
    "Payload",
    "UnknownEventError",
    "common",
    "events",
    "new_envelope",
    "parse_envelope",
    "read_header",
    "topics",
    "utc_now",
]
