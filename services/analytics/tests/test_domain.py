"""The rules of analytics, without I/O: facts from events, summaries from facts, question groups."""

from __future__ import annotations

import itertools
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from analytics import domain
from contracts import Envelope, Payload, new_envelope
from contracts.common import ConversationStatus, FactName, HandoffReason, Sender, SlaClock, TicketStatus
from contracts.events import (
    AiReplyGenerated,
    AnalyticsFact,
    ConversationRated,
    MessagePosted,
    OperatorAssigned,
    OperatorReleased,
    SlaBreached,
    StatusChanged,
    TicketOpened,
    TicketReplyPosted,
    TicketUpdated,
)

S = ConversationStatus
T0 = datetime(2025, 3, 10, 9, 0, tzinfo=UTC)
CID = uuid.uuid4()
TICKET = uuid.uuid4()


def envelope(payload: Payload, seconds: float = 0) -> Envelope[Any]:
    made = new_envelope(payload, tenant_id="lucine-di-natale", conversation_id=CID)
    return made.model_copy(update={"occurred_at": T0 + timedelta(seconds=seconds)})


def fact(payload: Payload, seconds: float = 0) -> AnalyticsFact:
    made = domain.fact_of(envelope(payload, seconds), T0 + timedelta(hours=1), 0.45)
    assert made is not None
    return made


def reply(confidence: float, offer: HandoffReason | None = None) -> AiReplyGenerated:
    return AiReplyGenerated(
        in_reply_to=uuid.uuid4(),
        reply_id=uuid.uuid4(),
        text="...",
        language="it",
        confidence=confidence,
        mode="retrieval",
        handoff_reason=offer,
    )


def test_a_fact_keeps_ids_codes_and_times_and_derives_its_id_from_the_source_event() -> None:
    source = envelope(StatusChanged(previous=S.WITH_OPERATOR, status=S.RESOLVED, reason="closed_by_operator"), 5)
    made = domain.fact_of(source, T0 + timedelta(hours=1), 0.45)
    assert made is not None
    assert (made.name, made.status, made.previous_status, made.reason_code) == (
        FactName.CONVERSATION_CLOSED,
        S.RESOLVED,
        S.WITH_OPERATOR,
        "closed_by_operator",
    )
    assert (made.occurred_at, made.processed_at) == (T0 + timedelta(seconds=5), T0 + timedelta(hours=1))
    assert made.fact_id == uuid.uuid5(source.event_id, "conversation_closed")
    assert domain.fact_of(source, T0, 0.45) == made.model_copy(update={"processed_at": T0})


def test_what_is_not_a_code_or_an_id_stays_out_of_a_fact() -> None:
    created = fact(StatusChanged(previous=S.TICKET_PENDING, status=S.TICKET_CREATED, reason="TCK-2025-000001"))
    assert (created.name, created.reason_code) == (FactName.STATUS_CHANGED, None)
    rated = fact(ConversationRated(score=5, comment="Bravissimi, Maria"))
    assert (rated.score, rated.has_comment) == (5, True)
    assert "Maria" not in rated.model_dump_json()
    notice = MessagePosted(message_id=uuid.uuid4(), seq=3, sender=Sender.SYSTEM, text="Attendi", status=S.QUEUED)
    assert domain.fact_of(envelope(notice), T0, 0.45) is None
    by_customer = TicketUpdated(
        ticket_id=TICKET,
        ticket_number="TCK-2025-000001",
        status=TicketStatus.OPEN,
        previous_status=TicketStatus.WAITING_CUSTOMER,
        priority="normal",
        changed_by="customer",
    )
    assert (fact(by_customer).actor, fact(by_customer).operator_id) == ("customer", None)
    by_anna = by_customer.model_copy(update={"changed_by": "anna"})
    assert (fact(by_anna).actor, fact(by_anna).operator_id) == ("operator", "anna")


def test_a_knowledge_gap_is_an_unknown_answer_low_confidence_or_a_weak_answer_without_an_offer() -> None:
    assert domain.is_kb_gap(reply(0.1, HandoffReason.UNKNOWN_ANSWER), 0.45)
    assert domain.is_kb_gap(reply(0.3, HandoffReason.LOW_CONFIDENCE), 0.45)
    assert domain.is_kb_gap(reply(0.3), 0.45)
    assert not domain.is_kb_gap(reply(0.9), 0.45)
    assert not domain.is_kb_gap(reply(1.0, HandoffReason.CUSTOMER_REQUEST), 0.45)
    assert not domain.is_kb_gap(reply(0.2, HandoffReason.SENSITIVE_TOPIC), 0.45), "answered by policy, not missing"


