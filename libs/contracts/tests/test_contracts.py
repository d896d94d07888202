import json
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

import contracts
from contracts import export, topics
from contracts.common import MAX_URL_CHARS, ContactDetails, SmartAction, Source, TranscriptExcerpt, TranscriptLine
from contracts.envelope import MAX_EVENT_BYTES, EventTooLargeError, idempotency_key
from contracts.events import AiReplyGenerated, MessagePosted, OpenTicket, PostCustomerMessage, SubmitTicketDetails

EXPORT_DIR = Path(__file__).resolve().parents[3] / "docs" / "contracts"
TENANT = "lucine-di-natale"


def test_committed_export_is_fresh() -> None:
    """`make contracts` output must be committed whenever the models change."""
    expected = export.render()
    on_disk = {str(p.relative_to(EXPORT_DIR)): p.read_text() for p in EXPORT_DIR.rglob("*.json")}
    assert sorted(on_disk) == sorted(expected), "run `make contracts`: the set of exported files differs"
    stale = [name for name, content in expected.items() if on_disk[name] != content]
    assert not stale, f"run `make contracts`: stale exports {stale}"


def test_every_event_round_trips_through_the_wire_format() -> None:
    cid = uuid.uuid4()
    message = PostCustomerMessage(message_id=uuid.uuid4(), client_message_id="m-1", text="  Quanto costano?  ")
    envelope = contracts.new_envelope(message, tenant_id=TENANT, conversation_id=cid)
    parsed = contracts.parse_envelope(envelope.to_json())
    assert parsed == envelope
    assert parsed.payload.text == "Quanto costano?"
    assert parsed.key == str(cid).encode()
    assert parsed.correlation_id == envelope.event_id


def test_caused_events_carry_correlation_and_causation() -> None:
    cause = contracts.new_envelope(
        PostCustomerMessage(message_id=uuid.uuid4(), client_message_id="m-1", text="hi"), tenant_id=TENANT
    )
    effect = contracts.new_envelope(
        MessagePosted(message_id=uuid.uuid4(), seq=1, sender="customer", text="hi", status="AI"),
        tenant_id=TENANT,
        causation=cause,
    )
    assert effect.correlation_id == cause.correlation_id
    assert effect.causation_id == cause.event_id


def test_occurred_at_is_normalised_to_utc_and_naive_times_are_refused() -> None:
    envelope = contracts.new_envelope(
        PostCustomerMessage(message_id=uuid.uuid4(), client_message_id="m", text="x"), tenant_id=TENANT
    )
    data = json.loads(envelope.to_json())
    data["occurred_at"] = datetime(2026, 12, 7, 18, 0, tzinfo=timezone(timedelta(hours=1))).isoformat()
    assert contracts.parse_envelope(data).occurred_at.utcoffset() == timedelta(0)
    assert contracts.parse_envelope(data).occurred_at.hour == 17
    data["occurred_at"] = "2026-12-07T18:00:00"
    with pytest.raises(ValueError, match="timezone"):
        contracts.parse_envelope(data)


@pytest.mark.parametrize(
    ("raw", "error"),
    [
        (b"not json", "not JSON"),
        (b'{"version": 1}', "malformed"),
        (b'{"type": "conversation.start", "version": 1, "tenant_id": "Not A Slug"}', "validation error"),
    ],
)
def test_malformed_records_are_rejected_with_a_reason(raw: bytes, error: str) -> None:
    with pytest.raises(ValueError, match=error) as raised:
        contracts.parse_envelope(raw)
    assert not isinstance(raised.value, contracts.UnknownEventError), "malformed is dead-lettered, not skipped"


@pytest.mark.parametrize(
    "raw",
    [
        b'{"type": "conversation.unknown", "version": 1}',
        b'{"type": "conversation.start", "version": 0}',  # versions count from 1
    ],
)
def test_unknown_types_and_versions_below_one_are_unknown(raw: bytes) -> None:
    with pytest.raises(contracts.UnknownEventError, match="unknown event"):
        contracts.parse_envelope(raw)


def test_a_newer_version_of_a_known_type_is_read_with_the_newest_model_and_keeps_its_version() -> None:
    envelope = contracts.new_envelope(
        PostCustomerMessage(message_id=uuid.uuid4(), client_message_id="m", text="ciao"), tenant_id=TENANT
    )
    data = json.loads(envelope.to_json())
    data["version"] = 2
    data["payload"]["attachment_count"] = 1  # an additive revision this code does not know yet
    parsed = contracts.parse_envelope(json.dumps(data))
    assert type(parsed.payload) is PostCustomerMessage
    assert parsed.payload == envelope.payload
    assert parsed.version == 2


