"""Subscribers of the conversation service: one function per command or event.

Every handler runs inside the idempotent consumer's transaction (servicekit.consumer), so the
rows it writes and the events it stages in the outbox commit together, exactly once.
"""

from __future__ import annotations

import re
import uuid
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from contracts import Envelope, new_envelope
from contracts.common import (
    TRANSCRIPT_EXCERPT_LINES,
    HandoffChoice,
    HandoffReason,
    Sender,
    SmartAction,
    SmartActionType,
    TranscriptExcerpt,
    TranscriptLine,
)
from contracts.common import ConversationStatus as S
from contracts.envelope import utc_now
from contracts.events import (
    AddInternalNote,
    AiReplyGenerated,
    AnswerFeedbackGiven,
    CheckInactivity,
    ChooseHandoff,
    CloseConversation,
    CommandRejected,
    ConversationQueued,
    ConversationRated,
    ConversationStarted,
    GiveAnswerFeedback,
    HandoffRequested,
    MessagePosted,
    NoOperatorAvailable,
    NoteAdded,
    OfferMade,
    OpenTicket,
    OperatorAssigned,
    OperatorReleased,
    PostCustomerMessage,
    PostOperatorMessage,
    QueuePositionChanged,
    QueuePositionUpdated,
    RateConversation,
    ReleaseConversation,
    StartConversation,
    StatusChanged,
    SubmitTicketDetails,
    TicketOpened,
    TransferConversation,
)
from conversation.config import Settings
from conversation.domain import (
    ACCEPTS_CUSTOMER_MESSAGES,
    CLOSED,
    OWNED_BY_OPERATORS,
    WITH_AN_OPERATOR,
    IllegalTransitionError,
    status_after_customer_message,
    transition,
)
from conversation.metrics import AI_REPLIES_DROPPED
from conversation.notices import Notice, notice_text, queued_text, ticket_created_text
from conversation.store import (
    AiReply,
    AnswerFeedback,
    Batch,
    ConversationState,
    InternalNote,
    Message,
    NewMessage,
    first_customer_message,
    is_upset,
    last_messages,
    load_batch,
    question_before,
    queue_priority,
)
from servicekit import timers
from servicekit.consumer import EventConsumer
from servicekit.logs import get_logger
from servicekit.outgoing import Outgoing

log = get_logger(__name__)

HANDOFF_ACTIONS = frozenset({SmartActionType.REQUEST_OPERATOR, SmartActionType.CONTINUE_AI})
SUPERVISOR_ROLES = frozenset({"supervisor", "admin"})
OperatorCommand = PostOperatorMessage | AddInternalNote | TransferConversation | CloseConversation | ReleaseConversation


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
        handoff_reason=extra["handoff_reason"].value if extra.get("handoff_reason") else None,
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
    if target == S.QUEUED:
        conversation.offer_notice_posted = False  # a new wait for an operator: its first offer is told
    out.emit(StatusChanged(previous=previous, status=target, reason=reason, operator_id=operator_id), conversation.id)


def offer_a_person(out: Outgoing, conversation: ConversationState, reason: HandoffReason) -> None:
    """The YES/NO handoff offer: HANDOFF_OFFERED with its reason, which the customer's YES passes
    on to routing. The caller posts the message that carries the two buttons."""
    conversation.handoff_reason = reason.value
    change_status(out, conversation, S.HANDOFF_OFFERED, reason.value)


def handoff_buttons(locale: str | None) -> list[SmartAction]:
    return [
        SmartAction(type=SmartActionType.REQUEST_OPERATOR, label=notice_text(Notice.OPERATOR_BUTTON, locale)),
        SmartAction(type=SmartActionType.CONTINUE_AI, label=notice_text(Notice.CONTINUE_BUTTON, locale)),
    ]


def move_or_reject(
    out: Outgoing, conversation: ConversationState, target: S, reason: str, operator_id: str | None = None
) -> bool:
    """Moves the conversation, or answers the command with `command_rejected` when the state
    machine does not allow it; tells which happened."""
    try:
        change_status(out, conversation, target, reason, operator_id)
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
    if isinstance(payload, PostOperatorMessage):
        return payload.message_id
    if isinstance(payload, OfferMade):
        return offer_notice_id(payload)
    return None


