"""Routing's handlers and its take API against the real PostgreSQL (migrated schema).

The handlers are applied in one transaction per batch, as the idempotent consumer applies them,
without Kafka: what they emit is read back from the outbox, what they schedule from the timers
table, and a timer is fired by the real `TimerFirer` once made due."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Iterator
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from sqlalchemy import event, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

import contracts
from contracts import Envelope, Payload, new_envelope
from contracts.common import ConversationStatus, OperatorPresence
from contracts.events import (
    ConversationQueued,
    DeclineOffer,
    ExpireOffer,
    HandoffRequested,
    NoOperatorAvailable,
    OfferClosed,
    OfferMade,
    OperatorAssigned,
    OperatorPresenceChanged,
    OperatorReleased,
    QueuePositionChanged,
    SetOperatorPresence,
    StatusChanged,
    TakeConversation,
    TransferConversation,
)
from contracts.readapi import QueueView, TakeResult
from devkit.testing import ConsumerHarness, Infra
from routing import handlers
from routing.api import router
from routing.app import MIGRATIONS
from routing.config import Settings
from routing.store import get_conversation, lock_tenant, unassigned
from servicekit.db import OutboxRecord, Timer, create_engine, session_factory
from servicekit.http import create_app
from servicekit.migrations import upgrade_to_head

S = ConversationStatus

TENANT = "lucine-di-natale"


class Handlers(ConsumerHarness):
    """Routing's handlers on its real consumer, applied batch by batch."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], settings: Settings) -> None:
        super().__init__(sessions)
        self.seen_outbox_id = 0
        handlers.register(self.consumer, settings)

    async def new_events(self) -> list[Payload]:
        """The payloads emitted since the last call, in commit order."""
        async with self.sessions() as session:
            rows = (
                await session.execute(
                    select(OutboxRecord.id, OutboxRecord.value)
                    .where(OutboxRecord.id > self.seen_outbox_id)
                    .order_by(OutboxRecord.id)
                )
            ).all()
        if rows:
            self.seen_outbox_id = rows[-1].id
        return [contracts.parse_envelope(row.value).payload for row in rows]

    async def timers(self) -> dict[str, Envelope[Any]]:
        async with self.sessions() as session:
            rows = await session.execute(select(Timer.name, Timer.value))
        return {name: contracts.parse_envelope(value) for name, value in rows.all()}

    async def fire_and_apply(self, name: str) -> None:
        """Makes the timer due, lets the firer move it to the outbox, and applies what it delivers."""
        fired = await self.fire_timer(name)
        await self.apply(*[e for e in fired if e.type in self.consumer.handlers])


def command(payload: Payload, conversation_id: uuid.UUID | None = None) -> Envelope[Any]:
    return new_envelope(payload, tenant_id=TENANT, conversation_id=conversation_id)


def presence(
    operator_id: str,
    state: OperatorPresence = "online",
    *,
    capacity: int = 3,
    skills: tuple[str, ...] = (),
    chosen: bool = False,
) -> Envelope[Any]:
    return command(
        SetOperatorPresence(
            operator_id=operator_id,
            display_name=operator_id.title(),
            presence=state,
            capacity=capacity,
            skills=list(skills),
            chosen=chosen,
        )
    )


def handoff(conversation_id: uuid.UUID, **fields: Any) -> Envelope[Any]:
    return command(HandoffRequested(**fields), conversation_id)


def status(conversation_id: uuid.UUID, previous: ConversationStatus, new: ConversationStatus) -> Envelope[Any]:
    return command(StatusChanged(previous=previous, status=new), conversation_id)


@pytest.fixture
async def sessions(infra: Infra, database: str) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    url = infra.database_url(database)
    await asyncio.to_thread(upgrade_to_head, MIGRATIONS, url)
    engine = create_engine(url)
    yield session_factory(engine)
    await engine.dispose()


