"""Flow A end to end: gateway, conversation and ai-responder as real processes over Kafka."""

from __future__ import annotations

import asyncio
import re
import signal
import uuid

import httpx
import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus

from contracts.readapi import WidgetMessage
from devkit.stack import Stack
from devkit.widget_client import Stream, WidgetConversation, start_conversation

from .conftest import DEMO_WIDGET_KEY, first_event

pytestmark = pytest.mark.e2e


async def new_conversation(gateway: httpx.AsyncClient, stack: Stack, locale: str = "it") -> WidgetConversation:
    return await start_conversation(gateway, stack.url("gateway"), DEMO_WIDGET_KEY, locale)


async def test_a_question_gets_a_grounded_answer_with_a_buy_button_on_the_websocket(
    gateway: httpx.AsyncClient, stack: Stack
) -> None:
    conversation = await new_conversation(gateway, stack)
    async with Stream(conversation.stream_url()) as stream:
        posted = await conversation.post("Quanto costano i biglietti?")
        assert posted.status_code == 202, posted.text
        customer = await stream.message_from("customer")
        answer = await stream.message_from("ai")

    assert str(customer.message_id) == posted.json()["message_id"]
    assert (customer.seq, answer.seq) == (1, 2)
    for price in ("9", "7", "13", "25"):
        assert price in answer.text, answer.text
    assert answer.sources, "a grounded answer names its knowledge-base sources"
    links = [a for a in answer.smart_actions if a.type == "open_url"]
    assert any("lucinedinatale.it/products" in str(a.url) for a in links), answer.smart_actions


async def test_an_english_question_is_answered_in_english(gateway: httpx.AsyncClient, stack: Stack) -> None:
    conversation = await new_conversation(gateway, stack, locale="en")
    async with Stream(conversation.stream_url()) as stream:
        await conversation.post("What time do you open in the evening?")
        answer = await stream.message_from("ai")
    assert "17:30" in answer.text
    assert "apre" not in answer.text.lower()


async def test_a_follow_up_question_is_answered_from_the_conversation_so_far(
    gateway: httpx.AsyncClient, stack: Stack
) -> None:
    conversation = await new_conversation(gateway, stack, locale="en")
    async with Stream(conversation.stream_url()) as stream:
        await conversation.post("How much is a ticket?")
        await stream.message_from("ai")
        stream.frames.clear()
        await conversation.post("and how do I get one?")
        follow_up = await stream.message_from("ai")
    assert follow_up.sources[0].article_id in ("ticket-prices", "buy-tickets"), follow_up
    assert not offers_handoff(follow_up), follow_up

    # The same words opening a conversation mean nothing to the assistant: the history made the difference.
    alone = await new_conversation(gateway, stack, locale="en")
    async with Stream(alone.stream_url()) as stream:
        await alone.post("and how do I get one?")
        answer = await stream.message_from("ai")
    assert answer.sources == [], answer
    assert offers_handoff(answer), answer


def offers_handoff(message: WidgetMessage) -> bool:
    return any(action.type == "request_operator" for action in message.smart_actions)


async def test_asking_for_a_person_offers_the_yes_no_handoff(gateway: httpx.AsyncClient, stack: Stack) -> None:
    conversation = await new_conversation(gateway, stack)
    async with Stream(conversation.stream_url()) as stream:
        await conversation.post("Voglio parlare con un operatore")
        answer = await stream.message_from("ai")
        kinds = {a.type for a in answer.smart_actions}
        assert {"request_operator", "continue_ai"} <= kinds
        await stream.receive_until(lambda f: f.get("type") == "status" and f["status"] == "HANDOFF_OFFERED")
        assert (await conversation.action("continue_ai")).status_code == 202
        await stream.receive_until(lambda f: f.get("type") == "status" and f["status"] == "AI")


async def test_a_reconnect_resumes_from_the_last_sequence_with_no_gap_or_duplicate(
    gateway: httpx.AsyncClient, stack: Stack
) -> None:
    conversation = await new_conversation(gateway, stack)
    async with Stream(conversation.stream_url()) as first:
        await conversation.post("Dove si parcheggia?")
        await first.message_from("ai")
    last_seen = max(m.seq for m in first.messages)
    assert last_seen == 2

    await conversation.post("E gli orari di apertura?")  # while the widget is offline
    await conversation.wait_for_messages(4)
    async with Stream(conversation.stream_url(after=last_seen)) as second:
        await second.receive_until(lambda f: f.get("type") == "message" and f["message"]["seq"] == 4)
        await conversation.post("Grazie, e il prezzo del biglietto ridotto?")
        await second.receive_until(lambda f: f.get("type") == "message" and f["message"]["seq"] == 6)
    assert [m.seq for m in second.messages] == [3, 4, 5, 6]


