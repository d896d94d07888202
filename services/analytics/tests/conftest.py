"""The analytics service's handlers against the real PostgreSQL (migrated schema), without Kafka,
and a known mix of conversations and tickets to apply to them.

Batches are applied in one transaction each, as the idempotent consumer applies them; the facts the
handlers publish are read back from the outbox.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from analytics import handlers
from analytics.api import router
from analytics.app import MIGRATIONS
from analytics.config import Settings
from contracts import Envelope, Payload, new_envelope
from contracts.common import ContactDetails, ConversationStatus, HandoffReason, Sender, SlaClock, TicketStatus
from contracts.events import (
    AiReplyGenerated,
    AnswerFeedbackGiven,
    ConversationQueued,
    ConversationRated,
    ConversationStarted,
    HandoffRequested,
    MessagePosted,
    NoOperatorAvailable,
    OfferMade,
    OperatorAssigned,
    OperatorPresenceChanged,
    OperatorReleased,
    SlaBreached,
    StatusChanged,
    TicketOpened,
    TicketReplyPosted,
    TicketUpdated,
)
from devkit.testing import ConsumerHarness, Infra
from servicekit.db import create_engine, session_factory
from servicekit.http import create_app
from servicekit.migrations import upgrade_to_head

S = ConversationStatus
TENANT = "lucine-di-natale"
OTHER_TENANT = "rifugio-alpino"
DAY = datetime(2025, 3, 10, tzinfo=UTC)  # the day of the mix: every conversation starts on it


class AnalyticsHarness(ConsumerHarness):
    """The analytics service's handlers on its real consumer, applied batch by batch."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], settings: Settings) -> None:
        super().__init__(sessions)
        self.settings = settings
        handlers.register(self.consumer, settings)

    def read_api(self) -> httpx.AsyncClient:
        """The service's internal API on this database, called in process (no broker, no consumer)."""
        runtime = SimpleNamespace(sessions=self.sessions, settings=self.settings)
        app: FastAPI = create_app(runtime, title="analytics", routers=[router])  # type: ignore[arg-type]
        return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://analytics")


async def migrated_harness(infra: Infra, database: str) -> tuple[AnalyticsHarness, Any]:
    url = infra.database_url(database)
    await asyncio.to_thread(upgrade_to_head, MIGRATIONS, url)
    engine = create_engine(url)
    return AnalyticsHarness(session_factory(engine), Settings()), engine


@pytest.fixture
async def analytics(infra: Infra, database: str) -> AsyncIterator[AnalyticsHarness]:
    harness, engine = await migrated_harness(infra, database)
    yield harness
    await engine.dispose()


def at(hour: int, minute: int = 0, second: float = 0, day: datetime = DAY) -> datetime:
    return day + timedelta(hours=hour, minutes=minute, seconds=second)


@dataclass
class Mix:
    """A known day of one tenant (and a little of another), event by event, in delivery batches.

    Conversations of `TENANT`, all started on `DAY` (UTC):
    - `ai_resolved`: one question answered by the AI, the answer marked helpful; quiet since (09:05).
    - `offer_declined`: the AI did not know and offered a person, the customer carried on with the
      assistant, which answered the next question: resolved by the AI too (09:40).
    - `anna_resolved`: the AI did not know (unknown_answer); the customer accepted a person; queued
      120 s; anna answered after 30 s and closed it as resolved after 600 s; rated 4 (10:00).
    - `bruno_resolved`: the customer asked for a person; queued 60 s; bruno answered after 90 s and
      closed after 300 s; rated 2 (11:00). Its `conversation_started` arrives last (late).
    - `ticketed`: low confidence, handoff accepted, nobody online: a ticket (T1) whose first
      response and resolution both meet their SLA (12:00).
    - `left_queue`: an upset customer accepted a person and left the queue (13:00).
    - `unanswered`: the customer's question got no answer at all (14:00).
    - `pending`: answered by the AI; the customer came back an hour ago: not settled yet (15:00).
    Tickets: T1 (above) and T2, opened by an operator at 16:00, whose first response breached its
    SLA and whose resolution is still ahead. Duplicates: an AI answer delivered twice in a batch
    and again later. `OTHER_TENANT` has one conversation of its own, anna (another anna) rated 1.
    """

    now: datetime
    ids: dict[str, uuid.UUID] = field(default_factory=dict)
    batches: list[list[Envelope[Any]]] = field(default_factory=list)
    personal: list[str] = field(default_factory=list)
    """Names, contacts and texts the events carry, which no fact may."""
    _late: list[Envelope[Any]] = field(default_factory=list)

    def conversation(self, name: str) -> uuid.UUID:
        return self.ids.setdefault(name, uuid.uuid4())

    def event(
        self, payload: Payload, when: datetime, conversation: str | None = None, tenant_id: str = TENANT
    ) -> Envelope[Any]:
        cid = self.conversation(conversation) if conversation else None
        envelope = new_envelope(payload, tenant_id=tenant_id, conversation_id=cid)
        return envelope.model_copy(update={"occurred_at": when})

    @property
    def envelopes(self) -> list[Envelope[Any]]:
        """Every distinct event of the mix (without its duplicates)."""
        return list({e.event_id: e for batch in self.batches for e in batch}.values())