@pytest.fixture
def routing(sessions: async_sessionmaker[AsyncSession]) -> Handlers:
    return Handlers(sessions, Settings())


@contextlib.asynccontextmanager
async def api_client(
    sessions: async_sessionmaker[AsyncSession], settings: Settings
) -> AsyncIterator[httpx.AsyncClient]:
    # The routes need only the runtime's sessions and settings; no broker, no consumer.
    app = create_app(SimpleNamespace(sessions=sessions, settings=settings), title="routing", routers=[router])  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://routing") as client:
        yield client


@pytest.fixture
async def api(sessions: async_sessionmaker[AsyncSession]) -> AsyncIterator[httpx.AsyncClient]:
    async with api_client(sessions, Settings()) as client:
        yield client


def of_type(events: list[Payload], payload_cls: type[Payload]) -> list[Any]:
    return [e for e in events if isinstance(e, payload_cls)]


async def test_a_handoff_with_an_operator_online_is_offered_to_it_until_a_durable_timer_expires_the_offer(
    routing: Handlers,
) -> None:
    cid = uuid.uuid4()
    await routing.apply(presence("anna"))
    await routing.new_events()
    await routing.apply(handoff(cid, reason="customer_request", priority="high"))

    (offer,) = await routing.new_events()
    assert isinstance(offer, OfferMade)
    assert (offer.operator_id, offer.priority, offer.reason) == ("anna", "high", "customer_request")
    timer = (await routing.timers())[f"offer:{offer.offer_id}"]
    assert isinstance(timer.payload, ExpireOffer)
    assert (timer.payload.offer_id, timer.conversation_id, timer.tenant_id) == (offer.offer_id, cid, TENANT)


async def test_a_handoff_with_nobody_online_says_no_operator_is_available(routing: Handlers) -> None:
    await routing.apply(presence("anna", "away"), presence("bruno", "offline"))
    await routing.new_events()
    cid = uuid.uuid4()
    await routing.apply(handoff(cid))
    assert [type(e) for e in await routing.new_events()] == [NoOperatorAvailable]
    assert (await queue_of(routing)) == []


async def queue_of(routing: Handlers) -> list[uuid.UUID]:
    async with routing.sessions() as session:
        return [c.conversation_id for c in await unassigned(session, TENANT)]


async def test_with_everyone_busy_the_handoff_is_queued_with_its_position_which_moves_when_one_is_taken(
    routing: Handlers, api: httpx.AsyncClient
) -> None:
    first, second, third = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    await routing.apply(presence("anna", capacity=1))
    await routing.apply(handoff(first))
    await routing.apply(handoff(second))
    await routing.apply(handoff(third))
    events = await routing.new_events()
    assert [o.operator_id for o in of_type(events, OfferMade)] == ["anna"]
    queued = of_type(events, ConversationQueued)
    assert [q.position for q in queued] == [2, 3], "behind the conversation offered to anna"
    assert all(q.estimated_wait_seconds for q in queued)

    await take(api, first, "anna")
    events = await routing.new_events()
    assert [p.position for p in of_type(events, QueuePositionChanged)] == [1, 2]
    view = QueueView.model_validate((await api.get("/internal/queue", params={"tenant_id": TENANT})).json())
    assert [(e.conversation_id, e.position) for e in view.entries] == [(second, 1), (third, 2)]


async def test_an_expired_offer_goes_to_the_next_operator(routing: Handlers) -> None:
    cid = uuid.uuid4()
    await routing.apply(presence("anna"), presence("bruno"))
    await routing.apply(handoff(cid))
    (offer,) = of_type(await routing.new_events(), OfferMade)

    await routing.fire_and_apply(f"offer:{offer.offer_id}")

    events = await routing.new_events()
    (closed,) = of_type(events, OfferClosed)
    assert (closed.offer_id, closed.operator_id, closed.outcome) == (offer.offer_id, offer.operator_id, "expired")
    (next_offer,) = of_type(events, OfferMade)
    assert next_offer.operator_id == ({"anna", "bruno"} - {offer.operator_id}).pop()
    timers = await routing.timers()
    assert f"offer:{next_offer.offer_id}" in timers
    assert f"offer:{offer.offer_id}" not in timers


