"""Analytics end to end, on a stack of real processes of its own (so that the tenant's figures are
exactly this module's): a known mix of conversations driven through the widget and the operators'
API, a duplicate and a late event, the overview read through the gateway as a supervisor and
checked figure by figure; then a second analytics process with an empty database and a new consumer
group replays every topic from offset 0 and must give the same figures. The analytics page of the
dashboard is then looked at in Chromium with that data.

The mix (demo tenant, all started today):
- A `confirmed`: a question the assistant answers; the customer marks the answer helpful (👍); a
  supervisor closes it. Resolved by the AI, confirmed.
- B `assumed`: a question the assistant answers; a supervisor closes it. Resolved by the AI; a late
  👍 (its time before the close, published after) makes it confirmed too.
- C `operator`: a question answered, then the customer asks for a person; Giulia takes it, writes,
  closes it; the customer rates 4.
- D `not helpful`: a question answered; 👎 offers a person (answer_not_helpful); the customer says
  yes, then leaves the queue before anyone takes it: abandoned in the queue, a knowledge gap.
- E `ticketed`: nobody online; the customer asks for a person and leaves contact details: a ticket.
"""

from __future__ import annotations

import asyncio
import json
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from playwright.async_api import Browser, expect

from contracts import new_envelope
from contracts.events import AnswerFeedbackGiven
from contracts.topics import ANALYTICS_FACTS, CONVERSATION_EVENTS
from devkit.stack import Stack, free_port
from devkit.testing import Infra, create_database, drop_database, eventually
from devkit.widget_client import Stream, WidgetConversation, start_conversation

from .conftest import DEMO_TENANT, DEMO_WIDGET_KEY, first_event, isolated_stack

pytestmark = pytest.mark.e2e

GIULIA = ("giulia", "lucine-demo-giulia", "lucine-giulia")
SOFIA = ("sofia", "lucine-demo-sofia", "lucine-sofia")


@pytest.fixture(scope="module")
def analytics_stack(infra: Infra, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with isolated_stack(infra, tmp_path_factory.mktemp("analytics-stack")) as running:
        yield running


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def log_in(gateway: httpx.AsyncClient, account: tuple[str, str, str]) -> str:
    response = await gateway.post("/v1/operators/login", json={"username": account[0], "password": account[1]})
    assert response.status_code == 200, response.text
    return str(response.json()["access_token"])


def period() -> dict[str, str]:
    # Around today (UTC), so that a run across midnight still sees every conversation of the mix.
    today = datetime.now(UTC).date()
    return {"from": str(today - timedelta(days=1)), "to": str(today + timedelta(days=1)), "tz": "UTC"}


async def answered(conversation: WidgetConversation, customer: Stream, question: str) -> dict[str, Any]:
    """Asks the assistant; its answer as the widget gets it, with the conversation still with it."""
    assert (await conversation.post(question)).status_code == 202
    answer = await customer.message_from("ai", timeout=30)
    history = await conversation.history()
    assert history.status == "AI", f"the assistant offered a person for {question!r}: pick a question it knows"
    return {"message_id": str(answer.message_id), "text": answer.text}


async def status(customer: Stream, wanted: str, timeout: float = 30) -> None:
    await customer.receive_until(lambda f: f.get("type") == "status" and f["status"] == wanted, timeout)


async def set_presence(gateway: httpx.AsyncClient, stack: Stack, token: str, operator_id: str, presence: str) -> None:
    response = await gateway.put("/v1/operators/me/status", json={"status": presence}, headers=bearer(token))
    assert response.status_code in (200, 202), response.text
    async with httpx.AsyncClient(base_url=stack.url("routing"), timeout=10) as routing:

        async def routing_knows() -> bool:
            operators = (await routing.get("/internal/operators", params={"tenant_id": DEMO_TENANT})).json()
            return any(o["operator_id"] == operator_id and o["presence"] == presence for o in operators)

        await eventually(routing_knows, 60, f"routing has {operator_id} {presence}")


async def supervisor_closes(gateway: httpx.AsyncClient, token: str, customer: Stream, cid: str) -> None:
    closed = await gateway.post(
        f"/v1/conversations/{cid}/close", json={"resolution": "resolved"}, headers=bearer(token)
    )
    assert closed.status_code == 202, closed.text
    await status(customer, "RESOLVED")


async def publish(stack: Stack, topic: str, key: str, value: bytes) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=stack.base_env["KAFKA_BOOTSTRAP_SERVERS"], acks="all")
    await producer.start()
    try:
        await producer.send_and_wait(stack.base_env["KAFKA_TOPIC_PREFIX"] + topic, value, key=key.encode())
    finally:
        await producer.stop()