def customer(seq: int) -> MessagePosted:
    return MessagePosted(message_id=uuid.uuid4(), seq=seq, sender=Sender.CUSTOMER, text="?", status=S.AI)


def ai(seq: int, status: S = S.AI) -> MessagePosted:
    return MessagePosted(message_id=uuid.uuid4(), seq=seq, sender=Sender.AI, text="!", status=status)


def operator_message(seq: int, operator_id: str) -> MessagePosted:
    return MessagePosted(
        message_id=uuid.uuid4(),
        seq=seq,
        sender=Sender.OPERATOR,
        text="!",
        status=S.WITH_OPERATOR,
        operator_id=operator_id,
    )


def handed_to_anna_and_resolved(*meanwhile: AnalyticsFact) -> list[AnalyticsFact]:
    """A conversation offered to a person, queued, taken by anna who answers and closes it as
    resolved at 200 s; `meanwhile`, facts between her answer and the close."""
    return [
        fact(customer(1), 10),
        fact(ai(2, S.HANDOFF_OFFERED), 12),
        fact(StatusChanged(previous=S.HANDOFF_OFFERED, status=S.QUEUED), 20),
        fact(OperatorAssigned(operator_id="anna", display_name="Anna"), 80),
        fact(operator_message(3, "anna"), 95),
        *meanwhile,
        fact(StatusChanged(previous=S.WITH_OPERATOR, status=S.RESOLVED, operator_id="anna"), 200),
    ]


def test_a_summary_is_the_same_whatever_order_its_facts_arrive_in() -> None:
    facts = handed_to_anna_and_resolved()
    summaries = {domain.summarise_conversation(order) for order in itertools.permutations(facts)}
    assert len(summaries) == 1
    (summary,) = summaries
    assert summary.closed_status == S.RESOLVED
    assert summary.sessions == (
        domain.OperatorSession("anna", facts[3].occurred_at, facts[4].occurred_at, facts[5].occurred_at),
    )
    assert (summary.sessions[0].first_response_seconds, summary.sessions[0].handle_seconds) == (15, 120)


def test_folding_new_facts_into_a_stored_fold_equals_summarising_them_all_and_an_older_fact_refuses() -> None:
    facts = handed_to_anna_and_resolved(fact(customer(4), 120))
    expected = domain.summarise_conversation(facts)
    for chunks in ([facts[:1], facts[1:4], facts[4:]], [[f] for f in facts], [facts[:5], facts[5:]]):
        fold: domain.ConversationFold | None = domain.ConversationFold()
        for chunk in chunks:
            assert fold is not None
            fold = domain.extend_conversation(fold, reversed(chunk))  # any order within a chunk
        assert fold is not None
        assert fold.summary == expected
        assert fold.through == domain.time_key(facts[-1])

    partial = domain.extend_conversation(domain.ConversationFold(), facts[2:])
    assert partial is not None
    assert domain.extend_conversation(partial, [facts[0]]) is None, "a late fact needs every fact again"
    assert domain.extend_conversation(partial, [facts[-1]]) is None, "so does one folded in before"
    assert domain.extend_conversation(replace(partial, version=0), []) is None, "a fold of other rules"

    # A late fact that only marks activity (the reply drafted before its answer was posted) is
    # folded in all the same, with the summary all the facts make.
    drafted = fact(reply(0.9), 11)
    late = domain.extend_conversation(domain.ConversationFold(), [*facts[:2], facts[5]])
    assert late is not None
    late = domain.extend_conversation(late, [drafted, facts[6]])
    assert late is not None
    assert late.summary == domain.summarise_conversation([*facts[:2], facts[5], drafted, facts[6]])


def test_a_transfer_ends_one_operator_turn_and_starts_the_next_and_the_rating_goes_to_the_last() -> None:
    summary = domain.summarise_conversation(
        [
            fact(OperatorAssigned(operator_id="anna", display_name="Anna"), 0),
            fact(operator_message(2, "anna"), 10),
            fact(OperatorReleased(operator_id="anna", reason="transferred"), 60),
            fact(OperatorAssigned(operator_id="bruno", display_name="Bruno", via="transfer"), 60.5),
            fact(operator_message(3, "anna"), 70),  # anna's, after her turn: not bruno's first response
            fact(operator_message(4, "bruno"), 90),
            fact(StatusChanged(previous=S.WITH_OPERATOR, status=S.QUEUED), 100),
            fact(ConversationRated(score=3), 300),
        ]
    )
    assert [(s.operator_id, s.first_response_seconds, s.handle_seconds) for s in summary.sessions] == [
        ("anna", 10, 60),
        ("bruno", 29.5, 39.5),
    ]
    assert (summary.last_operator_id, summary.rating) == ("bruno", 3)


