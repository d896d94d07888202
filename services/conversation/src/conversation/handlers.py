"""Subscribers of the conversation service: one function per command or event.

Every handler runs inside the idempotent consumer's transaction (servicekit.consumer), so the
rows it writes and the events it stages in the outbox commit together, exactly once.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from contracts import Envelope
from contracts.common import TRANSCRIPT_EXCERPT_LINES, Sender, TranscriptExcerpt, TranscriptLine
from contracts.common import ConversationStatus as S
from contracts.events import (
    AiReplyGenerated,
    ChooseHandoff,
    CommandRejected,
    ConversationRated,
    ConversationStarted,
    HandoffRequested,
    MessagePosted,
    OpenTicket,
    PostCustomerMessage,
    RateConversation,
    StartConversation,
    StatusChanged,
    SubmitTicketDetails,
    TicketOpened,
)
from conversation.domain import (
    ACCEPTS_CUSTOMER_MESSAGES,
    IllegalTransitionError,
    status_after_customer_message,
    transition,
)
from conversation.store import Batch, ConversationState, NewMessage, last_messages, load_batch
from servicekit.consumer import EventConsumer
from servicekit.logs import get_logger
from servicekit.outgoing import Outgoing

log = get_logger(__name__)

TICKET_CREATED_TEXT = {
    "it": "Abbiamo aperto la richiesta {number}. Ti contatteremo al più presto.",
    "en": "We opened request {number}. We will get back to you as soon as possible.",
}


def post_message(
    out: Outgoing, conversation: ConversationState, message_id: uuid.UUID, sender: Sender, text: str, **extra: Any
) -> NewMessage:
    """Appends a message at the next sequence number (the caller holds the row lock)."""
    conversation.last_seq += 1
    message = NewMessage(
        id=message_id,
        conversation_id=conversation.id,
        tenant_id=conversation.tenant_id,
        seq=conversation.last_seq,
        sender=sender.value,
        text=text,
        client_message_id=extra.get("client_message_id"),
        operator_id=extra.get("operator_id"),
        language=extra.get("language"),
        confidence=extra.get("confidence"),
        sources=[s.model_dump(mode="json") for s in extra.get("sources", [])],
        smart_actions=[a.model_dump(mode="json") for a in extra.get("smart_actions", [])],
    )
    Batch.of(out.session).add_message(message)
    out.emit(
        MessagePosted(
            message_id=message_id,
            seq=message.seq,
            sender=sender,
            text=text,
            status=conversation.state,
            **{k: v for k, v in extra.items() if v is not None},
        ),
        conversation.id,
    )
    return message


def change_status(
    out: Outgoing, conversation: ConversationState, target: S, reason: str = "", operator_id: str | None = None
) -> None:
    previous = conversation.state
    if previous == target:
        return
    conversation.status = transition(previous, target).value
    out.emit(StatusChanged(previous=previous, status=target, reason=reason, operator_id=operator_id), conversation.id)


def move_or_reject(out: Outgoing, conversation: ConversationState, target: S, reason: str) -> bool:
    """Moves the conversation, or answers the command with `command_rejected` when the state
    machine does not allow it; tells which happened."""
    try:
        change_status(out, conversation, target, reason)
    except IllegalTransitionError as error:
        reject(out, "illegal_transition", str(error))
        return False
    return True


def reject(out: Outgoing, code: str, message: str) -> None:
    log.info("command rejected", code=code, reason=message)
    out.emit(
        CommandRejected(command_type=out.cause.type, command_event_id=out.cause.event_id, code=code, message=message)
    )


def message_it_may_add(envelope: Envelope[Any]) -> uuid.UUID | None:
    """The id of the message an envelope's handler would post, known before it runs."""
    payload = envelope.payload
    if isinstance(payload, PostCustomerMessage):
        return payload.message_id
    if isinstance(payload, AiReplyGenerated):
        return payload.reply_id
    if isinstance(payload, TicketOpened):
        return ticket_message_id(payload)
    return None


def ticket_message_id(ticket: TicketOpened) -> uuid.UUID:
    return uuid.uuid5(ticket.ticket_id, "ticket-created")