async def test_an_idle_connection_between_two_questions_stays_open(stack: Stack) -> None:
    host, port = stack.url("gateway").removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    request = f"GET /healthz HTTP/1.1\r\nHost: {host}\r\n\r\n".encode()
    try:
        for _ in range(2):  # the second request after a pause longer than uvicorn's default 5 s
            writer.write(request)
            await writer.drain()
            status = await asyncio.wait_for(reader.readline(), 5)
            assert status.startswith(b"HTTP/1.1 200"), status
            headers = (await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)).decode().lower()
            length = int(headers.split("content-length:")[1].split("\r\n")[0])
            await reader.readexactly(length)
            await asyncio.sleep(6)
    finally:
        writer.close()


async def test_the_same_client_message_id_twice_gives_one_message(gateway: httpx.AsyncClient, stack: Stack) -> None:
    conversation = await new_conversation(gateway, stack)
    first = await conversation.post("Quando aprite?", client_message_id="retry-1")
    second = await conversation.post("Quando aprite?", client_message_id="retry-1")
    assert first.status_code == second.status_code == 202
    assert first.json()["message_id"] == second.json()["message_id"]
    messages = await conversation.wait_for_messages(2)
    await asyncio.sleep(1.5)  # give a duplicate every chance to show up
    messages = (await conversation.history()).messages
    assert [m.sender for m in messages] == ["customer", "ai"]


async def test_a_customer_token_cannot_read_another_conversation(gateway: httpx.AsyncClient, stack: Stack) -> None:
    mine = await new_conversation(gateway, stack)
    theirs = await new_conversation(gateway, stack)
    await theirs.post("Ciao, il mio numero è riservato")
    response = await gateway.get(f"/v1/conversations/{theirs.conversation_id}/messages", headers=mine.auth)
    assert response.status_code == 403
    assert response.json()["error"]["code"]
    intruder = WidgetConversation(gateway, stack.url("gateway"), theirs.conversation_id, mine.token)
    with pytest.raises((ConnectionClosed, InvalidStatus)):  # refused, nothing streamed
        async with Stream(intruder.stream_url()) as stream:
            await stream.receive_until(lambda f: f.get("type") == "message", timeout=5)


async def test_sigkill_of_the_conversation_service_loses_nothing_and_answers_each_question_once(
    gateway: httpx.AsyncClient, stack: Stack
) -> None:
    questions = ["Quanto costa il biglietto?", "A che ora aprite?", "Dove parcheggio?", "C'è una navetta?"]
    conversations = [await new_conversation(gateway, stack) for _ in range(6)]

    async def ask_all(conversation: WidgetConversation) -> None:
        for question in questions:
            response = await conversation.post(question, client_message_id=uuid.uuid4().hex)
            assert response.status_code == 202
            await asyncio.sleep(0.15)

    asking = asyncio.gather(*(ask_all(c) for c in conversations))
    await asyncio.sleep(0.5)
    stack.kill("conversation", signal.SIGKILL)
    await asking  # the gateway keeps accepting: commands wait in Kafka
    stack.start("conversation")

    for conversation in conversations:
        messages = await conversation.wait_for_messages(2 * len(questions), timeout=60)
        assert [m.seq for m in messages] == list(range(1, 2 * len(questions) + 1)), "gap-free sequence"
        customer_texts = [m.text for m in messages if m.sender == "customer"]
        assert customer_texts == questions, "every question exactly once, in order"
        assert [m.sender for m in messages].count("ai") == len(questions), "every question answered once"


async def test_accepting_a_person_queues_the_conversation_and_contact_details_open_a_ticket_request(
    gateway: httpx.AsyncClient, stack: Stack
) -> None:
    conversation = await new_conversation(gateway, stack)
    async with Stream(conversation.stream_url()) as stream:
        await conversation.post("Vorrei un rimborso del biglietto")
        offer = await stream.message_from("ai")
        assert {"request_operator", "continue_ai"} <= {a.type for a in offer.smart_actions}
        assert (await conversation.action("request_operator")).status_code == 202
        await stream.receive_until(lambda f: f.get("type") == "status" and f["status"] == "QUEUED")

        invalid = await gateway.post(
            f"/v1/conversations/{conversation.conversation_id}/ticket",
            json={"name": "Anna", "preferred_contact": "email", "message": "rimborso"},
            headers=conversation.auth,
        )
        assert invalid.status_code == 422, "an email or a phone is required"
        details = {"name": "Anna", "email": "anna@example.com", "preferred_contact": "email", "message": "rimborso"}
        accepted = await gateway.post(
            f"/v1/conversations/{conversation.conversation_id}/ticket", json=details, headers=conversation.auth
        )
        assert accepted.status_code == 202
        await stream.receive_until(lambda f: f.get("type") == "status" and f["status"] == "TICKET_PENDING")

        # Asking for an operator now is not a move the state machine allows: it is rejected
        # (before or after the tickets service has opened the ticket).
        assert (await conversation.action("request_operator")).status_code == 202
        rejection = await first_event(stack, conversation.conversation_id, "conversation.command_rejected")
        assert rejection["payload"]["code"] == "illegal_transition"
        assert re.search(r"TICKET_(PENDING|CREATED) cannot move to QUEUED", rejection["payload"]["message"])
        await stream.receive_until(lambda f: f.get("type") == "status" and f["status"] == "TICKET_CREATED")
    history = await conversation.history()
    assert history.status == "TICKET_CREATED"