def ticket_message_id(ticket: TicketOpened) -> uuid.UUID:
    return uuid.uuid5(ticket.ticket_id, "ticket-created")


def offer_notice_id(offer: OfferMade) -> uuid.UUID:
    return uuid.uuid5(offer.offer_id, "operator-offered")


def notify(out: Outgoing, conversation: ConversationState, purpose: str, text: str) -> None:
    """Tells the customer what is happening, as a system message in the conversation. Its id
    comes from the cause and a purpose, so applying the cause again makes the same message."""
    post_message(out, conversation, uuid.uuid5(out.cause.event_id, purpose), Sender.SYSTEM, text)


def inactivity_timer(conversation: ConversationState) -> str:
    return f"inactivity:{conversation.id}"


def check_inactivity_at(out: Outgoing, conversation: ConversationState, since: datetime, due_at: datetime) -> None:
    """(Re)schedules the check of the customer's silence since `since`: one timer per
    conversation, so each customer message replaces the previous one."""
    envelope = new_envelope(
        CheckInactivity(since=since),
        tenant_id=conversation.tenant_id,
        conversation_id=conversation.id,
        causation=out.cause,
    )
    timers.schedule(out.session, inactivity_timer(conversation), due_at, envelope)


def may_act(conversation: ConversationState, command: OperatorCommand) -> bool:
    """The assigned operator acts on their conversation; a supervisor or admin on any of the tenant's."""
    return command.role in SUPERVISOR_ROLES or conversation.operator_id == command.operator_id


_NOT_AN_INTENT = re.compile(r"[^a-z0-9_-]+")


def intent_of(reply: AiReply | None) -> str | None:
    """What the customer asked about, as a routing skill: the knowledge-base article the AI's last
    answer was grounded in (AI replies carry no explicit intent yet)."""
    if reply is None or not reply.sources:
        return None
    article_id = str(reply.sources[0].get("article_id", ""))
    return _NOT_AN_INTENT.sub("-", article_id.lower()).strip("-")[:40] or None


