"""Flows B and D end to end: a customer asks for a person, routing offers the conversation to the
operators online, two of them race to take it, and the winner and the customer talk until the
operator closes and the customer rates. Gateway, conversation, ai-responder and routing run as real
processes over Kafka; the operators are the demo tenant's, seeded by the gateway."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from devkit.fake_llm import FakeLlm, fake_llm_server
from devkit.stack import Stack, free_port
from devkit.testing import Infra, eventually
from devkit.widget_client import Stream, start_conversation

from .conftest import DEMO_TENANT, DEMO_WIDGET_KEY, first_event, isolated_stack

pytestmark = pytest.mark.e2e

DEMO_OPERATORS = {"giulia": "lucine-demo-giulia", "marco": "lucine-demo-marco"}


async def log_in(gateway: httpx.AsyncClient, username: str) -> str:
    response = await gateway.post(
        "/v1/operators/login", json={"username": username, "password": DEMO_OPERATORS[username]}
    )
    assert response.status_code == 200, response.text
    return str(response.json()["access_token"])


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def operator_stream_url(stack: Stack, token: str) -> str:
    return stack.url("gateway").replace("http://", "ws://") + f"/v1/operators/stream?access_token={token}"


def is_online(operator_id: str) -> Any:
    return lambda f: (
        f.get("type") == "presence" and f["data"]["operator_id"] == operator_id and f["data"]["presence"] == "online"
    )


async def test_a_customer_who_asks_for_a_person_talks_with_the_operator_who_won_the_race_until_closed(
    gateway: httpx.AsyncClient, stack: Stack
) -> None:
    tokens = {name: await log_in(gateway, name) for name in DEMO_OPERATORS}
    operator_ids = {"giulia": "lucine-giulia", "marco": "lucine-marco"}
    async with (
        Stream(operator_stream_url(stack, tokens["giulia"])) as giulia,
        Stream(operator_stream_url(stack, tokens["marco"])) as marco,
    ):
        streams = {"giulia": giulia, "marco": marco}
        for token in tokens.values():
            response = await gateway.put("/v1/operators/me/status", json={"status": "online"}, headers=bearer(token))
            assert response.status_code in (200, 202), response.text
        for name in DEMO_OPERATORS:  # routing has them online: the offer cannot miss them
            await giulia.receive_until(is_online(operator_ids[name]), timeout=60)

        conversation = await start_conversation(gateway, stack.url("gateway"), DEMO_WIDGET_KEY, "it")
        cid = conversation.conversation_id
        async with Stream(conversation.stream_url()) as customer:
            prices = await conversation.post("Quanto costano i biglietti?")
            assert prices.status_code == 202, prices.text
            await customer.message_from("ai", timeout=30)
            asked = await conversation.action("request_operator")
            assert asked.status_code == 202, asked.text

            offered = await giulia.receive_until(
                lambda f: f.get("type") == "offer" and f["conversation_id"] == cid and f["event"] == "offer_made",
                timeout=60,
            )
            assert offered["data"]["operator_id"] in operator_ids.values()

            # Both press "take" at once: exactly one gets the conversation.
            takes = await asyncio.gather(
                *(gateway.post(f"/v1/conversations/{cid}/take", headers=bearer(t)) for t in tokens.values())
            )
            statuses = {name: response.status_code for name, response in zip(tokens, takes, strict=True)}
            assert sorted(statuses.values()) == [200, 409], {n: r.text for n, r in zip(tokens, takes, strict=True)}
            loser_response = next(r for r in takes if r.status_code == 409)
            assert loser_response.json()["error"]["code"] == "already_taken"
            winner = next(name for name, status in statuses.items() if status == 200)
            stream = streams[winner]

            await stream.receive_until(
                lambda f: (
                    f.get("type") == "assignment"
                    and f["conversation_id"] == cid
                    and f["data"]["operator_id"] == operator_ids[winner]
                ),
                timeout=30,
            )
            loser = next(name for name in tokens if name != winner)
            summary = await gateway.get(f"/v1/conversations/{cid}/summary", headers=bearer(tokens[winner]))
            assert summary.status_code == 200, summary.text
            assert summary.json()["handoff_reason"] == "customer_request"
            not_theirs = await gateway.get(f"/v1/conversations/{cid}/summary", headers=bearer(tokens[loser]))
            assert not_theirs.status_code == 403, "another operator's conversation is not read by a plain operator"
            # The copilot: a reply grounded in the knowledge base, for the operator to edit and send.
            suggested = await gateway.get(f"/v1/conversations/{cid}/suggestion", headers=bearer(tokens[winner]))
            assert suggested.status_code == 200, suggested.text
            suggestion = suggested.json()
            assert suggestion["question"] == "Quanto costano i biglietti?"
            assert "€" in suggestion["text"]
            assert "ticket-prices" in [source["article_id"] for source in suggestion["sources"]]
            not_theirs = await gateway.get(f"/v1/conversations/{cid}/suggestion", headers=bearer(tokens[loser]))
            assert not_theirs.status_code == 403, not_theirs.text
            noted = await gateway.post(
                f"/v1/conversations/{cid}/notes", json={"text": "Cliente gentile"}, headers=bearer(tokens[winner])
            )
            assert noted.status_code == 202, noted.text

            hello = await gateway.post(
                f"/v1/conversations/{cid}/operator-messages",
                json={"text": "Ciao, sono qui per aiutarti."},
                headers=bearer(tokens[winner]),
            )
            assert hello.status_code == 202, hello.text
            from_operator = await customer.message_from("operator", timeout=30)
            assert from_operator.text == "Ciao, sono qui per aiutarti."

            reply = await conversation.post("Grazie! Posso portare il cane?")
            assert reply.status_code == 202, reply.text
            seen = await stream.receive_until(
                lambda f: (
                    f.get("type") == "message"
                    and f.get("conversation_id") == cid
                    and f["message"]["sender"] == "customer"
                    and f["message"]["text"].startswith("Grazie!")
                ),
                timeout=30,
            )
            assert seen["message"]["seq"] > from_operator.seq, "the customer's answer comes after the operator's"

            closed = await gateway.post(
                f"/v1/conversations/{cid}/close", json={"resolution": "resolved"}, headers=bearer(tokens[winner])
            )
            assert closed.status_code == 202, closed.text
            await customer.receive_until(lambda f: f.get("type") == "status" and f["status"] == "RESOLVED", timeout=30)

        rated = await gateway.post(
            f"/v1/conversations/{cid}/rating", json={"score": 5, "comment": "Gentilissima"}, headers=conversation.auth
        )
        assert rated.status_code == 202, rated.text
        rating = await first_event(stack, cid, "conversation.rated")
        assert (rating["payload"]["score"], rating["tenant_id"]) == (5, DEMO_TENANT)

        notes = (await gateway.get(f"/v1/conversations/{cid}/notes", headers=bearer(tokens[winner]))).json()
        assert [n["text"] for n in notes["notes"]] == ["Cliente gentile"]

        history = await conversation.history()
        senders = [m.sender for m in history.messages]
        operator_at = senders.index("operator")
        assert "Cliente gentile" not in [m.text for m in history.messages], "notes never reach the customer"
        assert "ai" not in senders[operator_at:], "the AI never posts while an operator has the conversation"
        assert suggestion["text"] not in [m.text for m in history.messages[operator_at:]], "a suggestion is never sent"


async def test_with_no_operator_online_the_customer_is_offered_the_ticket_form(
    gateway: httpx.AsyncClient, stack: Stack
) -> None:
    tokens = {name: await log_in(gateway, name) for name in DEMO_OPERATORS}
    for token in tokens.values():
        response = await gateway.put("/v1/operators/me/status", json={"status": "offline"}, headers=bearer(token))
        assert response.status_code in (200, 202), response.text
    async with httpx.AsyncClient(base_url=stack.url("routing"), timeout=10) as routing:
        for _ in range(150):  # routing learns it from the operators' commands
            operators = (await routing.get("/internal/operators", params={"tenant_id": DEMO_TENANT})).json()
            if all(o["presence"] == "offline" for o in operators):
                break
            await asyncio.sleep(0.2)
        assert all(o["presence"] == "offline" for o in operators), operators

    conversation = await start_conversation(gateway, stack.url("gateway"), DEMO_WIDGET_KEY, "en")
    async with Stream(conversation.stream_url()) as customer:
        asked = await conversation.action("request_operator")
        assert asked.status_code == 202, asked.text
        await customer.receive_until(lambda f: f.get("type") == "status" and f["status"] == "TICKET_PENDING", 30)
        notice = await customer.receive_until(
            lambda f: f.get("type") == "message" and "No operator is available" in f["message"]["text"], 30
        )
    assert notice["message"]["sender"] == "system"
    assert "email or phone" in notice["message"]["text"], "invited to leave contact details for a ticket"


async def test_a_customer_on_one_gateway_process_and_an_operator_on_another_talk_in_real_time(
    gateway: httpx.AsyncClient, stack: Stack, tmp_path: Path
) -> None:
    # A second gateway process on the same stack: every replica reads every conversation event.
    other = Stack(
        base_env=stack.base_env,
        ports={**stack.ports, "gateway": free_port()},
        databases=stack.databases,
        log_dir=tmp_path,
        extra_env=stack.extra_env,
    )
    other.start("gateway")
    try:
        async with httpx.AsyncClient(base_url=other.url("gateway"), timeout=15) as second:
            token = await log_in(second, "giulia")
            async with Stream(operator_stream_url(other, token)) as operator:
                online = await second.put("/v1/operators/me/status", json={"status": "online"}, headers=bearer(token))
                assert online.status_code in (200, 202), online.text
                await operator.receive_until(is_online("lucine-giulia"), timeout=60)

                conversation = await start_conversation(gateway, stack.url("gateway"), DEMO_WIDGET_KEY, "it")
                cid = conversation.conversation_id
                async with Stream(conversation.stream_url()) as customer:
                    assert (await conversation.action("request_operator")).status_code == 202
                    await operator.receive_until(
                        lambda f: f.get("type") == "offer" and f["conversation_id"] == cid, timeout=60
                    )
                    taken = await second.post(f"/v1/conversations/{cid}/take", headers=bearer(token))
                    assert taken.status_code == 200, taken.text
                    await operator.receive_until(
                        lambda f: f.get("type") == "assignment" and f["conversation_id"] == cid, timeout=30
                    )

                    sent = await second.post(
                        f"/v1/conversations/{cid}/operator-messages",
                        json={"text": "Buonasera da un altro processo"},
                        headers=bearer(token),
                    )
                    assert sent.status_code == 202, sent.text
                    assert (await customer.message_from("operator")).text == "Buonasera da un altro processo"

                    assert (await conversation.post("Ricevuto!")).status_code == 202
                    await operator.receive_until(
                        lambda f: (
                            f.get("type") == "message"
                            and f.get("conversation_id") == cid
                            and f["message"]["text"] == "Ricevuto!"
                        ),
                        timeout=30,
                    )
                    await second.post(
                        f"/v1/conversations/{cid}/close", json={"resolution": "resolved"}, headers=bearer(token)
                    )
            await second.put("/v1/operators/me/status", json={"status": "offline"}, headers=bearer(token))
    finally:
        other.stop_all()


async def test_an_operator_who_got_200_from_take_writes_at_once_and_the_customer_reads_it(
    gateway: httpx.AsyncClient, stack: Stack
) -> None:
    # Routing answers the take; the conversation service learns of it from routing's events, on
    # another topic. A 200 means the operator may write at once: no wait for any frame.
    tokens = {name: await log_in(gateway, name) for name in DEMO_OPERATORS}
    offline = await gateway.put("/v1/operators/me/status", json={"status": "offline"}, headers=bearer(tokens["marco"]))
    assert offline.status_code in (200, 202), offline.text
    token = tokens["giulia"]
    async with Stream(operator_stream_url(stack, token)) as giulia:
        await go_online(gateway, token, "lucine-giulia", giulia)
        for round_ in range(3):  # each round a fresh handoff: the race is lost on the first try, if at all
            conversation = await start_conversation(gateway, stack.url("gateway"), DEMO_WIDGET_KEY, "it")
            cid = conversation.conversation_id
            async with Stream(conversation.stream_url()) as customer:
                assert (await conversation.action("request_operator")).status_code == 202
                await giulia.receive_until(
                    lambda f, cid=cid: f.get("type") == "offer" and f["conversation_id"] == cid, timeout=60
                )

                taken = await gateway.post(f"/v1/conversations/{cid}/take", headers=bearer(token))
                assert taken.status_code == 200, taken.text
                text = f"Eccomi subito ({round_})"
                sent = await gateway.post(
                    f"/v1/conversations/{cid}/operator-messages", json={"text": text}, headers=bearer(token)
                )
                assert sent.status_code == 202, sent.text

                assert (await customer.message_from("operator", timeout=30)).text == text
            closed = await gateway.post(
                f"/v1/conversations/{cid}/close", json={"resolution": "resolved"}, headers=bearer(token)
            )
            assert closed.status_code == 202, closed.text
    await gateway.put("/v1/operators/me/status", json={"status": "offline"}, headers=bearer(token))


# ------------------------------------------------------------------------------ a stack of their own
# The tests below change settings the other tests of the session must not see: the assistant
# answers through an LLM (a local OpenAI-compatible server whose delay the test sets) and six
# seconds of customer silence with an operator make the conversation WAITING_CUSTOMER. One stack
# serves both (starting one takes a while).


@pytest.fixture(scope="module")
def llm() -> Iterator[FakeLlm]:
    with fake_llm_server() as server:
        yield server


@pytest.fixture(scope="module")
def tuned_stack(infra: Infra, tmp_path_factory: pytest.TempPathFactory, llm: FakeLlm) -> Iterator[Stack]:
    llm_env = {
        "LLM_API_KEY": "key-of-the-local-fake-llm",
        "LLM_BASE_URL": llm.base_url,
        "LLM_TIMEOUT_S": "60",  # slow is not failed: the reply must come, late
        "LLM_MAX_RETRIES": "0",
    }
    extra_env = {"ai-responder": llm_env, "conversation": {"INACTIVITY_MINUTES": "0.1"}}
    with isolated_stack(infra, tmp_path_factory.mktemp("tuned-services"), extra_env) as running:
        yield running


@pytest.fixture
def slow_llm(llm: FakeLlm) -> Iterator[FakeLlm]:
    llm.reset()
    yield llm
    llm.reset()


async def go_online(gateway: httpx.AsyncClient, token: str, operator_id: str, stream: Stream) -> None:
    response = await gateway.put("/v1/operators/me/status", json={"status": "online"}, headers=bearer(token))
    assert response.status_code in (200, 202), response.text
    await stream.receive_until(is_online(operator_id), timeout=60)  # routing has it online


async def taken_by(gateway: httpx.AsyncClient, token: str, operator: Stream, customer: Stream, cid: str) -> None:
    """Routing offers the conversation to the operator, who takes it; the customer sees it."""
    await operator.receive_until(
        lambda f: f.get("type") == "offer" and f["conversation_id"] == cid and f["event"] == "offer_made", timeout=60
    )
    taken = await gateway.post(f"/v1/conversations/{cid}/take", headers=bearer(token))
    assert taken.status_code == 200, taken.text
    await customer.receive_until(lambda f: f.get("type") == "status" and f["status"] == "WITH_OPERATOR", timeout=30)


async def leave(gateway: httpx.AsyncClient, token: str, cid: str) -> None:
    """Closes the operator's conversation and goes offline: routing offers the next test's
    conversation to nobody by mistake."""
    closed = await gateway.post(
        f"/v1/conversations/{cid}/close", json={"resolution": "resolved"}, headers=bearer(token)
    )
    assert closed.status_code == 202, closed.text
    offline = await gateway.put("/v1/operators/me/status", json={"status": "offline"}, headers=bearer(token))
    assert offline.status_code in (200, 202), offline.text


async def dropped_by_operator_states(stack: Stack) -> float:
    """conversation_ai_replies_dropped_total of the conversation process, for the statuses an
    operator holds (the six-second inactivity may have made it WAITING_CUSTOMER meanwhile)."""
    async with httpx.AsyncClient(base_url=stack.url("conversation"), timeout=10) as conversation:
        text = (await conversation.get("/metrics")).text
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "conversation_ai_replies_dropped_total"
        and sample.labels["status"] in {"WITH_OPERATOR", "WAITING_CUSTOMER"}
    )


async def test_an_ai_reply_still_in_flight_at_takeover_never_reaches_the_customer(
    tuned_stack: Stack, slow_llm: FakeLlm
) -> None:
    stack = tuned_stack
    late_answer = f"Risposta arrivata in ritardo {uuid.uuid4().hex[:6]}"
    slow_llm.reply = lambda body: json.dumps({"answer": late_answer, "answerable": True, "confidence": 0.9})
    slow_llm.delay_s = 10
    async with httpx.AsyncClient(base_url=stack.url("gateway"), timeout=15) as gateway:
        token = await log_in(gateway, "giulia")
        async with Stream(operator_stream_url(stack, token)) as giulia:
            await go_online(gateway, token, "lucine-giulia", giulia)
            conversation = await start_conversation(gateway, stack.url("gateway"), DEMO_WIDGET_KEY, "it")
            cid = conversation.conversation_id
            async with Stream(conversation.stream_url()) as customer:
                # A question the knowledge base covers, so that the assistant asks the LLM (unique:
                # the answer cache, shared by every stack on this Redis, must not answer it).
                question = f"Quanto costano i biglietti? Rif. {uuid.uuid4().hex[:6]}"
                assert (await conversation.post(question)).status_code == 202
                await eventually(lambda: slow_llm.requests, 30, "the assistant asking the LLM")

                assert (await conversation.action("request_operator")).status_code == 202
                await taken_by(gateway, token, giulia, customer, cid)
                assert slow_llm.answered == 0, "the operator took over while the AI's reply was in flight"
                dropped_before = await dropped_by_operator_states(stack)

                await eventually(lambda: slow_llm.answered == 1, 30, "the LLM's late answer")

                async def dropped_once_more() -> bool:
                    return await dropped_by_operator_states(stack) == dropped_before + 1

                await eventually(dropped_once_more, 30, "the late reply dropped and counted")
                # Anything the customer's stream was going to get by now has come: the operator's
                # message comes after the dropped reply was applied.
                hello = await gateway.post(
                    f"/v1/conversations/{cid}/operator-messages", json={"text": "Eccomi!"}, headers=bearer(token)
                )
                assert hello.status_code == 202, hello.text
                await customer.message_from("operator")
                assert [m.sender for m in customer.messages if m.sender == "ai"] == []
                assert late_answer not in [m.text for m in customer.messages]
            history = await conversation.history()
            assert late_answer not in [m.text for m in history.messages]
            assert "ai" not in [m.sender for m in history.messages]
            await leave(gateway, token, cid)


async def test_a_silent_customer_leads_to_waiting_customer_and_writing_again_reactivates(tuned_stack: Stack) -> None:
    stack = tuned_stack  # six seconds of silence with an operator
    async with httpx.AsyncClient(base_url=stack.url("gateway"), timeout=15) as gateway:
        token = await log_in(gateway, "marco")
        async with Stream(operator_stream_url(stack, token)) as marco:
            await go_online(gateway, token, "lucine-marco", marco)
            conversation = await start_conversation(gateway, stack.url("gateway"), DEMO_WIDGET_KEY, "it")
            cid = conversation.conversation_id
            async with Stream(conversation.stream_url()) as customer:
                assert (await conversation.action("request_operator")).status_code == 202
                # Told once that someone is about to answer, when routing offers it.
                offered = await customer.receive_until(
                    lambda f: f.get("type") == "message" and f["message"]["text"].startswith("Un operatore sta per"),
                    timeout=60,
                )
                assert offered["message"]["sender"] == "system"
                await taken_by(gateway, token, marco, customer, cid)

                await customer.receive_until(
                    lambda f: f.get("type") == "status" and f["status"] == "WAITING_CUSTOMER", timeout=60
                )
                still_there = await customer.receive_until(
                    lambda f: f.get("type") == "message" and f["message"]["text"].startswith("Sei ancora lì?"), 30
                )
                assert still_there["message"]["sender"] == "system"
                await marco.receive_until(
                    lambda f: (
                        f.get("type") == "status"
                        and f.get("conversation_id") == cid
                        and f["status"] == "WAITING_CUSTOMER"
                    ),
                    timeout=30,
                )
                listed = await gateway.get(
                    "/v1/conversations", params={"status": "WAITING_CUSTOMER"}, headers=bearer(token)
                )
                assert cid in [c["conversation_id"] for c in listed.json()["conversations"]], listed.text

                before = {id(frame) for frame in customer.frames}
                assert (await conversation.post("Eccomi, scusate!")).status_code == 202
                await customer.receive_until(
                    lambda f: id(f) not in before and f.get("type") == "status" and f["status"] == "WITH_OPERATOR",
                    timeout=30,
                )
                await marco.receive_until(
                    lambda f: (
                        f.get("type") == "message"
                        and f.get("conversation_id") == cid
                        and f["message"]["text"] == "Eccomi, scusate!"
                    ),
                    timeout=30,
                )
            senders_and_texts = [(m.sender, m.text) for m in (await conversation.history()).messages]
            waiting_at = next(i for i, (_, text) in enumerate(senders_and_texts) if text.startswith("Sei ancora lì?"))
            assert ("customer", "Eccomi, scusate!") in senders_and_texts[waiting_at:]
            await leave(gateway, token, cid)