def test_an_older_revision_of_a_known_type_is_read_with_the_newest_model_its_new_fields_defaulted() -> None:
    reply = AiReplyGenerated(
        in_reply_to=uuid.uuid4(), reply_id=uuid.uuid4(), text="Ciao!", language="it", confidence=1.0, mode="retrieval"
    )
    data = json.loads(contracts.new_envelope(reply, tenant_id=TENANT).to_json())
    assert AiReplyGenerated.event_version == 3
    data["version"] = 1  # as written before `upset` and `urgent` were added
    del data["payload"]["upset"], data["payload"]["urgent"]
    parsed = contracts.parse_envelope(json.dumps(data))
    assert type(parsed.payload) is AiReplyGenerated
    assert parsed.payload == reply
    assert (parsed.payload.upset, parsed.payload.urgent) == (False, False)
    assert parsed.version == 1


def test_payload_bounds_are_enforced() -> None:
    with pytest.raises(ValidationError):
        PostCustomerMessage(message_id=uuid.uuid4(), client_message_id="m", text="x" * 4001)
    with pytest.raises(ValidationError):
        PostCustomerMessage(message_id=uuid.uuid4(), client_message_id="m", text="   ")
    with pytest.raises(ValidationError):
        PostCustomerMessage(message_id=uuid.uuid4(), client_message_id="has spaces", text="x")
    with pytest.raises(ValidationError):
        contracts.new_envelope(
            PostCustomerMessage(message_id=uuid.uuid4(), client_message_id="m", text="x"), tenant_id="Not A Slug"
        )
    with pytest.raises(ValidationError):
        SmartAction(type="open_url", label="Buy", url="javascript:alert(1)")


def test_ticket_details_need_a_way_to_reach_the_customer() -> None:
    with pytest.raises(ValidationError, match="email or a phone"):
        SubmitTicketDetails(contact=ContactDetails(name="Anna"))
    with pytest.raises(ValidationError, match="no phone"):
        SubmitTicketDetails(contact=ContactDetails(name="Anna", email="a@example.com", preferred_contact="whatsapp"))
    with pytest.raises(ValidationError):
        ContactDetails(name="Anna", email="not-an-email")
    ok = SubmitTicketDetails(contact=ContactDetails(name="Anna", phone="+39 312 345 6789", preferred_contact="sms"))
    assert ok.contact.phone == "+39 312 345 6789"


def test_unknown_payload_fields_are_ignored_for_additive_changes() -> None:
    envelope = contracts.new_envelope(
        PostCustomerMessage(message_id=uuid.uuid4(), client_message_id="m", text="x"), tenant_id=TENANT
    )
    data = json.loads(envelope.to_json())
    data["payload"]["added_in_a_later_release"] = True
    assert contracts.parse_envelope(data).payload == envelope.payload


def test_every_event_names_a_known_topic_and_topics_follow_the_naming_rule() -> None:
    names = {t.name for t in topics.ALL_TOPICS}
    for payload_cls in contracts.REGISTRY.values():
        assert payload_cls.topic in names, payload_cls
    for topic in topics.ALL_TOPICS:
        _domain, _kind, version = topic.name.split(".")
        assert version.startswith("v")
        assert version[1:].isdigit()
        assert topic.partitions >= 1


# --------------------------------------------------------------------------- size budget

JSON_BYTES_PER_CHAR = 6
"""The most one character can take in the wire JSON: a control character is escaped as \\u00XX."""
FORMAT_BYTES = {"uuid": 38, "date-time": 40}  # with quotes; a datetime is at most 27 characters
NUMBER_BYTES = 24  # the longest 64-bit number, e.g. -1.7976931348623157e+308


def max_json_bytes(schema: dict[str, Any], defs: dict[str, Any], where: str) -> int:
    """An upper bound of the serialised size of any value valid against `schema`; fails on a string,
    list or mapping without a bound, or on a schema shape it does not know."""
    if "$ref" in schema:
        return max_json_bytes(defs[schema["$ref"].rsplit("/", 1)[-1]], defs, where)
    if "const" in schema:
        return len(json.dumps(schema["const"], ensure_ascii=False).encode())
    if "enum" in schema:
        return max(len(json.dumps(value, ensure_ascii=False).encode()) for value in schema["enum"])
    for combinator in ("anyOf", "oneOf", "allOf"):
        if combinator in schema:
            return max(max_json_bytes(option, defs, where) for option in schema[combinator])
    kind = schema.get("type")
    if kind == "null":
        return 4
    if kind == "boolean":
        return 5
    if kind in ("integer", "number"):
        return NUMBER_BYTES
    if kind == "string":
        if schema.get("format") in FORMAT_BYTES:
            return FORMAT_BYTES[schema["format"]]
        assert "maxLength" in schema, f"{where}: a string without max_length"
        if schema.get("format") == "uri":
            # Sent normalised (ASCII, percent-encoded), which only `common.Link` bounds.
            assert schema["maxLength"] == MAX_URL_CHARS, f"{where}: a URL that is not a contracts.common.Link"
            return 2 + schema["maxLength"]
        return 2 + schema["maxLength"] * JSON_BYTES_PER_CHAR
    if kind == "array":
        assert "maxItems" in schema, f"{where}: a list without max_length"
        return 2 + schema["maxItems"] * (max_json_bytes(schema["items"], defs, f"{where}[]") + 1)
    if kind == "object":
        size = 2
        for name, field in schema.get("properties", {}).items():
            size += len(json.dumps(name)) + 1 + max_json_bytes(field, defs, f"{where}.{name}") + 1
        values = schema.get("additionalProperties")
        if values:
            assert "maxProperties" in schema, f"{where}: a mapping without max_length"
            key = max_json_bytes({"type": "string", **schema.get("propertyNames", {})}, defs, f"{where} key")
            size += schema["maxProperties"] * (key + 1 + max_json_bytes(values, defs, f"{where}{{}}") + 1)
        return size
    raise AssertionError(f"{where}: no size bound known for {schema}")