async def facts_from(stack: Stack, source_event_id: str) -> int:
    """How many facts on the public topic came from one source event."""
    reader = AIOKafkaConsumer(
        stack.base_env["KAFKA_TOPIC_PREFIX"] + ANALYTICS_FACTS.name,
        bootstrap_servers=stack.base_env["KAFKA_BOOTSTRAP_SERVERS"],
        auto_offset_reset="earliest",
    )
    await reader.start()
    count = 0
    try:
        while batch := await reader.getmany(timeout_ms=1500):
            for records in batch.values():
                count += sum(json.loads(r.value)["payload"]["source_event_id"] == source_event_id for r in records)
    finally:
        await reader.stop()
    return count


def figures(overview: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in overview.items() if k != "as_of"}


EXPECTED = {
    "conversations_started": 5,
    "ai_involved": 4,  # E asked nothing of the assistant
    "involvement_rate": 4 / 5,
    "ai_resolved": 2,
    "ai_resolved_confirmed": 1,
    "ai_resolved_assumed": 1,
    "ai_pending": 0,
    "ai_resolution_rate": 2 / 4,
    "automation_rate": 2 / 5,
    "handed_off": 3,
    "handoff_rate": 3 / 5,
    "abandoned": 1,
    "abandoned_in_queue": 1,
    "abandoned_unanswered": 0,
    "abandonment_rate": 1 / 5,
    "no_operator_available": 1,
    "tickets_created": 1,
}
# After the late 👍 on B's answer.
AFTER_THE_LATE_EVENT = EXPECTED | {"ai_resolved_confirmed": 2, "ai_resolved_assumed": 0}


def check(overview: dict[str, Any], expected: dict[str, Any]) -> list[str]:
    """The figures that differ from the expected ones (empty when all match)."""
    wrong = [f"{k}: {overview.get(k)!r} != {v!r}" for k, v in expected.items() if overview.get(k) != v]
    if (overview["queue_wait"]["count"], overview["operator_first_response"]["count"]) != (1, 1):
        wrong.append(f"queue_wait/first response: {overview['queue_wait']}, {overview['operator_first_response']}")
    if overview["operator_handle_time"]["count"] != 1:
        wrong.append(f"handle time: {overview['operator_handle_time']}")
    csat = overview["csat"]
    if (csat["count"], csat["average"]) != (1, 4.0) or [s["count"] for s in csat["distribution"]] != [0, 0, 0, 1, 0]:
        wrong.append(f"csat: {csat}")
    pending_clock = {"met": 0, "missed": 0, "pending": 1, "compliance": None}  # the evening's business hours
    if overview["sla_first_response"] != pending_clock or overview["sla_resolution"] != pending_clock:
        wrong.append(f"sla: {overview['sla_first_response']}, {overview['sla_resolution']}")
    if sum(h["conversations"] for h in overview["busiest_hours"]) != 5:
        wrong.append(f"busiest hours: {overview['busiest_hours']}")
    return wrong