async def test_an_operator_who_lets_two_offers_in_a_row_expire_is_set_away_and_heartbeats_do_not_undo_it(
    routing: Handlers,
) -> None:
    first, second = uuid.uuid4(), uuid.uuid4()
    await routing.apply(presence("anna", capacity=1))
    await routing.apply(handoff(first), handoff(second))
    for expected in (first, second):  # the one she let expire waits; the next one is offered to her
        (offer,) = [e for e in await routing.emitted(OfferMade) if e.conversation_id == expected]
        await routing.fire_and_apply(f"offer:{offer.payload.offer_id}")

    events = await routing.new_events()
    assert [c.outcome for c in of_type(events, OfferClosed)] == ["expired", "expired"]
    assert [(p.operator_id, p.presence) for p in of_type(events, OperatorPresenceChanged)] == [
        ("anna", "online"),
        ("anna", "away"),
    ]
    # Nobody is online any more: the customers waiting are told so (they get the ticket form).
    assert {e.conversation_id for e in await routing.emitted(NoOperatorAvailable)} == {first, second}
    assert await queue_of(routing) == []
    await routing.apply(presence("anna", capacity=1))  # the gateway's heartbeat, repeating her choice
    assert await routing.new_events() == []
    await routing.apply(presence("anna", capacity=1, chosen=True))  # she clicks online again
    events = await routing.new_events()
    assert [p.presence for p in of_type(events, OperatorPresenceChanged)] == ["online"]
    await routing.apply(handoff(third := uuid.uuid4()))
    assert [o.operator_id for o in of_type(await routing.new_events(), OfferMade)] == ["anna"]
    assert [e.conversation_id for e in await routing.emitted(OfferMade)][-1] == third


async def test_a_lone_operator_who_lets_an_offer_expire_is_offered_it_again_and_set_away_after_the_second(
    routing: Handlers,
) -> None:
    cid = uuid.uuid4()
    await routing.apply(presence("anna"))
    await routing.apply(handoff(cid))
    (first,) = of_type(await routing.new_events(), OfferMade)

    await routing.fire_and_apply(f"offer:{first.offer_id}")
    events = await routing.new_events()
    assert [c.outcome for c in of_type(events, OfferClosed)] == ["expired"]
    (again,) = of_type(events, OfferMade)
    assert again.operator_id == "anna", "nobody else: asked again, not left waiting"
    assert f"offer:{again.offer_id}" in await routing.timers()

    await routing.fire_and_apply(f"offer:{again.offer_id}")
    events = await routing.new_events()
    assert [c.outcome for c in of_type(events, OfferClosed)] == ["expired"]
    assert [(p.operator_id, p.presence) for p in of_type(events, OperatorPresenceChanged)] == [("anna", "away")]
    assert of_type(events, OfferMade) == []
    assert len(of_type(events, NoOperatorAvailable)) == 1, "nobody left online: not left waiting for no one"
    assert await queue_of(routing) == []


async def test_when_the_last_operator_leaves_those_waiting_are_told_nobody_is_online(routing: Handlers) -> None:
    waiting = [uuid.uuid4() for _ in range(3)]
    await routing.apply(presence("anna", capacity=1), presence("bruno", capacity=1))
    await routing.apply(*(handoff(cid) for cid in waiting))
    offers = {e.payload.operator_id: e.conversation_id for e in await routing.emitted(OfferMade)}
    await routing.new_events()

    await routing.apply(presence("bruno", "offline", chosen=True))  # anna is still online: they wait
    events = await routing.new_events()
    assert of_type(events, NoOperatorAvailable) == []
    assert set(await queue_of(routing)) == set(waiting)

    await routing.apply(presence("anna", "away", chosen=True))  # the last one
    events = await routing.new_events()
    assert [c.outcome for c in of_type(events, OfferClosed)] == ["withdrawn"]
    assert {e.conversation_id for e in await routing.emitted(NoOperatorAvailable)} == set(waiting)
    assert await queue_of(routing) == []
    assert offers["anna"] in waiting
    assert "offer:" not in " ".join(await routing.timers()), "no offer timer left behind"