def max_event_bytes(payload_cls: type[contracts.Payload]) -> int:
    schema = export.event_schemas()[f"{payload_cls.event_type}.v{payload_cls.event_version}.json"]
    return max_json_bytes(schema, schema.get("$defs", {}), payload_cls.event_type)


@pytest.mark.parametrize("payload_cls", list(contracts.REGISTRY.values()), ids=lambda cls: cls.event_type)
def test_the_largest_valid_event_fits_the_size_budget(payload_cls: type[contracts.Payload]) -> None:
    """Every string, list and mapping of every event is bounded, and the bounds add up to less than
    `MAX_EVENT_BYTES`; a field without a bound fails here."""
    assert max_event_bytes(payload_cls) <= MAX_EVENT_BYTES


def test_the_size_bound_holds_for_a_near_maximal_event() -> None:
    """The bound is a real bound: the largest message a customer can cause, made of characters
    that JSON escapes, serialises within it."""
    url = "https://example.com/" + "é" * 100  # normalised, each é takes 6 characters
    message = MessagePosted(
        message_id=uuid.uuid4(),
        seq=2**31 - 1,
        sender="ai",
        text="\x01" * 4000,
        client_message_id="m" * 64,
        operator_id="o" * 100,
        language="it",
        confidence=0.123456789,
        sources=[Source(article_id="\x02" * 120, title="\x03" * 200, score=0.987654321)] * 10,
        smart_actions=[SmartAction(type="open_url", label="\x04" * 200, url=url)] * 6,
        status="AI",
    )
    envelope = contracts.new_envelope(message, tenant_id="t" * 63, conversation_id=uuid.uuid4())
    assert len(envelope.to_json()) <= max_event_bytes(MessagePosted) <= MAX_EVENT_BYTES


def test_a_link_is_bounded_once_normalised() -> None:
    with pytest.raises(ValidationError, match="once normalised"):
        SmartAction(type="open_url", label="Buy", url="https://example.com/" + "é" * (MAX_URL_CHARS // 3))
    with pytest.raises(ValidationError):
        SmartAction(type="open_url", label="Buy", url="https://example.com/" + "a" * MAX_URL_CHARS)


def test_an_event_over_the_budget_is_refused_when_serialised() -> None:
    # Only a payload built without validation can be this large.
    oversized = PostCustomerMessage.model_construct(message_id=uuid.uuid4(), client_message_id="m", text="x" * 70_000)
    envelope = contracts.new_envelope(oversized, tenant_id=TENANT)
    with pytest.raises(EventTooLargeError, match=r"conversation.post_customer_message v1 is \d+ bytes") as raised:
        envelope.to_json()
    assert isinstance(raised.value, ValueError), "a handler emitting it fails and is dead-lettered"


def test_a_ticket_request_carries_a_bounded_transcript_excerpt() -> None:
    conversation_id = uuid.uuid4()
    long_text = "parola " * 100
    excerpt = TranscriptExcerpt(
        lines=[TranscriptLine(seq=1, sender="customer", text=TranscriptLine.excerpt_text(long_text))],
        total_messages=57,
        transcript_url=TranscriptExcerpt.url_of(conversation_id),
    )
    assert excerpt.lines[0].text.endswith("…")
    assert len(excerpt.lines[0].text) <= 200
    assert excerpt.transcript_url == f"/internal/conversations/{conversation_id}/messages"
    with pytest.raises(ValidationError):
        TranscriptLine(seq=1, sender="customer", text=long_text)
    with pytest.raises(ValidationError):
        TranscriptExcerpt(lines=[excerpt.lines[0]] * 21, total_messages=57, transcript_url=excerpt.transcript_url)
    ticket = OpenTicket(
        idempotency_key=uuid.uuid5(conversation_id, "ticket"),
        contact=ContactDetails(name="Anna", email="anna@example.com"),
        transcript=excerpt,
    )
    envelope = contracts.new_envelope(ticket, tenant_id=TENANT, conversation_id=conversation_id)
    assert contracts.parse_envelope(envelope.to_json()) == envelope


def test_idempotency_keys_are_stable_per_event_and_purpose() -> None:
    event_id = uuid.uuid4()
    assert idempotency_key(event_id, "llm-answer") == idempotency_key(event_id, "llm-answer")
    assert idempotency_key(event_id, "llm-answer") != idempotency_key(event_id, "email")
    assert idempotency_key(event_id, "llm-answer") != idempotency_key(uuid.uuid4(), "llm-answer")