def message(sender: Sender, text: str, status: S, seq: int, **fields: Any) -> MessagePosted:
    return MessagePosted(message_id=uuid.uuid4(), seq=seq, sender=sender, text=text, status=status, **fields)


def build_mix(now: datetime) -> Mix:
    mix = Mix(now=now)
    ev = mix.event

    def question(name: str, when: datetime, text: str, seq: int) -> tuple[Envelope[Any], uuid.UUID]:
        mix.personal.append(text)
        posted = message(Sender.CUSTOMER, text, S.AI, seq)
        return ev(posted, when, name), posted.message_id

    def ai_reply(
        name: str, when: datetime, asked: uuid.UUID, confidence: float, offer: HandoffReason | None = None
    ) -> Envelope[Any]:
        text = "Non lo so, vuoi parlare con una persona?" if offer else "Il biglietto costa 12 euro."
        reply = AiReplyGenerated(
            in_reply_to=asked,
            reply_id=uuid.uuid4(),
            text=text,
            language="it",
            confidence=confidence,
            mode="retrieval",
            handoff_reason=offer,
        )
        return ev(reply, when, name)

    def ai_answer(name: str, when: datetime, seq: int, status: S = S.AI, confidence: float = 0.9) -> Envelope[Any]:
        text = "Vuoi parlare con una persona?" if status == S.HANDOFF_OFFERED else "Il biglietto costa 12 euro."
        return ev(message(Sender.AI, text, status, seq, confidence=confidence, language="it"), when, name)

    def status(
        name: str, when: datetime, previous: S, new: S, reason: str = "", operator: str | None = None
    ) -> Envelope[Any]:
        return ev(StatusChanged(previous=previous, status=new, reason=reason, operator_id=operator), when, name)

    def started(name: str, when: datetime) -> Envelope[Any]:
        return ev(ConversationStarted(locale="it"), when, name)

    # ai_resolved (09:05)
    q1, m1 = question("ai_resolved", at(9, 5, 10), "Quanto costa il biglietto?", 1)
    answer1 = ai_answer("ai_resolved", at(9, 5, 12), 2)
    # The customer marks the answer helpful: a confirmed resolution.
    helpful = AnswerFeedbackGiven(
        message_id=answer1.payload.message_id,
        helpful=True,
        question_message_id=m1,
        question="Quanto costa il biglietto?",
    )
    mix.batches.append(
        [
            started("ai_resolved", at(9, 5)),
            q1,
            ai_reply("ai_resolved", at(9, 5, 11), m1, 0.9),
            answer1,
            answer1,
            ev(helpful, at(9, 5, 30), "ai_resolved"),
        ]
    )

    # offer_declined (09:40)
    q2, m2 = question("offer_declined", at(9, 40, 5), "Posso portare il cane?", 1)
    q3, m3 = question("offer_declined", at(9, 41, 0), "Ok, e gli orari di apertura?", 3)
    mix.batches.append(
        [
            started("offer_declined", at(9, 40)),
            q2,
            ai_reply("offer_declined", at(9, 40, 6), m2, 0.1, HandoffReason.UNKNOWN_ANSWER),
            status("offer_declined", at(9, 40, 7), S.AI, S.HANDOFF_OFFERED, "unknown_answer"),
            ai_answer("offer_declined", at(9, 40, 7.5), 2, S.HANDOFF_OFFERED, 0.1),
            status("offer_declined", at(9, 40, 59), S.HANDOFF_OFFERED, S.AI, "customer_message"),
            q3,
            ai_reply("offer_declined", at(9, 41, 1), m3, 0.8),
            ai_answer("offer_declined", at(9, 41, 2), 4),
        ]
    )

    # anna_resolved (10:00): its rating arrives in the last batch
    q4, m4 = question("anna_resolved", at(10, 0, 10), "posso portare il mio cane???", 1)
    mix.personal.append("Anna gentilissima, grazie!")
    anna_rating = ev(ConversationRated(score=4, comment="Anna gentilissima, grazie!"), at(10, 14), "anna_resolved")
    mix.personal.append("Certo, i cani sono benvenuti al guinzaglio.")
    mix.batches.append(
        [
            started("anna_resolved", at(10, 0)),
            q4,
            ai_reply("anna_resolved", at(10, 0, 11), m4, 0.05, HandoffReason.UNKNOWN_ANSWER),
            status("anna_resolved", at(10, 0, 12), S.AI, S.HANDOFF_OFFERED, "unknown_answer"),
            ai_answer("anna_resolved", at(10, 0, 12.5), 2, S.HANDOFF_OFFERED, 0.05),
            status("anna_resolved", at(10, 0, 59), S.HANDOFF_OFFERED, S.QUEUED, "customer_accepted_handoff"),
            ev(HandoffRequested(reason=HandoffReason.UNKNOWN_ANSWER, confidence=0.05), at(10, 1), "anna_resolved"),
            ev(ConversationQueued(position=1, estimated_wait_seconds=240), at(10, 1, 1), "anna_resolved"),
            ev(
                OfferMade(offer_id=uuid.uuid4(), operator_id="anna", expires_at=at(10, 1, 32)),
                at(10, 1, 2),
                "anna_resolved",
            ),
            ev(OperatorAssigned(operator_id="anna", display_name="Anna Bianchi"), at(10, 3), "anna_resolved"),
            status("anna_resolved", at(10, 3, 1), S.QUEUED, S.WITH_OPERATOR, "assigned_via_offer", "anna"),
        ]
    )
    mix.batches.append(
        [
            ev(
                message(
                    Sender.OPERATOR,
                    "Certo, i cani sono benvenuti al guinzaglio.",
                    S.WITH_OPERATOR,
                    4,
                    operator_id="anna",
                ),
                at(10, 3, 30),
                "anna_resolved",
            ),
            status("anna_resolved", at(10, 13), S.WITH_OPERATOR, S.RESOLVED, "closed_by_operator", "anna"),
            ev(OperatorReleased(operator_id="anna", reason="closed"), at(10, 13, 0.5), "anna_resolved"),
            answer1,  # a redelivery, batches later
        ]
    )
    mix.personal.append("Anna Bianchi")

    # bruno_resolved (11:00): started arrives late, in the last batch
    q5, m5 = question("bruno_resolved", at(11, 0, 5), "voglio parlare con un operatore", 1)
    bruno_started = started("bruno_resolved", at(11, 0))
    mix.batches.append(
        [
            q5,
            ai_reply("bruno_resolved", at(11, 0, 6), m5, 1.0, HandoffReason.CUSTOMER_REQUEST),
            status("bruno_resolved", at(11, 0, 7), S.AI, S.HANDOFF_OFFERED, "customer_request"),
            ai_answer("bruno_resolved", at(11, 0, 7.5), 2, S.HANDOFF_OFFERED, 1.0),
            status("bruno_resolved", at(11, 0, 29), S.HANDOFF_OFFERED, S.QUEUED, "customer_accepted_handoff"),
            ev(HandoffRequested(reason=HandoffReason.CUSTOMER_REQUEST), at(11, 0, 30), "bruno_resolved"),
            ev(ConversationQueued(position=1), at(11, 0, 31), "bruno_resolved"),
            ev(
                OperatorAssigned(operator_id="bruno", display_name="Bruno Verdi", via="take"),
                at(11, 1, 30),
                "bruno_resolved",
            ),
            status("bruno_resolved", at(11, 1, 31), S.QUEUED, S.WITH_OPERATOR, "assigned_via_take", "bruno"),
            ev(
                message(Sender.OPERATOR, "Buongiorno, sono Bruno.", S.WITH_OPERATOR, 4, operator_id="bruno"),
                at(11, 3),
                "bruno_resolved",
            ),
            status("bruno_resolved", at(11, 6, 30), S.WITH_OPERATOR, S.RESOLVED, "closed_by_operator", "bruno"),
            ev(OperatorReleased(operator_id="bruno", reason="closed"), at(11, 6, 31), "bruno_resolved"),
            ev(ConversationRated(score=2), at(11, 7), "bruno_resolved"),
        ]
    )
    mix.personal += ["Buongiorno, sono Bruno.", "Bruno Verdi"]

    # ticketed (12:00): T1 meets both SLA clocks
    t1 = mix.conversation("ticket_t1")
    contact = ContactDetails(name="Maria Rossi", email="maria.rossi@example.com", phone="+39 333 1234567")
    mix.personal += ["Maria Rossi", "maria.rossi@example.com", "+39 333 1234567", "Parcheggio per il camper"]
    mix.personal.append("Sì, abbiamo un parcheggio per camper.")
    q6, m6 = question("ticketed", at(12, 0, 5), "Avete un parcheggio per camper?", 1)
    number = "TCK-2025-000001"
    mix.batches.append(
        [
            started("ticketed", at(12, 0)),
            q6,
            ai_reply("ticketed", at(12, 0, 6), m6, 0.3, HandoffReason.LOW_CONFIDENCE),
            status("ticketed", at(12, 0, 7), S.AI, S.HANDOFF_OFFERED, "low_confidence"),
            ai_answer("ticketed", at(12, 0, 7.5), 2, S.HANDOFF_OFFERED, 0.3),
            status("ticketed", at(12, 0, 20), S.HANDOFF_OFFERED, S.QUEUED, "customer_accepted_handoff"),
            ev(HandoffRequested(reason=HandoffReason.LOW_CONFIDENCE), at(12, 0, 21), "ticketed"),
            ev(NoOperatorAvailable(), at(12, 0, 22), "ticketed"),
            status("ticketed", at(12, 0, 23), S.QUEUED, S.TICKET_PENDING, "no_operator_available"),
            ev(
                TicketOpened(
                    ticket_id=t1,
                    ticket_number=number,
                    contact=contact,
                    subject="Parcheggio per il camper",
                    first_response_due=at(16),
                    resolution_due=at(12, day=DAY + timedelta(days=1)),
                ),
                at(12, 2),
                "ticketed",
            ),
            status("ticketed", at(12, 2, 1), S.TICKET_PENDING, S.TICKET_CREATED, number),
        ]
    )
    mix.batches.append(
        [
            ev(
                TicketReplyPosted(
                    ticket_id=t1,
                    ticket_number=number,
                    reply_id=uuid.uuid4(),
                    author="operator",
                    operator_id="anna",
                    text="Sì, abbiamo un parcheggio per camper.",
                ),
                at(13),
                "ticketed",
            ),
            ev(
                TicketUpdated(
                    ticket_id=t1,
                    ticket_number=number,
                    status=TicketStatus.RESOLVED,
                    previous_status=TicketStatus.IN_PROGRESS,
                    priority="normal",
                    changed_by="anna",
                ),
                at(14),
                "ticketed",
            ),
        ]
    )

    # left_queue (13:00)
    q7, m7 = question("left_queue", at(13, 0, 5), "Sono molto deluso dal servizio", 1)
    mix.batches.append(
        [
            started("left_queue", at(13, 0)),
            q7,
            ai_reply("left_queue", at(13, 0, 6), m7, 0.8, HandoffReason.NEGATIVE_SENTIMENT),
            status("left_queue", at(13, 0, 7), S.AI, S.HANDOFF_OFFERED, "negative_sentiment"),
            ai_answer("left_queue", at(13, 0, 7.5), 2, S.HANDOFF_OFFERED, 0.8),
            status("left_queue", at(13, 0, 30), S.HANDOFF_OFFERED, S.QUEUED, "customer_accepted_handoff"),
            ev(HandoffRequested(reason=HandoffReason.NEGATIVE_SENTIMENT, priority="high"), at(13, 0, 31), "left_queue"),
            ev(ConversationQueued(position=3), at(13, 0, 32), "left_queue"),
            status("left_queue", at(13, 5), S.QUEUED, S.AI, "customer_left_queue"),
        ]
    )

    # unanswered (14:00)
    q8, _ = question("unanswered", at(14, 0, 5), "C'è qualcuno?", 1)
    mix.batches.append([started("unanswered", at(14, 0)), q8])

    # pending (15:00): the customer came back an hour ago
    q9, m9 = question("pending", at(15, 0, 5), "A che ora apre il villaggio?", 1)
    back = now - timedelta(hours=1)
    q10, m10 = question("pending", back, "E la domenica?", 3)
    mix.batches.append(
        [
            started("pending", at(15, 0)),
            q9,
            ai_reply("pending", at(15, 0, 6), m9, 0.9),
            ai_answer("pending", at(15, 0, 7), 2),
            q10,
            ai_reply("pending", back + timedelta(seconds=1), m10, 0.9),
            ai_answer("pending", back + timedelta(seconds=2), 4),
        ]
    )

    # T2 (16:00): opened by an operator, first response breached, resolution ahead
    t2 = mix.conversation("ticket_t2")
    number2 = "TCK-2025-000002"
    mix.batches.append(
        [
            ev(
                TicketOpened(
                    ticket_id=t2,
                    ticket_number=number2,
                    contact=ContactDetails(name="Luca Neri", email="luca.neri@example.org"),
                    source="operator",
                    assignee_id="carla",
                    first_response_due=at(18),
                    resolution_due=now + timedelta(days=30),
                ),
                at(16),
            ),
            ev(
                SlaBreached(ticket_id=t2, ticket_number=number2, clock=SlaClock.FIRST_RESPONSE, due_at=at(18)),
                at(18),
            ),
            ev(
                OperatorPresenceChanged(operator_id="carla", presence="online", active_conversations=0, capacity=3),
                at(8),
            ),
        ]
    )
    mix.personal += ["Luca Neri", "luca.neri@example.org"]

    # The other tenant: the same question, its own anna, rated 1.
    mix.personal.append("Posso portare il cane?")
    other = mix.conversation("other_tenant")
    asked = message(Sender.CUSTOMER, "Posso portare il cane?", S.AI, 1)
    mix.batches.append(
        [
            ev(ConversationStarted(), at(9, 10), "other_tenant", OTHER_TENANT),
            ev(asked, at(9, 10, 5), "other_tenant", OTHER_TENANT),
            ev(
                AiReplyGenerated(
                    in_reply_to=asked.message_id,
                    reply_id=uuid.uuid4(),
                    text="Non lo so.",
                    language="it",
                    confidence=0.0,
                    mode="retrieval",
                    handoff_reason=HandoffReason.UNKNOWN_ANSWER,
                ),
                at(9, 10, 6),
                "other_tenant",
                OTHER_TENANT,
            ),
            ev(HandoffRequested(), at(9, 11), "other_tenant", OTHER_TENANT),
            ev(OperatorAssigned(operator_id="anna", display_name="Anna"), at(9, 12), "other_tenant", OTHER_TENANT),
            ev(
                StatusChanged(previous=S.WITH_OPERATOR, status=S.NOT_RESOLVED, operator_id="anna"),
                at(9, 20),
                "other_tenant",
                OTHER_TENANT,
            ),
            ev(ConversationRated(score=1), at(9, 21), "other_tenant", OTHER_TENANT),
        ]
    )
    assert other

    # Late: the rating of anna_resolved and the start of bruno_resolved come last.
    mix.batches.append([anna_rating, bruno_started])
    mix.personal += [
        "Quanto costa il biglietto?",
        "Ok, e gli orari di apertura?",
        "posso portare il mio cane???",
        "voglio parlare con un operatore",
        "Avete un parcheggio per camper?",
        "Sono molto deluso dal servizio",
        "C'è qualcuno?",
        "A che ora apre il villaggio?",
        "E la domenica?",
        "Il biglietto costa 12 euro.",
        "Vuoi parlare con una persona?",
        "Non lo so, vuoi parlare con una persona?",
    ]
    return mix


@pytest.fixture
def mix() -> Mix:
    return build_mix(datetime.now(UTC))


async def apply_mix(harness: ConsumerHarness, mix: Mix) -> None:
    for batch in mix.batches:
        await harness.apply(*batch)