async def test_a_declined_offer_goes_to_the_next_operator_and_its_timer_is_cancelled(routing: Handlers) -> None:
    cid = uuid.uuid4()
    await routing.apply(presence("anna"), presence("bruno"))
    await routing.apply(handoff(cid))
    (offer,) = of_type(await routing.new_events(), OfferMade)
    await routing.apply(command(DeclineOffer(operator_id=offer.operator_id, offer_id=offer.offer_id), cid))
    events = await routing.new_events()
    assert [c.outcome for c in of_type(events, OfferClosed)] == ["declined"]
    assert [o.operator_id for o in of_type(events, OfferMade)] != [offer.operator_id]
    assert f"offer:{offer.offer_id}" not in await routing.timers()


async def test_a_release_drains_the_queue_at_once(routing: Handlers, api: httpx.AsyncClient) -> None:
    served, waiting = uuid.uuid4(), uuid.uuid4()
    await routing.apply(presence("anna", capacity=1))
    await routing.apply(handoff(served))
    await take(api, served, "anna")
    await routing.apply(handoff(waiting))
    assert of_type(await routing.new_events(), OfferMade)[1:] == [], "anna is full: the second one waits"

    await routing.apply(status(served, S.WITH_OPERATOR, S.RESOLVED))

    events = await routing.new_events()
    assert [(type(e), getattr(e, "operator_id", None)) for e in events] == [
        (OperatorReleased, "anna"),
        (OfferMade, "anna"),
    ]


async def test_an_operator_coming_online_gets_the_waiting_conversations_highest_priority_first(
    routing: Handlers,
) -> None:
    calm, upset = uuid.uuid4(), uuid.uuid4()
    await routing.apply(presence("anna", capacity=1))
    await routing.apply(handoff(uuid.uuid4()))  # anna's: she has no room left
    await routing.apply(handoff(calm), handoff(upset, priority="high"))
    await routing.new_events()
    await routing.apply(presence("bruno", capacity=1))
    offers = [e for e in await routing.emitted(OfferMade) if e.payload.operator_id == "bruno"]
    assert [o.conversation_id for o in offers] == [upset]


async def test_handoffs_decided_in_one_batch_are_offered_in_queue_order(routing: Handlers) -> None:
    # A batch is one decision: its handoffs are offered once all its events are applied, the
    # upset customer first, whatever the order they came in.
    calm, upset = uuid.uuid4(), uuid.uuid4()
    await routing.apply(presence("anna", capacity=1))
    await routing.new_events()
    await routing.apply(handoff(calm), handoff(upset, priority="high"))
    events = await routing.new_events()
    assert [(type(e), e.conversation_id) for e in await routing.emitted(OfferMade)] == [(Envelope[OfferMade], upset)]
    (queued,) = of_type(events, ConversationQueued)
    assert queued.position == 2, "behind the upset customer's pending offer"


@pytest.fixture
def statements(sessions: async_sessionmaker[AsyncSession]) -> Iterator[list[str]]:
    """The SQL statements sent to PostgreSQL from now on."""
    engine = sessions.kw["bind"].sync_engine
    seen: list[str] = []

    def record(connection: Any, cursor: Any, statement: str, *rest: Any) -> None:
        seen.append(" ".join(statement.split()))

    event.listen(engine, "before_cursor_execute", record)
    yield seen
    event.remove(engine, "before_cursor_execute", record)