def register(consumer: EventConsumer) -> None:
    @consumer.prepare
    async def load(envelopes: list[Envelope[Any]], session: AsyncSession) -> None:
        await load_batch(
            session,
            conversation_ids={e.conversation_id for e in envelopes if e.conversation_id is not None},
            message_ids={m for e in envelopes if (m := message_it_may_add(e)) is not None},
            client_message_ids={
                e.payload.client_message_id for e in envelopes if isinstance(e.payload, PostCustomerMessage)
            },
        )

    @consumer.finish
    async def write(envelopes: list[Envelope[Any]], session: AsyncSession) -> None:
        await Batch.of(session).write(session)

    @consumer.on(StartConversation)
    async def on_start(envelope: Envelope[StartConversation], session: AsyncSession) -> None:
        assert envelope.conversation_id is not None
        out = Outgoing(session, envelope)
        batch = Batch.of(session)
        if envelope.conversation_id not in batch.conversations:
            batch.add_conversation(
                ConversationState(
                    id=envelope.conversation_id,
                    tenant_id=envelope.tenant_id,
                    status=S.AI.value,
                    channel=envelope.payload.channel,
                    locale=envelope.payload.locale,
                )
            )
            out.emit(ConversationStarted(channel=envelope.payload.channel, locale=envelope.payload.locale))
        out.flush()

    @consumer.on(PostCustomerMessage)
    async def on_customer_message(envelope: Envelope[PostCustomerMessage], session: AsyncSession) -> None:
        out = Outgoing(session, envelope)
        conversation = owned_conversation(out, envelope)
        payload = envelope.payload
        if conversation is None:
            pass
        elif Batch.of(session).has_client_message(conversation.id, payload.client_message_id):
            log.info("customer message already posted", client_message_id=payload.client_message_id)
        elif conversation.state not in ACCEPTS_CUSTOMER_MESSAGES:
            reject(out, "conversation_closed", f"the conversation is {conversation.status}")
        else:
            change_status(out, conversation, status_after_customer_message(conversation.state), "customer_message")
            conversation.last_customer_message_at = envelope.occurred_at
            post_message(
                out,
                conversation,
                payload.message_id,
                Sender.CUSTOMER,
                payload.text,
                client_message_id=payload.client_message_id,
            )
        out.flush()

    @consumer.on(AiReplyGenerated)
    async def on_ai_reply(envelope: Envelope[AiReplyGenerated], session: AsyncSession) -> None:
        out = Outgoing(session, envelope)
        conversation = owned_conversation(out, envelope, report=False)
        reply = envelope.payload
        if conversation is None or reply.reply_id in Batch.of(session).message_ids:
            return
        if conversation.state != S.AI:
            # An operator or a ticket took over while the assistant was thinking: drop the reply.
            log.info("AI reply dropped", status=conversation.status)
            return
        if reply.handoff_reason is not None:
            conversation.handoff_reason = reply.handoff_reason.value
            change_status(out, conversation, S.HANDOFF_OFFERED, reply.handoff_reason.value)
        post_message(
            out,
            conversation,
            reply.reply_id,
            Sender.AI,
            reply.text,
            language=reply.language,
            confidence=reply.confidence,
            sources=reply.sources,
            smart_actions=reply.smart_actions,
        )
        out.flush()

    @consumer.on(ChooseHandoff)
    async def on_handoff_choice(envelope: Envelope[ChooseHandoff], session: AsyncSession) -> None:
        out = Outgoing(session, envelope)
        conversation = owned_conversation(out, envelope)
        if conversation is None:
            pass
        elif envelope.payload.choice == "request_operator":
            if move_or_reject(out, conversation, S.QUEUED, "customer_accepted_handoff"):
                reason = conversation.handoff_reason or "customer_request"
                out.emit(HandoffRequested(reason=reason, language=conversation.locale))
        else:
            move_or_reject(out, conversation, S.AI, "customer_continued_with_ai")
        out.flush()

    @consumer.on(SubmitTicketDetails)
    async def on_ticket_details(envelope: Envelope[SubmitTicketDetails], session: AsyncSession) -> None:
        out = Outgoing(session, envelope)
        conversation = owned_conversation(out, envelope)
        moved = conversation is not None and move_or_reject(
            out, conversation, S.TICKET_PENDING, "customer_left_contact_details"
        )
        if conversation is not None and moved:
            await Batch.of(session).write(session)  # the excerpt includes this batch's messages
            lines = await last_messages(session, conversation.id, TRANSCRIPT_EXCERPT_LINES)
            out.emit(
                OpenTicket(
                    contact=envelope.payload.contact,
                    message=envelope.payload.message,
                    language=conversation.locale,
                    # Details submitted twice (a retry, a second click) must open one ticket.
                    idempotency_key=uuid.uuid5(conversation.id, "ticket"),
                    transcript=TranscriptExcerpt(
                        lines=[
                            TranscriptLine(seq=m.seq, sender=Sender(m.sender), text=TranscriptLine.excerpt_text(m.text))
                            for m in lines
                        ],
                        total_messages=conversation.last_seq,  # the sequence is gap-free from 1
                        transcript_url=TranscriptExcerpt.url_of(conversation.id),
                    ),
                )
            )
        out.flush()

    @consumer.on(TicketOpened)
    async def on_ticket_opened(envelope: Envelope[TicketOpened], session: AsyncSession) -> None:
        out = Outgoing(session, envelope)
        conversation = owned_conversation(out, envelope, report=False)
        if conversation is not None and conversation.state == S.TICKET_PENDING:
            change_status(out, conversation, S.TICKET_CREATED, envelope.payload.ticket_number)
            template = TICKET_CREATED_TEXT.get(conversation.locale or "it", TICKET_CREATED_TEXT["it"])
            message_id = ticket_message_id(envelope.payload)
            post_message(
                out, conversation, message_id, Sender.SYSTEM, template.format(number=envelope.payload.ticket_number)
            )
        out.flush()

    @consumer.on(RateConversation)
    async def on_rating(envelope: Envelope[RateConversation], session: AsyncSession) -> None:
        out = Outgoing(session, envelope)
        conversation = owned_conversation(out, envelope)
        if conversation is not None:
            conversation.rating_score = envelope.payload.score
            conversation.rating_comment = envelope.payload.comment
            out.emit(ConversationRated(score=envelope.payload.score, comment=envelope.payload.comment))
        out.flush()


def owned_conversation(out: Outgoing, envelope: Envelope[Any], report: bool = True) -> ConversationState | None:
    """The envelope's conversation (locked by `load_batch`) if it exists and belongs to the
    envelope's tenant."""
    conversation = None
    if envelope.conversation_id is not None:
        conversation = Batch.of(out.session).conversations.get(envelope.conversation_id)
    if conversation is not None and conversation.tenant_id != envelope.tenant_id:
        log.warning("tenant mismatch", conversation_tenant=conversation.tenant_id)
        conversation = None
    if conversation is None and report:
        reject(out, "unknown_conversation", f"conversation {envelope.conversation_id} does not exist")
    return conversation
