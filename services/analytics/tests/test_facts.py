"""What the service publishes on `analytics.facts.v1` (read back from its outbox, as the relay
would send it): every fact valid against its exported JSON Schema, and no personal data in any."""

from __future__ import annotations

import json
import re
from pathlib import Path

import jsonschema_rs

from contracts.common import FactName
from contracts.events import AnalyticsFact

from .conftest import AnalyticsHarness, Mix, apply_mix

SCHEMA = Path(__file__).resolve().parents[3] / "docs" / "contracts" / "schemas" / "analytics.fact.v1.json"
EMAIL = re.compile(r"[\w.+-]+@[\w-]+\.[\w.-]+")


async def test_every_fact_is_valid_against_the_exported_json_schema(analytics: AnalyticsHarness, mix: Mix) -> None:
    await apply_mix(analytics, mix)
    facts = await analytics.emitted(AnalyticsFact)
    assert len(facts) == len(mix.envelopes)
    validator = jsonschema_rs.validator_for(json.loads(SCHEMA.read_text()))
    for envelope in facts:
        document = json.loads(envelope.to_json())
        errors = [error.message for error in validator.iter_errors(document)]
        assert not errors, f"{envelope.payload.name}: {errors}"
    names = {e.payload.name for e in facts}
    # The mix has a fact of most kinds; those it lacks are the ones it has no event of.
    assert set(FactName) - names == {FactName.OFFER_CLOSED, FactName.SLA_WARNING}

    # The schema does refuse what is not a fact.
    document = json.loads(facts[0].to_json())
    assert not validator.is_valid(document | {"payload": document["payload"] | {"name": "message_text"}})
    assert not validator.is_valid(document | {"payload": document["payload"] | {"score": 9}})


async def test_no_fact_carries_a_name_an_email_a_phone_a_message_or_a_comment(
    analytics: AnalyticsHarness, mix: Mix
) -> None:
    await apply_mix(analytics, mix)
    published = [e.to_json().decode() for e in await analytics.emitted(AnalyticsFact)]
    assert len(published) == len(mix.envelopes)

    def found_in(wire: str) -> list[str]:
        return [text for text in mix.personal if text in wire or json.dumps(text)[1:-1] in wire]

    # The events the facts come from carry all of it, and the search finds it there...
    sources = "\n".join(e.to_json().decode() for e in mix.envelopes)
    assert found_in(sources) == mix.personal
    assert EMAIL.findall(sources)
    # ...and in no fact.
    everything = "\n".join(published)
    assert found_in(everything) == []
    assert not EMAIL.findall(everything)
    assert "ticket_number" in everything, "ids stay: a ticket number is not personal data"