async def test_a_batch_reads_the_operators_and_their_loads_once_and_a_plain_heartbeat_not_at_all(
    routing: Handlers, statements: list[str]
) -> None:
    await routing.apply(*(presence(f"op{n:03}", capacity=1) for n in range(40)))
    await routing.new_events()
    statements.clear()

    conversations = [uuid.uuid4() for _ in range(50)]
    await routing.apply(*(handoff(cid) for cid in conversations))  # more than the seats: 10 wait

    events = await routing.new_events()
    assert len(of_type(events, OfferMade)) == 40
    assert sorted(q.position for q in of_type(events, ConversationQueued)) == list(range(41, 51))
    choices = [s for s in statements if "FROM operators LEFT OUTER JOIN" in s]
    assert len(choices) == 1, "the operators with their loads, read once for the whole batch"
    other_reads = [
        s
        for s in statements
        if "FROM operators" in s and s not in choices and "EXISTS" not in s and "operators.operator_id =" not in s
    ]
    assert other_reads == [], "besides that read, only an operator by key or whether anyone is online"

    statements.clear()
    heartbeats = [presence(f"op{n:03}", capacity=1) for n in range(10)]  # repeating what routing knows
    await routing.apply(*heartbeats)
    assert await routing.new_events() == [], "no presence event, no offer"
    assert not [s for s in statements if "FROM routed_conversations" in s], "nothing drained, no load counted"
    reads = [s for s in statements if s.startswith("SELECT") and "FROM operators" in s]
    assert len(reads) == 1, "the batch's operators, read together"


async def test_a_transfer_moves_the_load_and_back_to_the_queue_goes_to_someone_else(
    routing: Handlers, api: httpx.AsyncClient
) -> None:
    cid = uuid.uuid4()
    await routing.apply(presence("anna"), presence("bruno"), presence("carla"))
    await routing.apply(handoff(cid))
    await take(api, cid, "anna")
    await routing.new_events()
    await routing.apply(command(TransferConversation(operator_id="anna", to_operator_id="bruno"), cid))
    events = await routing.new_events()
    (released,) = of_type(events, OperatorReleased)
    (assigned,) = of_type(events, OperatorAssigned)
    assert (released.operator_id, released.reason) == ("anna", "transferred")
    assert (assigned.operator_id, assigned.via, assigned.previous_operator_id) == ("bruno", "transfer", "anna")

    await routing.apply(command(TransferConversation(operator_id="bruno"), cid))
    events = await routing.new_events()
    assert [r.reason for r in of_type(events, OperatorReleased)] == ["requeued"]
    assert [o.operator_id for o in of_type(events, OfferMade)] in (["anna"], ["carla"])


async def test_only_the_assigned_operator_or_a_supervisor_transfers_a_conversation(
    routing: Handlers, api: httpx.AsyncClient
) -> None:
    cid = uuid.uuid4()
    await routing.apply(presence("anna"), presence("bruno"), presence("carla"))
    await routing.apply(handoff(cid))
    await take(api, cid, "anna")
    await routing.new_events()
    await routing.apply(command(TransferConversation(operator_id="bruno", to_operator_id="bruno"), cid))
    assert await routing.new_events() == [], "an operator without the conversation moves nothing"

    supervisor = TransferConversation(operator_id="carla", to_operator_id="bruno", role="supervisor")
    await routing.apply(command(supervisor, cid))
    (assigned,) = of_type(await routing.new_events(), OperatorAssigned)
    assert (assigned.operator_id, assigned.previous_operator_id) == ("bruno", "anna")


async def test_a_conversation_handed_back_to_the_ai_withdraws_its_offer(routing: Handlers) -> None:
    cid = uuid.uuid4()
    await routing.apply(presence("anna"))
    await routing.apply(handoff(cid))
    (offer,) = of_type(await routing.new_events(), OfferMade)
    await routing.apply(status(cid, S.QUEUED, S.AI))
    assert [(c.outcome, c.offer_id) for c in of_type(await routing.new_events(), OfferClosed)] == [
        ("withdrawn", offer.offer_id)
    ]
    assert f"offer:{offer.offer_id}" not in await routing.timers()
    assert await queue_of(routing) == []