@pytest.fixture(scope="module")
async def mix(analytics_stack: Stack) -> AsyncIterator[dict[str, Any]]:
    """Drives the mix once for the module's tests; what they need to know about it."""
    stack = analytics_stack
    found: dict[str, Any] = {}
    async with httpx.AsyncClient(base_url=stack.url("gateway"), timeout=15) as gateway:
        sofia, giulia = await log_in(gateway, SOFIA), await log_in(gateway, GIULIA)
        url = stack.url("gateway")

        # A: answered, 👍, closed by the supervisor.
        a = await start_conversation(gateway, url, DEMO_WIDGET_KEY, "it")
        async with Stream(a.stream_url()) as customer:
            answer = await answered(a, customer, "Quanto costano i biglietti?")
            path = f"/v1/conversations/{a.conversation_id}/messages/{answer['message_id']}/feedback"
            assert (await gateway.post(path, json={"helpful": True}, headers=a.auth)).status_code == 202
            await first_event(stack, a.conversation_id, "conversation.answer_feedback_given")
            await supervisor_closes(gateway, sofia, customer, a.conversation_id)

        # B: answered, closed by the supervisor (its 👍 comes late, below).
        b = await start_conversation(gateway, url, DEMO_WIDGET_KEY, "it")
        async with Stream(b.stream_url()) as customer:
            found["b_answer"] = await answered(b, customer, "Quali sono gli orari di apertura?")
            await supervisor_closes(gateway, sofia, customer, b.conversation_id)
        found["b"] = b.conversation_id

        async with Stream(url.replace("http://", "ws://") + f"/v1/operators/stream?access_token={giulia}") as operator:
            await set_presence(gateway, stack, giulia, GIULIA[2], "online")
            # C: answered, then a person: Giulia takes it, writes and closes; the customer rates 4.
            c = await start_conversation(gateway, url, DEMO_WIDGET_KEY, "it")
            async with Stream(c.stream_url()) as customer:
                await answered(c, customer, "Dov'è il parcheggio?")
                assert (await c.action("request_operator")).status_code == 202
                await operator.receive_until(
                    lambda f: f.get("type") == "offer" and f["conversation_id"] == c.conversation_id, timeout=60
                )
                taken = await gateway.post(f"/v1/conversations/{c.conversation_id}/take", headers=bearer(giulia))
                assert taken.status_code == 200, taken.text
                await status(customer, "WITH_OPERATOR")
                hello = {"text": "Ciao, ti aiuto io."}
                sent = await gateway.post(
                    f"/v1/conversations/{c.conversation_id}/operator-messages", json=hello, headers=bearer(giulia)
                )
                assert sent.status_code == 202, sent.text
                await customer.message_from("operator")
                closed = await gateway.post(
                    f"/v1/conversations/{c.conversation_id}/close",
                    json={"resolution": "resolved"},
                    headers=bearer(giulia),
                )
                assert closed.status_code == 202, closed.text
                await status(customer, "RESOLVED")
            rated = await gateway.post(
                f"/v1/conversations/{c.conversation_id}/rating", json={"score": 4}, headers=c.auth
            )
            assert rated.status_code == 202, rated.text
            found["rating"] = await first_event(stack, c.conversation_id, "conversation.rated")

            # D: 👎 offers a person; yes; then the customer leaves the queue before anyone takes it.
            d = await start_conversation(gateway, url, DEMO_WIDGET_KEY, "it")
            found["d_question"] = "C'è una navetta dalla stazione?"
            async with Stream(d.stream_url()) as customer:
                answer = await answered(d, customer, found["d_question"])
                path = f"/v1/conversations/{d.conversation_id}/messages/{answer['message_id']}/feedback"
                assert (await gateway.post(path, json={"helpful": False}, headers=d.auth)).status_code == 202
                await status(customer, "HANDOFF_OFFERED")
                offer = await customer.receive_until(
                    lambda f: (
                        f.get("type") == "message"
                        and f["message"]["sender"] == "system"
                        and [a["type"] for a in f["message"]["smart_actions"]] == ["request_operator", "continue_ai"]
                    )
                )
                assert "operatore" in offer["message"]["text"]
                assert (await d.action("request_operator")).status_code == 202
                await status(customer, "QUEUED")
                assert (await d.action("continue_ai")).status_code == 202
                await status(customer, "AI")
            await set_presence(gateway, stack, giulia, GIULIA[2], "offline")

        # E: nobody online: the ticket form, and a ticket.
        e = await start_conversation(gateway, url, DEMO_WIDGET_KEY, "it")
        async with Stream(e.stream_url()) as customer:
            assert (await e.action("request_operator")).status_code == 202
            await status(customer, "TICKET_PENDING")
            details = {"name": "Anna", "email": "anna@example.com", "preferred_contact": "email", "message": "Gruppi"}
            ticketed = await gateway.post(f"/v1/conversations/{e.conversation_id}/ticket", json=details, headers=e.auth)
            assert ticketed.status_code == 202, ticketed.text
            await status(customer, "TICKET_CREATED", 60)
        found["sofia"] = sofia
        yield found


