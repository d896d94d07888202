import json
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from pydantic import ValidationError

import contracts
from contracts import export, topics
from contracts.common import ContactDetails, SmartAction
from contracts.events import MessagePosted, PostCustomerMessage, SubmitTicketDetails

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
        (b'{"type": "conversation.unknown", "version": 1}', "unknown event"),
        (b'{"type": "conversation.start", "version": 9}', "unknown event"),
        (b'{"version": 1}', "malformed"),
    ],
)
def test_malformed_records_are_rejected_with_a_reason(raw: bytes, error: str) -> None:
    with pytest.raises(ValueError, match=error):
        contracts.parse_envelope(raw)


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