async def test_heartbeats_push_the_presence_timer_back_and_its_expiry_sets_the_operator_offline(
    routing: Handlers,
) -> None:
    await routing.apply(presence("anna"))
    name = f"presence:{TENANT}:anna"
    first = (await routing.timers())[name]
    await routing.apply(presence("anna"))
    second = (await routing.timers())[name]
    assert second.payload.last_seen_at > first.payload.last_seen_at
    await routing.new_events()
    await routing.apply(first)  # a timer from before the last heartbeat changes nothing
    assert await routing.new_events() == []

    await routing.fire_and_apply(name)

    (offline,) = of_type(await routing.new_events(), OperatorPresenceChanged)
    assert (offline.operator_id, offline.presence) == ("anna", "offline")


async def take(api: httpx.AsyncClient, conversation_id: uuid.UUID, operator_id: str) -> httpx.Response:
    body = {"tenant_id": TENANT, "operator_id": operator_id, "display_name": operator_id.title()}
    return await api.post(f"/internal/conversations/{conversation_id}/take", json=body)


async def test_two_operators_racing_for_one_conversation_one_gets_it_the_other_409(
    routing: Handlers, api: httpx.AsyncClient
) -> None:
    await routing.apply(presence("anna"), presence("bruno"), presence("carla"))
    conversations = [uuid.uuid4() for _ in range(5)]
    await routing.apply(*(handoff(cid) for cid in conversations))

    for cid in conversations:
        anna, bruno = await asyncio.gather(take(api, cid, "anna"), take(api, cid, "bruno"))
        assert sorted([anna.status_code, bruno.status_code]) == [200, 409]
        winner, loser = (anna, bruno) if anna.status_code == 200 else (bruno, anna)
        assert loser.json()["error"]["code"] == "already_taken"
        result = TakeResult.model_validate(winner.json())
        assert result.conversation_id == cid

    assigned = await routing.emitted(OperatorAssigned)
    assert sorted(str(e.conversation_id) for e in assigned) == sorted(map(str, conversations)), "one assignment each"
    unknown = await take(api, uuid.uuid4(), "anna")
    assert (unknown.status_code, unknown.json()["error"]["code"]) == (404, "not_waiting")


async def offer(routing: Handlers, conversation_id: uuid.UUID) -> str:
    """Hands the conversation off; returns the operator it is offered to."""
    await routing.apply(handoff(conversation_id))
    (made,) = of_type(await routing.new_events(), OfferMade)
    return str(made.operator_id)


def colleague_of(operator_id: str) -> str:
    return "bruno" if operator_id == "anna" else "anna"


async def test_takes_run_beside_each_other_while_nobody_waits_but_never_beside_a_consumer_batch(
    routing: Handlers, api: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession]
) -> None:
    first, second = uuid.uuid4(), uuid.uuid4()
    await routing.apply(presence("anna"), presence("bruno"))
    # Each taken by the colleague of the operator it is offered to: a take that withdraws an offer.
    first_taker, second_taker = colleague_of(await offer(routing, first)), colleague_of(await offer(routing, second))
    async with sessions() as other_take, other_take.begin():
        await lock_tenant(other_take, TENANT, shared=True)  # another take, not yet committed
        async with asyncio.timeout(5):
            assert (await take(api, first, first_taker)).status_code == 200
    async with sessions() as batch, batch.begin():
        await lock_tenant(batch, TENANT)  # a consumer batch, not yet committed
        waiting = asyncio.create_task(take(api, second, second_taker))
        await asyncio.sleep(0.5)
        assert not waiting.done(), "the take waits for the batch's decisions"
    assert (await waiting).status_code == 200