async def overview_via_gateway(stack: Stack, token: str) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=stack.url("gateway"), timeout=15) as gateway:
        response = await gateway.get("/v1/analytics/overview", params=period(), headers=bearer(token))
    assert response.status_code == 200, response.text
    return dict(response.json())


async def settled_on(read: Any, expected: dict[str, Any], what: str, timeout: float = 60) -> dict[str, Any]:
    """Reads the overview until it shows `expected` (the consumers catch up); the last read."""
    last: dict[str, Any] = {}

    async def matches() -> bool:
        nonlocal last
        last = await read()
        return not check(last, expected)

    try:
        await eventually(matches, timeout, what)
    except pytest.fail.Exception:
        pytest.fail(f"{what}: {check(last, expected)}")
    return last


async def test_the_figures_of_a_known_mix_survive_a_duplicate_a_late_event_and_a_replay(
    analytics_stack: Stack, mix: dict[str, Any], infra: Infra, tmp_path: Path
) -> None:
    stack, sofia = analytics_stack, mix["sofia"]
    await settled_on(lambda: overview_via_gateway(stack, sofia), EXPECTED, "the mix's figures")

    async with httpx.AsyncClient(base_url=stack.url("gateway"), timeout=15) as gateway:
        operator = await log_in(gateway, GIULIA)
        refused = await gateway.get("/v1/analytics/overview", params=period(), headers=bearer(operator))
        assert refused.status_code == 403, "a plain operator reads no analytics"
        reasons = (await gateway.get("/v1/analytics/handoff-reasons", params=period(), headers=bearer(sofia))).json()
        gaps = (await gateway.get("/v1/analytics/kb-gaps", params=period(), headers=bearer(sofia))).json()
        behind = await gateway.get(
            "/v1/analytics/conversations", params=period() | {"figure": "abandoned_in_queue"}, headers=bearer(sofia)
        )
        csv = await gateway.get("/v1/analytics/overview", params=period() | {"format": "csv"}, headers=bearer(sofia))
    assert {r["reason"]: r["conversations"] for r in reasons["reasons"]} == {
        "customer_request": 2,
        "answer_not_helpful": 1,
    }
    assert mix["d_question"] in [g["question"] for g in gaps["gaps"]], "an answer marked not helpful is a gap"
    assert behind.json()["count"] == 1
    assert "conversations_started,5" in csv.text.splitlines()

    # A duplicate (the rating, re-published as it was) and a late event (a 👍 on B's answer that
    # happened before B was closed, arriving now).
    rating = mix["rating"]
    await publish(stack, CONVERSATION_EVENTS.name, rating["conversation_id"], json.dumps(rating).encode())
    late = new_envelope(
        AnswerFeedbackGiven(message_id=uuid.UUID(mix["b_answer"]["message_id"]), helpful=True),
        tenant_id=DEMO_TENANT,
        conversation_id=uuid.UUID(mix["b"]),
    )
    b_closed = await first_event(stack, mix["b"], "conversation.status_changed")
    late = late.model_copy(
        update={"occurred_at": datetime.fromisoformat(b_closed["occurred_at"]) - timedelta(seconds=1)}
    )
    await publish(stack, CONVERSATION_EVENTS.name, mix["b"], late.to_json())
    first = await settled_on(lambda: overview_via_gateway(stack, sofia), AFTER_THE_LATE_EVENT, "the late 👍 counted")
    assert await facts_from(stack, rating["event_id"]) == 1, "the duplicate made no second fact"

    # A replay from offset 0 into an empty store: a second analytics process, a fresh database, a
    # new consumer group (it starts at the earliest offset of every topic).
    database = await create_database(infra, "analytics_replay")
    replay = Stack(
        base_env=stack.base_env,
        ports={**stack.ports, "analytics": free_port()},  # only its analytics is started
        databases={**stack.databases, "analytics": database},
        log_dir=tmp_path,
        extra_env={"analytics": {"KAFKA_GROUP_ID": f"analytics-replay-{uuid.uuid4().hex[:6]}"}},
    )
    await asyncio.to_thread(replay.start, "analytics")
    try:
        async with httpx.AsyncClient(base_url=replay.url("analytics"), timeout=15) as analytics:

            async def replayed() -> dict[str, Any]:
                response = await analytics.get(
                    "/internal/analytics/overview", params=period() | {"tenant_id": DEMO_TENANT}
                )
                assert response.status_code == 200, response.text
                return dict(response.json())

            again = await settled_on(replayed, AFTER_THE_LATE_EVENT, "the replay's figures", timeout=120)
        assert figures(again) == figures(await overview_via_gateway(stack, sofia)) == figures(first)
    finally:
        replay.stop_all()
        await drop_database(infra, database)