def test_the_ai_resolves_only_when_its_last_word_was_an_answer_and_nobody_else_was_asked() -> None:
    answered = [fact(customer(1), 0), fact(ai(2), 1)]
    assert domain.summarise_conversation(answered).ai_resolution_candidate
    offered = [fact(customer(1), 0), fact(ai(2, S.HANDOFF_OFFERED), 1)]
    assert not domain.summarise_conversation(offered).ai_resolution_candidate
    asked_again = [*answered, fact(customer(3), 5)]
    assert domain.summarise_conversation(asked_again).unanswered
    assert not domain.summarise_conversation(asked_again).ai_resolution_candidate
    ticket = [*answered, fact(StatusChanged(previous=S.AI, status=S.TICKET_PENDING), 9)]
    assert not domain.summarise_conversation(ticket).ai_resolution_candidate
    left = [*answered, fact(StatusChanged(previous=S.QUEUED, status=S.AI, reason="customer_left_queue"), 9)]
    assert domain.summarise_conversation(left).left_the_queue
    assert not domain.summarise_conversation(answered).answer_confirmed, "no answer feedback exists yet"


def test_a_ticket_resolved_then_reopened_is_not_resolved_and_a_breach_is_remembered() -> None:
    def updated(status: TicketStatus, previous: TicketStatus) -> TicketUpdated:
        return TicketUpdated(
            ticket_id=TICKET,
            ticket_number="TCK-2025-000001",
            status=status,
            previous_status=previous,
            priority="high",
            changed_by="anna",
            resolution_due=T0 + timedelta(days=2),
        )

    opened = TicketOpened(
        ticket_id=TICKET,
        ticket_number="TCK-2025-000001",
        contact={"name": "Maria", "email": "maria@example.com"},
        first_response_due=T0 + timedelta(hours=4),
        resolution_due=T0 + timedelta(days=1),
    )
    reply_ = TicketReplyPosted(
        ticket_id=TICKET, ticket_number="TCK-2025-000001", reply_id=uuid.uuid4(), author="operator", text="Ciao"
    )
    breach = SlaBreached(ticket_id=TICKET, ticket_number="TCK-2025-000001", clock=SlaClock.FIRST_RESPONSE, due_at=T0)
    facts = [
        fact(opened, 0),
        fact(breach, 14_400),
        fact(reply_, 15_000),
        fact(updated(TicketStatus.RESOLVED, TicketStatus.IN_PROGRESS), 16_000),
        fact(updated(TicketStatus.OPEN, TicketStatus.RESOLVED), 17_000),
    ]
    summary = domain.summarise_ticket(reversed(facts))
    assert (summary.opened_at, summary.first_response_at) == (T0, T0 + timedelta(seconds=15_000))
    assert (summary.status, summary.resolved_at, summary.priority) == (TicketStatus.OPEN, None, "high")
    assert summary.resolution_due == T0 + timedelta(days=2), "the deadline as the latest change left it"
    assert summary.breached == {SlaClock.FIRST_RESPONSE}
    again = domain.summarise_ticket([*facts, fact(updated(TicketStatus.RESOLVED, TicketStatus.OPEN), 18_000)])
    assert again.resolved_at == T0 + timedelta(seconds=18_000)


def question(text: str, minute: int) -> domain.Question:
    return domain.Question(uuid.uuid4(), uuid.uuid4(), T0 + timedelta(minutes=minute), text)


def test_similar_questions_group_together_the_most_frequent_first() -> None:
    questions = [
        question("Avete un parcheggio per camper?", 1),
        question("Posso portare il cane?", 2),
        question("posso portare il mio cane???", 3),
        question("POSSO PORTARE IL CANE", 4),
        question("c'è un parcheggio per i camper?", 5),
        question("Quanto costa il biglietto ridotto?", 6),
    ]
    groups = domain.group_questions(reversed(questions), 75)
    assert [(g.representative, len(g.questions)) for g in groups] == [
        ("Posso portare il cane?", 3),
        ("Avete un parcheggio per camper?", 2),
        ("Quanto costa il biglietto ridotto?", 1),
    ]
    assert groups[0].examples(2) == ["Posso portare il cane?", "posso portare il mio cane???"]
    # At 100 only the same words group: case and punctuation aside.
    assert len(domain.group_questions(questions, 100)) == 5


def test_a_csv_cell_never_starts_a_formula() -> None:
    assert domain.flat_rows([{"question": "=HYPERLINK(1)", "ids": ["a", "b"], "n": 2}]) == [
        {"question": "'=HYPERLINK(1)", "ids": "a | b", "n": 2}
    ]
