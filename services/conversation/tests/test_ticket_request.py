"""The ticket request the conversation service emits, against the real PostgreSQL (migrated schema).

The handlers are applied in one transaction per batch, as the idempotent consumer applies them,
without Kafka: what they emit is read back from the outbox.
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import TYPE_CHECKING

from contracts.common import (
    TRANSCRIPT_EXCERPT_LINE_CHARS,
    TRANSCRIPT_EXCERPT_LINES,
    ContactDetails,
    ConversationStatus,
    Sender,
)
from contracts.envelope import utc_now
from contracts.events import (
    AiReplyGenerated,
    MessagePosted,
    OpenTicket,
    PostCustomerMessage,
    StartConversation,
    StatusChanged,
    SubmitTicketDetails,
    TicketOpened,
)

if TYPE_CHECKING:
    from conftest import HandlerHarness


async def test_a_ticket_request_carries_the_end_of_the_transcript_and_where_to_read_all_of_it(
    conversation_handlers: HandlerHarness,
) -> None:
    command = conversation_handlers.command
    cid = uuid.uuid4()
    texts = [f"messaggio {n}" for n in range(1, 25)] + ["lungo " * 100]
    await conversation_handlers.apply(command(StartConversation(locale="it"), cid))
    await conversation_handlers.apply(
        *(
            command(PostCustomerMessage(message_id=uuid.uuid4(), client_message_id=f"m-{n}", text=text), cid)
            for n, text in enumerate(texts)
        )
    )
    details = SubmitTicketDetails(contact=ContactDetails(name="Anna", email="anna@example.com"), message="rimborso")
    await conversation_handlers.apply(command(details, cid))
    await conversation_handlers.apply(command(details, cid))  # submitted again

    first, second = await conversation_handlers.emitted(OpenTicket)
    ticket: OpenTicket = first.payload
    assert ticket.idempotency_key == second.payload.idempotency_key == uuid.uuid5(cid, "ticket"), "one ticket"
    assert ticket.message == "rimborso"
    assert ticket.language == "it"
    assert ticket.subject == "", "the message says what the customer wants: the tickets service takes it"
    assert ticket.handoff_reason is None
    assert not ticket.upset
    excerpt = ticket.transcript
    assert excerpt is not None
    assert excerpt.total_messages == len(texts)
    assert excerpt.transcript_url == f"/internal/conversations/{cid}/messages"
    assert [line.seq for line in excerpt.lines] == list(
        range(len(texts) - TRANSCRIPT_EXCERPT_LINES + 1, len(texts) + 1)
    )
    assert [line.text for line in excerpt.lines[:-1]] == texts[-TRANSCRIPT_EXCERPT_LINES:-1]
    last = excerpt.lines[-1].text
    assert len(last) <= TRANSCRIPT_EXCERPT_LINE_CHARS
    assert last.endswith("…")
    assert texts[-1].startswith(last[:-1])


async def test_a_ticket_request_says_the_customer_sounded_upset(conversation_handlers: HandlerHarness) -> None:
    command = conversation_handlers.command
    cid = uuid.uuid4()
    question = uuid.uuid4()
    await conversation_handlers.apply(command(StartConversation(locale="it"), cid))
    said = PostCustomerMessage(message_id=question, client_message_id="m-1", text="Sono furioso, a che ora aprite?")
    await conversation_handlers.apply(command(said, cid))
    reply = AiReplyGenerated(
        in_reply_to=question, reply_id=uuid.uuid4(), text="Alle 17:30.", language="it", confidence=0.9, mode="retrieval"
    )
    # Answered, no person offered, but the assistant heard the customer vent.
    await conversation_handlers.apply(command(reply.model_copy(update={"upset": True}), cid))
    details = SubmitTicketDetails(contact=ContactDetails(name="Anna", email="anna@example.com"))
    await conversation_handlers.apply(command(details, cid))

    (opened,) = await conversation_handlers.emitted(OpenTicket)
    assert (opened.payload.handoff_reason, opened.payload.upset) == (None, True)
    assert opened.payload.subject == "Sono furioso, a che ora aprite?", "no message: what the customer first asked"


async def test_the_customer_is_told_the_ticket_number_and_when_to_expect_an_answer(
    conversation_handlers: HandlerHarness,
) -> None:
    command = conversation_handlers.command
    cid = uuid.uuid4()
    await conversation_handlers.apply(command(StartConversation(locale="en"), cid))
    await conversation_handlers.apply(
        command(PostCustomerMessage(message_id=uuid.uuid4(), client_message_id="m-1", text="A refund?"), cid)
    )
    contact = ContactDetails(name="Anna", email="anna@example.com")
    await conversation_handlers.apply(command(SubmitTicketDetails(contact=contact), cid))
    opened_at = utc_now()
    opened = TicketOpened(
        ticket_id=uuid.uuid4(),
        ticket_number="TCK-2026-000042",
        contact=contact,
        first_response_due=opened_at + timedelta(hours=2, minutes=30),
    )
    envelope = command(opened, cid).model_copy(update={"occurred_at": opened_at})
    await conversation_handlers.apply(envelope)
    await conversation_handlers.apply(envelope)  # delivered twice: told once

    statuses = [e.payload.status for e in await conversation_handlers.emitted(StatusChanged)]
    assert statuses[-1] == ConversationStatus.TICKET_CREATED
    posted = await conversation_handlers.emitted(MessagePosted)
    notices = [e.payload for e in posted if e.payload.sender == Sender.SYSTEM]
    assert [n.text for n in notices] == ["We opened request TCK-2026-000042. We will answer you within 3 hours."]