def register(consumer: EventConsumer, settings: Settings | None = None) -> None:
    settings = settings or Settings()
    inactivity = timedelta(minutes=settings.inactivity_minutes)
    abandon_after = timedelta(minutes=settings.abandon_after_minutes)

    @consumer.prepare
    async def load(envelopes: list[Envelope[Any]], session: AsyncSession) -> None:
        await load_batch(
            session,
            conversation_ids={e.conversation_id for e in envelopes if e.conversation_id is not None},
            message_ids={m for e in envelopes if (m := message_it_may_add(e)) is not None},
            client_message_ids={
                e.payload.client_message_id for e in envelopes if isinstance(e.payload, PostCustomerMessage)
            },
            asking_for_a_person={
                e.conversation_id
                for e in envelopes
                if isinstance(e.payload, ChooseHandoff)
                and e.payload.choice == HandoffChoice.REQUEST_OPERATOR
                and e.conversation_id is not None
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
            conversation.handoff_offer_blocked = False  # a new message: the AI may offer a person again
            post_message(
                out,
                conversation,
                payload.message_id,
                Sender.CUSTOMER,
                payload.text,
                client_message_id=payload.client_message_id,
            )
            if conversation.state in WITH_AN_OPERATOR:
                check_inactivity_at(out, conversation, envelope.occurred_at, envelope.occurred_at + inactivity)
        out.flush()

    @consumer.on(AiReplyGenerated)
    async def on_ai_reply(envelope: Envelope[AiReplyGenerated], session: AsyncSession) -> None:
        out = Outgoing(session, envelope)
        conversation = owned_conversation(out, envelope, report=False)
        reply = envelope.payload
        if conversation is None or reply.reply_id in Batch.of(session).message_ids:
            return
        # What the customer said, whether or not the reply is still wanted.
        if reply.upset:
            conversation.customer_upset = True
        if reply.urgent:
            conversation.customer_in_danger = True
        if reply.language != conversation.locale:
            # The language the customer writes in, as the assistant read it, not the one their
            # browser named: the notices, the handoff buttons and a ticket's emails follow it.
            conversation.locale = reply.language
        if conversation.state != S.AI:
            # Checked against the state now, under the row lock, not when the reply was asked
            # for: an operator, the queue or a ticket took over while the assistant was thinking.
            AI_REPLIES_DROPPED.labels(conversation.status).inc()
            log.info("AI reply dropped", status=conversation.status)
            return
        offer, smart_actions = reply.handoff_reason, reply.smart_actions
        if offer is not None and conversation.handoff_offer_blocked:
            # The reply answers what was said before the conversation came back to the AI.
            offer, smart_actions = None, [a for a in smart_actions if a.type not in HANDOFF_ACTIONS]
        if offer is not None:
            offer_a_person(out, conversation, offer)
        post_message(
            out,
            conversation,
            reply.reply_id,
            Sender.AI,
            reply.text,
            language=reply.language,
            confidence=reply.confidence,
            handoff_reason=offer,
            sources=reply.sources,
            smart_actions=smart_actions,
        )
        out.flush()

    @consumer.on(ChooseHandoff)
    async def on_handoff_choice(envelope: Envelope[ChooseHandoff], session: AsyncSession) -> None:
        out = Outgoing(session, envelope)
        conversation = owned_conversation(out, envelope)
        if conversation is None:
            pass
        elif envelope.payload.choice == HandoffChoice.REQUEST_OPERATOR:
            await request_operator(out, conversation)
        elif conversation.state == S.QUEUED:
            if move_or_reject(out, conversation, S.AI, "customer_left_queue"):
                conversation.handoff_offer_blocked = True
                notify(out, conversation, "left-queue", notice_text(Notice.LEFT_QUEUE, conversation.locale))
        elif conversation.state == S.HANDOFF_OFFERED:
            if move_or_reject(out, conversation, S.AI, "customer_continued_with_ai"):
                conversation.handoff_offer_blocked = True
        else:
            move_or_reject(out, conversation, S.AI, "customer_continued_with_ai")
        out.flush()

    async def request_operator(out: Outgoing, conversation: ConversationState) -> None:
        """The customer wants a person: after the AI's offer, or at any time from the widget."""
        if conversation.state in OWNED_BY_OPERATORS:
            log.info("operator already requested", status=conversation.status)  # a second click
            return
        offered = conversation.state == S.HANDOFF_OFFERED
        if not move_or_reject(out, conversation, S.QUEUED, "customer_accepted_handoff"):
            return
        reason = HandoffReason.CUSTOMER_REQUEST
        if offered and conversation.handoff_reason is not None:
            reason = HandoffReason(conversation.handoff_reason)
        conversation.handoff_reason = reason.value
        last_reply = Batch.of(out.session).last_ai_replies.get(conversation.id)
        out.emit(
            HandoffRequested(
                reason=reason,
                language=conversation.locale,
                confidence=last_reply.confidence if last_reply is not None else None,
                intent=intent_of(last_reply),
                priority=queue_priority(conversation),
            )
        )
        notify(out, conversation, "connecting", notice_text(Notice.CONNECTING, conversation.locale))

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
            first_question = await first_customer_message(session, conversation.id)
            reason = HandoffReason(conversation.handoff_reason) if conversation.handoff_reason else None
            out.emit(
                OpenTicket(
                    contact=envelope.payload.contact,
                    message=envelope.payload.message,
                    language=conversation.locale,
                    # What the customer wants and why a person was offered: the tickets service
                    # proposes the priority from them. The form's message says what the customer
                    # wants better than the chat's first question (often one the AI answered), so
                    # with one the tickets service takes the subject from it.
                    subject=(
                        TranscriptLine.excerpt_text(first_question.text)
                        if first_question and not envelope.payload.message
                        else ""
                    ),
                    handoff_reason=reason,
                    upset=is_upset(conversation),
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
            ticket = envelope.payload
            due = ticket.first_response_due
            promised = (due - envelope.occurred_at).total_seconds() if due else None
            text = ticket_created_text(conversation.locale, ticket.ticket_number, promised)
            post_message(out, conversation, ticket_message_id(envelope.payload), Sender.SYSTEM, text)
        out.flush()

    @consumer.on(RateConversation)
    async def on_rating(envelope: Envelope[RateConversation], session: AsyncSession) -> None:
        out = Outgoing(session, envelope)
        conversation = owned_conversation(out, envelope)
        if conversation is None:
            pass
        elif conversation.state not in CLOSED:
            reject(out, "not_closed", f"a conversation is rated after it is closed; it is {conversation.status}")
        elif conversation.rating_score is not None:
            reject(out, "already_rated", "the conversation has been rated already")
        else:
            conversation.rating_score = envelope.payload.score
            conversation.rating_comment = envelope.payload.comment
            out.emit(ConversationRated(score=envelope.payload.score, comment=envelope.payload.comment))
        out.flush()

    @consumer.on(GiveAnswerFeedback)
    async def on_answer_feedback(envelope: Envelope[GiveAnswerFeedback], session: AsyncSession) -> None:
        """Helpful or not, on one of the assistant's answers in this conversation; the first feedback
        on a message counts (a second is rejected `already_given`). "Not helpful" while the assistant
        has the conversation offers a person, as the assistant's own offer does."""
        out = Outgoing(session, envelope)
        conversation = owned_conversation(out, envelope)
        feedback = envelope.payload
        if conversation is None:
            out.flush()
            return
        await Batch.of(session).write(session)  # the answer may have been posted in this batch
        answer = await session.get(Message, feedback.message_id)
        if answer is None or answer.conversation_id != conversation.id or answer.sender != Sender.AI.value:
            reject(out, "not_an_ai_answer", f"message {feedback.message_id} is not an AI answer of this conversation")
        elif await session.get(AnswerFeedback, feedback.message_id) is not None:
            reject(out, "already_given", "feedback on this answer has been given already")
        else:
            session.add(
                AnswerFeedback(
                    message_id=answer.id,
                    conversation_id=conversation.id,
                    tenant_id=conversation.tenant_id,
                    helpful=feedback.helpful,
                )
            )
            question = await question_before(session, conversation.id, answer.seq)
            out.emit(
                AnswerFeedbackGiven(
                    message_id=answer.id,
                    helpful=feedback.helpful,
                    question_message_id=question.id if question is not None else None,
                    question=question.text if question is not None else None,
                )
            )
            if not feedback.helpful and conversation.state == S.AI:
                offer_a_person(out, conversation, HandoffReason.ANSWER_NOT_HELPFUL)
                text = notice_text(Notice.ANSWER_NOT_HELPFUL, conversation.locale)
                message_id = uuid.uuid5(out.cause.event_id, "not-helpful-offer")
                post_message(
                    out,
                    conversation,
                    message_id,
                    Sender.SYSTEM,
                    text,
                    smart_actions=handoff_buttons(conversation.locale),
                )
        out.flush()

    # ------------------------------------------------------------------ routing's decisions

    @consumer.on(ConversationQueued)
    async def on_queued(envelope: Envelope[ConversationQueued], session: AsyncSession) -> None:
        out = Outgoing(session, envelope)
        conversation = owned_conversation(out, envelope, report=False)
        if conversation is not None and conversation.state == S.QUEUED:
            position, wait = envelope.payload.position, envelope.payload.estimated_wait_seconds
            # One message when the wait starts; later moves are a status the widget shows in place.
            notify(out, conversation, "queued", queued_text(conversation.locale, position, wait))
            out.emit(QueuePositionUpdated(position=position, estimated_wait_seconds=wait))
        out.flush()

    @consumer.on(QueuePositionChanged)
    async def on_queue_position(envelope: Envelope[QueuePositionChanged], session: AsyncSession) -> None:
        out = Outgoing(session, envelope)
        conversation = owned_conversation(out, envelope, report=False)
        if conversation is not None and conversation.state == S.QUEUED:
            payload = envelope.payload
            out.emit(
                QueuePositionUpdated(position=payload.position, estimated_wait_seconds=payload.estimated_wait_seconds)
            )
        out.flush()

    @consumer.on(OfferMade)
    async def on_offer_made(envelope: Envelope[OfferMade], session: AsyncSession) -> None:
        out = Outgoing(session, envelope)
        conversation = owned_conversation(out, envelope, report=False)
        message_id = offer_notice_id(envelope.payload)
        # One notice per wait for an operator, on its first offer: an offer that expires or is
        # declined goes to the next operator, and telling the customer again would say nothing
        # new. The message id comes from the offer, so a redelivered offer posts nothing twice.
        if (
            conversation is not None
            and conversation.state == S.QUEUED
            and not conversation.offer_notice_posted
            and message_id not in Batch.of(session).message_ids
        ):
            conversation.offer_notice_posted = True
            text = notice_text(Notice.OPERATOR_OFFERED, conversation.locale)
            post_message(out, conversation, message_id, Sender.SYSTEM, text)
        out.flush()

    @consumer.on(OperatorAssigned)
    async def on_operator_assigned(envelope: Envelope[OperatorAssigned], session: AsyncSession) -> None:
        out = Outgoing(session, envelope)
        conversation = owned_conversation(out, envelope, report=False)
        assigned = envelope.payload
        if conversation is None:
            pass
        elif conversation.state not in OWNED_BY_OPERATORS:
            # The customer left the queue (or took the ticket form) first: answered, so that
            # routing frees the operator it assigned.
            reject(out, "not_waiting", f"the conversation is {conversation.status}")
        else:
            change_status(out, conversation, S.WITH_OPERATOR, f"assigned_via_{assigned.via}", assigned.operator_id)
            if conversation.operator_id != assigned.operator_id:
                conversation.operator_id = assigned.operator_id
                text = notice_text(Notice.OPERATOR_JOINED, conversation.locale, name=assigned.display_name)
                notify(out, conversation, "operator-joined", text)
            # The new operator's window of customer silence starts now.
            check_inactivity_at(out, conversation, envelope.occurred_at, envelope.occurred_at + inactivity)
        out.flush()

    @consumer.on(NoOperatorAvailable)
    async def on_no_operator(envelope: Envelope[NoOperatorAvailable], session: AsyncSession) -> None:
        out = Outgoing(session, envelope)
        conversation = owned_conversation(out, envelope, report=False)
        if conversation is not None and conversation.state == S.QUEUED:
            change_status(out, conversation, S.TICKET_PENDING, "no_operator_available")
            notify(out, conversation, "no-operator", notice_text(Notice.NO_OPERATOR, conversation.locale))
        out.flush()

    # ------------------------------------------------------------------ the customer's silence

    @consumer.on(CheckInactivity)
    async def on_check_inactivity(envelope: Envelope[CheckInactivity], session: AsyncSession) -> None:
        out = Outgoing(session, envelope)
        conversation = owned_conversation(out, envelope, report=False)
        since = envelope.payload.since
        last_customer_message = conversation.last_customer_message_at if conversation is not None else None
        if conversation is None or (last_customer_message is not None and last_customer_message > since):
            pass  # the customer wrote after the timer was set: the newer timer decides
        elif conversation.state == S.WITH_OPERATOR:
            change_status(out, conversation, S.WAITING_CUSTOMER, "customer_inactive")
            notify(out, conversation, "waiting-customer", notice_text(Notice.WAITING_CUSTOMER, conversation.locale))
            check_inactivity_at(out, conversation, since, utc_now() + abandon_after)
        elif conversation.state == S.WAITING_CUSTOMER:
            change_status(out, conversation, S.ABANDONED, "customer_inactive")
            notify(out, conversation, "abandoned", notice_text(Notice.ABANDONED, conversation.locale))
        out.flush()

    # ------------------------------------------------------------------ operators' commands

    def operated_conversation(out: Outgoing, envelope: Envelope[Any]) -> ConversationState | None:
        """The command's conversation, if its sender may act on it; rejected otherwise."""
        conversation = owned_conversation(out, envelope)
        command: OperatorCommand = envelope.payload
        if conversation is not None and not may_act(conversation, command):
            reject(out, "not_assigned", f"operator {command.operator_id} does not have this conversation")
            return None
        return conversation

    def reject_unless_with_operator(out: Outgoing, conversation: ConversationState) -> bool:
        if conversation.state in WITH_AN_OPERATOR:
            return False
        reject(out, "not_with_operator", f"the conversation is {conversation.status}")
        return True

    @consumer.on(PostOperatorMessage)
    async def on_operator_message(envelope: Envelope[PostOperatorMessage], session: AsyncSession) -> None:
        out = Outgoing(session, envelope)
        conversation = operated_conversation(out, envelope)
        command = envelope.payload
        if conversation is None:
            pass
        elif command.message_id in Batch.of(session).message_ids:
            log.info("operator message already posted", message_id=str(command.message_id))
        elif not reject_unless_with_operator(out, conversation):
            post_message(
                out, conversation, command.message_id, Sender.OPERATOR, command.text, operator_id=command.operator_id
            )
        out.flush()

    @consumer.on(AddInternalNote)
    async def on_note(envelope: Envelope[AddInternalNote], session: AsyncSession) -> None:
        out = Outgoing(session, envelope)
        conversation = operated_conversation(out, envelope)
        command = envelope.payload
        # Stored apart from the messages: no widget read or stream can come across a note.
        if conversation is not None and await session.get(InternalNote, command.note_id) is None:
            session.add(
                InternalNote(
                    id=command.note_id,
                    conversation_id=conversation.id,
                    tenant_id=conversation.tenant_id,
                    operator_id=command.operator_id,
                    text=command.text,
                )
            )
            out.emit(NoteAdded(note_id=command.note_id, operator_id=command.operator_id, text=command.text))
        out.flush()

    @consumer.on(TransferConversation)
    async def on_transfer(envelope: Envelope[TransferConversation], session: AsyncSession) -> None:
        out = Outgoing(session, envelope)
        conversation = operated_conversation(out, envelope)
        command = envelope.payload
        if conversation is None or reject_unless_with_operator(out, conversation):
            pass
        elif command.to_operator_id is None:
            back_to_queue(out, conversation, command.operator_id)
        # Routing reads the same command: it queues the conversation again (requeued), or assigns
        # the named operator (OperatorAssigned via transfer, handled above).
        out.flush()

    @consumer.on(OperatorReleased)
    async def on_operator_released(envelope: Envelope[OperatorReleased], session: AsyncSession) -> None:
        out = Outgoing(session, envelope)
        conversation = owned_conversation(out, envelope, report=False)
        released = envelope.payload
        # Routing also requeues by itself (a transfer to an operator who went offline).
        if (
            conversation is not None
            and released.reason == "requeued"
            and conversation.state in WITH_AN_OPERATOR
            and conversation.operator_id == released.operator_id
        ):
            back_to_queue(out, conversation, released.operator_id)
        out.flush()

    def back_to_queue(out: Outgoing, conversation: ConversationState, operator_id: str) -> None:
        change_status(out, conversation, S.QUEUED, "transferred_to_queue", operator_id)
        conversation.operator_id = None
        timers.cancel(out.session, inactivity_timer(conversation))
        notify(out, conversation, "requeued", notice_text(Notice.TRANSFERRED_TO_QUEUE, conversation.locale))

    @consumer.on(ReleaseConversation)
    async def on_release(envelope: Envelope[ReleaseConversation], session: AsyncSession) -> None:
        out = Outgoing(session, envelope)
        conversation = operated_conversation(out, envelope)
        if conversation is not None and not reject_unless_with_operator(out, conversation):
            change_status(out, conversation, S.AI, "released_to_ai", envelope.payload.operator_id)
            conversation.operator_id = None
            conversation.handoff_offer_blocked = True
            timers.cancel(session, inactivity_timer(conversation))
            notify(out, conversation, "back-to-ai", notice_text(Notice.BACK_TO_AI, conversation.locale))
        out.flush()

    @consumer.on(CloseConversation)
    async def on_close(envelope: Envelope[CloseConversation], session: AsyncSession) -> None:
        out = Outgoing(session, envelope)
        conversation = operated_conversation(out, envelope)
        command = envelope.payload
        # A supervisor or admin may also close one the assistant has (done, or going nowhere):
        # AI -> RESOLVED or CANCELLED, as the state machine allows.
        supervised_ai = conversation is not None and conversation.state in (S.AI, S.HANDOFF_OFFERED)
        if conversation is None:
            pass
        elif conversation.state not in OWNED_BY_OPERATORS and not (supervised_ai and command.role in SUPERVISOR_ROLES):
            reject(out, "not_with_operator", f"the conversation is {conversation.status}")
        elif move_or_reject(out, conversation, S(command.outcome.value), "closed_by_operator", command.operator_id):
            timers.cancel(session, inactivity_timer(conversation))
            notify(out, conversation, "closed", notice_text(Notice.CLOSED, conversation.locale))
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