# ------------------------------------------------------------------------------ the page, in a browser


@pytest.mark.browser
@pytest.mark.parametrize("language", ["it", "en"])
async def test_the_analytics_page_shows_the_mix_in_charts_and_drills_down(
    analytics_stack: Stack, mix: dict[str, Any], browser: Browser, tmp_path: Path, language: str
) -> None:
    stack = analytics_stack

    async def counted() -> bool:
        return (await overview_via_gateway(stack, mix["sofia"]))["conversations_started"] == 5

    await eventually(counted, 60, "the mix counted")
    context = await browser.new_context(
        viewport={"width": 1366, "height": 900}, locale="it-IT" if language == "it" else "en-GB", accept_downloads=True
    )
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    await page.goto(f"{stack.url('gateway')}/dashboard")
    await page.get_by_test_id("login-username").fill(SOFIA[0])
    await page.get_by_test_id("login-password").fill(SOFIA[1])
    await page.get_by_test_id("login-submit").click()
    await page.get_by_test_id("view-analytics").click()

    page_ = page.get_by_test_id("analytics")
    await expect(page_.get_by_test_id("kpi-started-value")).to_have_text("5", timeout=20_000)
    await expect(page_.get_by_test_id("kpi-ai-resolution-value")).to_have_text("50%")
    await expect(page_.get_by_test_id("kpi-handoffs-value")).to_have_text("3")
    await expect(page_.get_by_test_id("kpi-abandoned-value")).to_have_text("1")
    await expect(page_.get_by_test_id("kpi-tickets-value")).to_have_text("1")
    await expect(page_.get_by_test_id("kpi-csat-value")).to_have_text("4.0 / 5")
    await expect(page_.get_by_test_id("live-online-value")).to_have_text("0")
    # Charts drawn by uPlot, with data: a canvas each.
    for chart in ("chart-volume", "chart-reasons", "chart-hours", "chart-ratings"):
        await expect(page_.get_by_test_id(chart).locator("canvas")).to_have_count(1)
    await expect(page_.get_by_test_id("panel-gaps")).to_contain_text("navetta dalla stazione")

    # A figure drills down to its conversations; a CSV export downloads.
    await page_.get_by_test_id("kpi-handoffs").click()
    await expect(page_.get_by_test_id("drilldown-item")).to_have_count(3)
    async with page.expect_download() as download:
        await page_.get_by_test_id("panel-reasons").get_by_test_id("export").click()
    assert (await download.value).suggested_filename.startswith("handoff-reasons-lucine-di-natale-")

    folder = Path(os.environ.get("DASHBOARD_SCREENSHOTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    # The page scrolls inside the dashboard: a tall window shows all of it in one picture.
    await page.set_viewport_size({"width": 1366, "height": 1900})
    await expect(page_.get_by_test_id("panel-gaps")).to_be_visible()
    await page.wait_for_timeout(500)  # the charts follow the new width
    await page.screenshot(path=str(folder / f"analytics-{language}.png"))
    assert errors == []
    await context.close()