async def test_accepting_ones_own_offer_waits_for_no_consumer_batch_only_for_the_conversations_row(
    routing: Handlers, api: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession]
) -> None:
    first, second = uuid.uuid4(), uuid.uuid4()
    await routing.apply(presence("anna"), presence("bruno"))
    first_to, second_to = await offer(routing, first), await offer(routing, second)
    async with sessions() as batch, batch.begin():
        await lock_tenant(batch, TENANT)  # a consumer batch deciding about the tenant
        async with asyncio.timeout(5):
            accepted = await take(api, first, first_to)
        assert (accepted.status_code, accepted.json()["via"]) == (200, "offer")
        # A batch that changes the conversation itself (its expiry, the customer leaving) goes first.
        await get_conversation(batch, second)
        waiting = asyncio.create_task(take(api, second, second_to))
        await asyncio.sleep(0.5)
        assert not waiting.done(), "the accept waits for the decision about its conversation"
    assert (await waiting).json()["via"] == "offer"
    assigned = of_type(await routing.new_events(), OperatorAssigned)
    assert sorted((a.operator_id, a.via) for a in assigned) == sorted([(first_to, "offer"), (second_to, "offer")])


async def test_takes_beyond_the_concurrent_bound_wait_their_turn(
    routing: Handlers, sessions: async_sessionmaker[AsyncSession]
) -> None:
    first, second = uuid.uuid4(), uuid.uuid4()
    await routing.apply(presence("anna"), presence("bruno"))
    first_to, second_to = await offer(routing, first), await offer(routing, second)
    async with api_client(sessions, Settings(concurrent_takes=1)) as api:
        async with sessions() as batch, batch.begin():
            await lock_tenant(batch, TENANT)  # a consumer batch deciding about the tenant
            # Taking a colleague's offer needs the tenant's lock: it waits, holding the one turn.
            colleagues = asyncio.create_task(take(api, first, colleague_of(first_to)))
            await asyncio.sleep(0.3)
            # An accept needs no tenant lock, but no turn is free.
            accept = asyncio.create_task(take(api, second, second_to))
            await asyncio.sleep(0.5)
            assert not colleagues.done()
            assert not accept.done(), "it waits for the turn, not for a lock"
        assert (await colleagues).status_code == 200
        assert (await accept).json()["via"] == "offer"


async def test_an_accept_racing_the_offers_expiry_assigns_the_conversation_once(
    routing: Handlers, api: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession]
) -> None:
    await routing.apply(presence("anna"), presence("bruno"))
    conversations = [uuid.uuid4() for _ in range(6)]
    for cid in conversations:
        operator_id = await offer(routing, cid)
        # The offer's expiry as its timer would deliver it, applied while the operator accepts.
        (expiry,) = [e for n, e in (await routing.timers()).items() if n.startswith("offer:")]
        accepted, _ = await asyncio.gather(take(api, cid, operator_id), routing.apply(expiry))
        # Accepted first, the expiry finds no offer; expired first, the take takes it back from
        # the colleague it went to.
        assert accepted.status_code == 200
        assert [a.operator_id for a in of_type(await routing.new_events(), OperatorAssigned)] == [operator_id]
        async with sessions() as session:
            assert await unassigned(session, TENANT) == [], "no offer left pending"
        await routing.apply(status(cid, S.WITH_OPERATOR, S.RESOLVED))  # its seat free again
        await routing.new_events()


async def test_a_take_command_from_kafka_assigns_like_the_api(routing: Handlers) -> None:
    cid = uuid.uuid4()
    await routing.apply(presence("anna"), presence("bruno"))
    await routing.apply(handoff(cid))
    (offer,) = of_type(await routing.new_events(), OfferMade)
    await routing.apply(command(TakeConversation(operator_id=offer.operator_id), cid))
    (assigned,) = of_type(await routing.new_events(), OperatorAssigned)
    assert (assigned.operator_id, assigned.via) == (offer.operator_id, "offer")
    assert f"offer:{offer.offer_id}" not in await routing.timers()
