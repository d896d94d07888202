"""The supervisors' analytics routes and the widget's answer feedback, on the real gateway (real
Kafka, PostgreSQL, Redis) with stand-ins for the analytics service, the conversation service's read
API and routing."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from gateway_testkit import GIULIA, SOFIA, WILE, message

from contracts.events import GiveAnswerFeedback

LUCINE = "lucine-di-natale"
PERIOD = {"from": "2025-12-01", "to": "2025-12-07", "tz": "Europe/Rome", "figure": "handed_off"}
REPORTS = ["overview", "series", "handoff-reasons", "operators", "kb-gaps", "conversations"]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def access(gateway: Any, account: tuple[str, str, str]) -> str:
    username, password, _ = account
    response = await gateway.http.post("/v1/operators/login", json={"username": username, "password": password})
    assert response.status_code == 200, response.text
    return str(response.json()["access_token"])


def url(report: str) -> str:
    return f"/v1/analytics/{report}"


@pytest.mark.parametrize("report", [*REPORTS, "live"])
async def test_an_operator_is_refused_and_the_analytics_service_is_never_asked(gateway: Any, report: str) -> None:
    token = await access(gateway, GIULIA)
    asked = len(gateway.analytics_api.requests)
    response = await gateway.http.get(url(report), params=PERIOD, headers=bearer(token))
    assert response.status_code == 403, response.text
    assert response.json()["error"]["code"] == "forbidden"
    assert len(gateway.analytics_api.requests) == asked
    assert (await gateway.http.get(url(report), params=PERIOD)).status_code == 401


@pytest.mark.parametrize("report", REPORTS)
async def test_a_supervisor_reads_the_reports_of_their_own_tenant(gateway: Any, report: str) -> None:
    token = await access(gateway, SOFIA)
    response = await gateway.http.get(url(report), params=PERIOD, headers=bearer(token))
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["tenant_id"], body["from_date"], body["to_date"], body["timezone"]) == (
        LUCINE,
        "2025-12-01",
        "2025-12-07",
        "Europe/Rome",
    )
    asked = gateway.analytics_api.requests[-1]
    assert asked["tenant_id"] == LUCINE
    assert (asked["from"], asked["to"], asked["tz"]) == ("2025-12-01", "2025-12-07", "Europe/Rome")


async def test_a_tenant_id_in_the_query_changes_nothing_and_drilldown_filters_pass_through(gateway: Any) -> None:
    token = await access(gateway, SOFIA)
    params = PERIOD | {"tenant_id": "acme", "figure": "handed_off", "handoff_reason": "answer_not_helpful", "hour": 9}
    response = await gateway.http.get(url("conversations"), params=params, headers=bearer(token))
    assert response.status_code == 200, response.text
    asked = gateway.analytics_api.requests[-1]
    assert asked["tenant_id"] == LUCINE, "the token's tenant, never the query's"
    assert (asked["figure"], asked["handoff_reason"], asked["hour"]) == ("handed_off", "answer_not_helpful", "9")


async def test_csv_exports_pass_through_as_attachments(gateway: Any) -> None:
    token = await access(gateway, SOFIA)
    response = await gateway.http.get(url("overview"), params=PERIOD | {"format": "csv"}, headers=bearer(token))
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/csv")
    assert (
        response.headers["content-disposition"]
        == 'attachment; filename="overview-lucine-di-natale-2025-12-01-2025-12-07.csv"'
    )
    assert response.text.splitlines()[:2] == ["figure,value", "tenant,lucine-di-natale"]
    assert gateway.analytics_api.requests[-1]["format"] == "csv"


async def test_bad_periods_are_422(gateway: Any) -> None:
    token = await access(gateway, SOFIA)
    for params in (
        {"from": "2025-12-07", "to": "2025-12-01"},  # refused by the analytics service, passed on
        {"from": "2025-12-01", "to": "2025-12-07", "tz": "Mars/Olympus"},
        {"from": "yesterday", "to": "2025-12-07"},  # refused by the gateway
        {"to": "2025-12-07"},
    ):
        response = await gateway.http.get(url("overview"), params=params, headers=bearer(token))
        assert response.status_code == 422, (params, response.text)


async def test_a_report_of_another_tenant_from_the_analytics_service_never_goes_out(gateway: Any) -> None:
    token = await access(gateway, SOFIA)
    gateway.analytics_api.answer_tenant = "acme"
    try:
        response = await gateway.http.get(url("overview"), params=PERIOD, headers=bearer(token))
    finally:
        gateway.analytics_api.answer_tenant = None
    assert response.status_code == 502, response.text
    assert "acme" not in response.text


async def test_live_counts_the_tenants_conversations_of_now_and_its_operators_online(gateway: Any) -> None:
    token = await access(gateway, SOFIA)

    async def live() -> dict[str, Any]:
        response = await gateway.http.get(url("live"), headers=bearer(token))
        assert response.status_code == 200, response.text
        return dict(response.json())

    before = await live()
    assert before["tenant_id"] == LUCINE
    read_api, routing = gateway.read_api, gateway.routing_api
    ids = [uuid.uuid4() for _ in range(6)]
    read_api.put(ids[0], LUCINE, [message(1, "customer", "Ciao")], status="AI")
    read_api.put(ids[1], LUCINE, [message(1, "customer", "Ciao")], status="HANDOFF_OFFERED")
    read_api.put(ids[2], LUCINE, [message(1, "customer", "Ciao")], status="AI")
    read_api.changed_at[str(ids[2])] = datetime.now(UTC) - timedelta(hours=2)  # left long ago: not of now
    read_api.put(ids[3], LUCINE, [message(1, "customer", "Ciao")], status="WAITING_CUSTOMER", operator_id="x")
    read_api.put(ids[4], "acme", [message(1, "customer", "Hi")], status="AI")  # another tenant's
    read_api.put(ids[5], "acme", [message(1, "customer", "Hi")], status="WITH_OPERATOR", operator_id=WILE[2])
    routing.wait(uuid.uuid4(), LUCINE)
    routing.wait(uuid.uuid4(), "acme")
    routing.seen(f"live-{uuid.uuid4().hex[:6]}", LUCINE, presence="online")
    routing.seen(f"live-{uuid.uuid4().hex[:6]}", LUCINE, presence="away")
    routing.seen(f"live-{uuid.uuid4().hex[:6]}", "acme", presence="online")

    after = await live()
    changes = {name: after[name] - before[name] for name in ("with_ai", "queued", "with_operators", "operators_online")}
    assert changes == {"with_ai": 2, "queued": 1, "with_operators": 1, "operators_online": 1}


async def test_answer_feedback_publishes_its_command_for_the_customers_own_conversation(gateway: Any) -> None:
    conversation_id, token = await gateway.start_conversation()
    answer = uuid.uuid4()
    path = f"/v1/conversations/{conversation_id}/messages/{answer}/feedback"
    response = await gateway.http.post(path, json={"helpful": False}, headers=bearer(token))
    assert response.status_code == 202, response.text

    _, command = await gateway.commands(conversation_id, 2)
    assert isinstance(command.payload, GiveAnswerFeedback)
    assert (command.payload.message_id, command.payload.helpful) == (answer, False)
    assert (command.tenant_id, command.conversation_id) == (LUCINE, conversation_id)

    other, _ = await gateway.start_conversation()
    refused = await gateway.http.post(
        f"/v1/conversations/{other}/messages/{answer}/feedback", json={"helpful": True}, headers=bearer(token)
    )
    assert refused.status_code == 403, "a token feeds back only on its own conversation"
    for body in ({}, {"helpful": "maybe"}):
        assert (await gateway.http.post(path, json=body, headers=bearer(token))).status_code == 422
