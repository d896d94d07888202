"""Subscribers of the routing service, and the moves they share with the HTTP take.

Every handler runs inside the idempotent consumer's transaction (servicekit.consumer), so the
rows it writes, the timers it schedules and the events it stages commit together, exactly once.
Each batch first takes the locks of its tenants (in one order, so two replicas cannot deadlock
on them), which serialises every decision about a tenant's operators and queue.

A handler only records what its event changed (point reads and writes by key) and marks the
tenant to drain (`drain_later`); one closing step per batch (`drain_pending`) then offers the
waiting conversations of each marked tenant, reading its operators and their loads once. The
lock is held for a batch, so the batch is small (`Settings.consumer_batch_size`) and each of its
events cheap: an HTTP take waits for one short batch at most.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from sqlalchemy.ext.asyncio import AsyncSession

from contracts import Envelope, Payload, new_envelope, utc_now
from contracts.common import ConversationStatus, HandoffReason, OperatorPresence
from contracts.events import (
    ConversationQueued,
    DeclineOffer,
    ExpireOffer,
    ExpirePresence,
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
from routing import domain, store
from routing.config import Settings
from routing.store import OperatorRecord, RoutedConversation
from servicekit import timers
from servicekit.consumer import EventConsumer
from servicekit.logs import get_logger
from servicekit.outbox import add_to_outbox
from servicekit.tracing import current_trace_headers, trace_context_from

log = get_logger(__name__)


class NotWaitingError(Exception):
    """The conversation is neither waiting nor offered (unknown to routing, or of another tenant)."""


class AlreadyTakenError(Exception):
    """Another operator has the conversation."""


def offer_timer(offer_id: uuid.UUID) -> str:
    return f"offer:{offer_id}"


def presence_timer(tenant_id: str, operator_id: str) -> str:
    return f"presence:{tenant_id}:{operator_id}"


@dataclass(frozen=True)
class Cause:
    """An event that asked for a decision, with the trace context it was handled in."""

    envelope: Envelope[Any]
    trace: Mapping[str, str]

    @staticmethod
    def current(envelope: Envelope[Any]) -> Cause:
        return Cause(envelope, current_trace_headers())


@dataclass
class Decision:
    """One transaction's view of a tenant: the events it decides, and the time. An event about a
    conversation is caused by the batch's event about that conversation when there is one (in
    the batch's drain: the offer continues the customer's handoff, its correlation and trace),
    otherwise by `cause`."""

    session: AsyncSession
    cause: Cause
    settings: Settings
    now: datetime
    causes: Mapping[uuid.UUID, Cause] = field(default_factory=dict)
    staged: list[tuple[Envelope[Any], Cause]] = field(default_factory=list)

    @property
    def tenant_id(self) -> str:
        return self.cause.envelope.tenant_id

    def cause_of(self, conversation_id: uuid.UUID | None) -> Cause:
        return self.causes.get(conversation_id, self.cause) if conversation_id else self.cause

    def emit(self, payload: Payload, conversation_id: uuid.UUID | None = None) -> None:
        """An event about `conversation_id` (by default the cause's conversation)."""
        conversation_id = conversation_id or self.cause.envelope.conversation_id
        cause = self.cause_of(conversation_id)
        envelope = new_envelope(
            payload, tenant_id=self.tenant_id, conversation_id=conversation_id, causation=cause.envelope
        )
        self.staged.append((envelope, cause))

    def emit_about_operator(self, payload: Payload) -> None:
        # Keyed by the operator (its aggregate id), not by the conversation that caused it, so
        # that one operator's presence changes stay in order.
        envelope = new_envelope(payload, tenant_id=self.tenant_id, causation=self.cause.envelope)
        self.staged.append((envelope, self.cause))

    def schedule(self, name: str, due_at: datetime, payload: Payload, conversation_id: uuid.UUID | None) -> None:
        cause = self.cause_of(conversation_id)
        envelope = new_envelope(
            payload, tenant_id=self.tenant_id, conversation_id=conversation_id, causation=cause.envelope
        )
        with trace_context_from(cause.trace):
            timers.schedule(self.session, name, due_at, envelope)

    def flush(self) -> None:
        """Stages the events decided so far in the transaction's outbox, in order, each under
        its cause's trace context."""
        for cause, staged in itertools.groupby(self.staged, key=lambda item: item[1]):
            with trace_context_from(cause.trace):
                add_to_outbox(self.session, [envelope for envelope, _ in staged])
        self.staged = []


@dataclass
class PendingDrain:
    """A tenant whose queue the batch drains before it commits (`drain_pending`)."""

    last: Cause
    causes: dict[uuid.UUID, Cause] = field(default_factory=dict)
    not_now: dict[uuid.UUID, str] = field(default_factory=dict)
    expired: dict[uuid.UUID, str] = field(default_factory=dict)


_PENDING_DRAINS = "routing.pending_drains"


def drain_later(decision: Decision, not_now: str | None = None, expired: str | None = None) -> None:
    """Marks the tenant to drain at the end of the batch (capacity freed, a conversation waiting,
    an operator online...). `not_now`: the operator who has just declined the cause's
    conversation, not asked again in this drain; `expired`: the one who has just let its offer
    expire, asked again only when nobody else can take it (see `domain.plan_offers`)."""
    pending: dict[str, PendingDrain] = decision.session.info.setdefault(_PENDING_DRAINS, {})
    cause = decision.cause
    drain = pending.setdefault(decision.tenant_id, PendingDrain(cause))
    drain.last = cause
    conversation_id = cause.envelope.conversation_id
    if conversation_id is not None:
        drain.causes[conversation_id] = cause
        if not_now is not None:
            drain.not_now[conversation_id] = not_now
        if expired is not None:
            drain.expired[conversation_id] = expired


async def drain_pending(session: AsyncSession, settings: Settings) -> None:
    """Drains every tenant marked in this transaction, once each, in one order."""
    pending: dict[str, PendingDrain] = session.info.pop(_PENDING_DRAINS, {})
    for tenant_id in sorted(pending):
        marked = pending[tenant_id]
        decision = Decision(session, marked.last, settings, utc_now(), causes=marked.causes)
        await drain(decision, marked.not_now, marked.expired)
        decision.flush()


# ------------------------------------------------------------------------------------------ moves


def make_offer(decision: Decision, conversation: RoutedConversation, operator_id: str) -> None:
    """Offers the conversation to one operator until the offer timeout (a durable timer)."""
    assert domain.can_move(conversation.entry_state, "offered")
    offer_id = uuid.uuid4()
    expires_at = decision.now + timedelta(seconds=decision.settings.offer_timeout_seconds)
    conversation.state, conversation.operator_id = "offered", operator_id
    conversation.offer_id, conversation.offer_expires_at = offer_id, expires_at
    decision.emit(
        OfferMade(
            offer_id=offer_id,
            operator_id=operator_id,
            expires_at=expires_at,
            reason=HandoffReason(conversation.reason) if conversation.reason else None,
            priority="high" if conversation.priority == "high" else "normal",
        ),
        conversation.conversation_id,
    )
    decision.schedule(
        offer_timer(offer_id),
        expires_at,
        ExpireOffer(offer_id=offer_id, operator_id=operator_id),
        conversation.conversation_id,
    )


def close_offer(
    decision: Decision, conversation: RoutedConversation, outcome: Literal["declined", "expired", "withdrawn"]
) -> None:
    """Ends the pending offer without an assignment; the conversation waits again. An operator
    who declined it or let it expire gets it again only when nobody else can."""
    assert conversation.offer_id is not None
    assert conversation.operator_id is not None
    assert domain.can_move(conversation.entry_state, "waiting")
    timers.cancel(decision.session, offer_timer(conversation.offer_id))
    decision.emit(
        OfferClosed(offer_id=conversation.offer_id, operator_id=conversation.operator_id, outcome=outcome),
        conversation.conversation_id,
    )
    if outcome != "withdrawn":
        conversation.declined_by = [*conversation.declined_by, conversation.operator_id]
    conversation.state, conversation.operator_id = "waiting", None
    conversation.offer_id, conversation.offer_expires_at = None, None


def assign(
    decision: Decision,
    conversation: RoutedConversation,
    operator: OperatorRecord,
    via: Literal["offer", "take", "transfer"],
    previous_operator_id: str | None = None,
) -> None:
    if conversation.state == "offered":
        if conversation.operator_id == operator.operator_id:
            assert conversation.offer_id is not None
            timers.cancel(decision.session, offer_timer(conversation.offer_id))
        else:
            close_offer(decision, conversation, "withdrawn")
    conversation.state, conversation.operator_id = "assigned", operator.operator_id
    conversation.offer_id, conversation.offer_expires_at = None, None
    conversation.assigned_at, conversation.declined_by = decision.now, []
    operator.last_assigned_at = decision.now
    if via != "transfer":
        operator.missed_offers = 0
    decision.emit(
        OperatorAssigned(
            operator_id=operator.operator_id,
            display_name=operator.display_name,
            via=via,
            previous_operator_id=previous_operator_id,
        ),
        conversation.conversation_id,
    )


async def drain(
    decision: Decision, not_now: dict[uuid.UUID, str] | None = None, expired: dict[uuid.UUID, str] | None = None
) -> None:
    """Offers the waiting conversations to the operators with room, at once, in queue order;
    then tells every conversation still waiting its position when it changed. With nobody online
    the queue is emptied instead, each conversation told `NoOperatorAvailable`. `not_now` and
    `expired`: per conversation, the operator who has just declined it or let its offer expire
    (`domain.plan_offers`)."""
    session, tenant_id = decision.session, decision.tenant_id
    await session.flush()
    # Nothing waiting (the usual case while operators have room): no offer to make and no
    # position to tell, so the operators and the queue are not read at all.
    if not await store.anyone_waiting(session, tenant_id):
        return
    queue = await store.unassigned(session, tenant_id)
    operators = await store.online_operators(session, tenant_id)
    if domain.nobody_online(operators):
        # The last operator went away or offline: those waiting would wait for nobody. They are
        # told so, as a request made now would be, and leave the queue (the customer is offered
        # the ticket form).
        for conversation in queue:
            if conversation.state == "offered":
                close_offer(decision, conversation, "withdrawn")
            decision.emit(NoOperatorAvailable(), conversation.conversation_id)
            await session.delete(conversation)
        return
    by_id = {c.conversation_id: c for c in queue}
    waiting = [c.as_waiting() for c in queue if c.state == "waiting"]
    for offer in domain.plan_offers(waiting, operators, decision.now, not_now, expired):
        make_offer(decision, by_id[offer.conversation_id], offer.operator_id)
    await tell_positions(decision, queue, operators)


async def tell_positions(decision: Decision, queue: list[RoutedConversation], operators: list[domain.Operator]) -> None:
    # Positions count every conversation not yet assigned, offered ones included: those are
    # ahead in line too, until someone accepts them.
    positions = domain.positions(c.as_waiting() for c in queue)
    for conversation in sorted(queue, key=lambda c: positions[c.conversation_id]):
        position = positions[conversation.conversation_id]
        if conversation.state != "waiting" or not domain.worth_telling(conversation.last_position, position):
            continue
        wait = domain.estimated_wait_seconds(position, operators, decision.settings.average_handling_seconds)
        first_time = conversation.last_position is None
        event = (ConversationQueued if first_time else QueuePositionChanged)(
            position=position, estimated_wait_seconds=wait
        )
        decision.emit(event, conversation.conversation_id)
        conversation.last_position = position


async def release(decision: Decision, conversation: RoutedConversation, status: ConversationStatus) -> None:
    """The conversation left routing's hands (closed, handed back to the AI, ticket): its offer
    is withdrawn or its operator's seat freed (the caller drains the queue)."""
    if conversation.state == "assigned":
        assert conversation.operator_id is not None
        reason: Literal["closed", "handed_back"] = "handed_back" if status == ConversationStatus.AI else "closed"
        decision.emit(
            OperatorReleased(operator_id=conversation.operator_id, reason=reason), conversation.conversation_id
        )
    elif conversation.state == "offered":
        close_offer(decision, conversation, "withdrawn")
    await decision.session.delete(conversation)


async def take(decision: Decision, conversation_id: uuid.UUID, operator_id: str, display_name: str) -> str:
    """An operator accepts its offer or takes a waiting conversation; returns how (`offer` or
    `take`). Two operators racing: the first to lock the row gets it, the other `AlreadyTakenError`.
    The caller drains the queue (a withdrawn offer frees a seat; positions move)."""
    conversation = await store.get_conversation(decision.session, conversation_id)
    if conversation is None or conversation.tenant_id != decision.tenant_id:
        raise NotWaitingError(str(conversation_id))
    if not domain.can_take(conversation.entry_state):
        if conversation.operator_id == operator_id:
            return "take"  # the same take again (a retry): it has it
        raise AlreadyTakenError(str(conversation_id))
    operator = await store.get_operator(decision.session, decision.tenant_id, operator_id)
    if operator is None:
        # Known by its token only (no presence yet): it gets the conversation, no offers.
        operator = OperatorRecord(
            tenant_id=decision.tenant_id,
            operator_id=operator_id,
            display_name=display_name,
            presence="offline",
            requested_presence=None,
            skills=[],
            capacity=SetOperatorPresence.model_fields["capacity"].default,
            missed_offers=0,
            last_seen_at=decision.now,
        )
        decision.session.add(operator)
    via: Literal["offer", "take"] = (
        "offer" if conversation.state == "offered" and conversation.operator_id == operator_id else "take"
    )
    assign(decision, conversation, operator, via)
    return via


async def set_presence(decision: Decision, operator: OperatorRecord, presence: OperatorPresence) -> None:
    """Routing's own presence decisions (away after missed offers, offline without heartbeats):
    offers pending for an operator who is no longer online go to others (the caller drains)."""
    operator.presence = presence
    if presence != "online":
        for conversation in await store.offered_to(decision.session, decision.tenant_id, operator.operator_id):
            close_offer(decision, conversation, "withdrawn")
    await announce_presence(decision, operator)


async def announce_presence(decision: Decision, operator: OperatorRecord) -> None:
    await decision.session.flush()
    active = await store.assigned_count(decision.session, decision.tenant_id, operator.operator_id)
    decision.emit_about_operator(
        OperatorPresenceChanged(
            operator_id=operator.operator_id,
            presence=operator.current_presence,
            active_conversations=active,
            capacity=operator.capacity,
        )
    )


# --------------------------------------------------------------------------------------- handlers


def register(consumer: EventConsumer, settings: Settings) -> None:
    def decision_for(envelope: Envelope[Any], session: AsyncSession) -> Decision:
        return Decision(session, Cause.current(envelope), settings, utc_now())

    @consumer.prepare
    async def lock_tenants(envelopes: list[Envelope[Any]], session: AsyncSession) -> None:
        for tenant_id in sorted({e.tenant_id for e in envelopes}):
            await store.lock_tenant(session, tenant_id)
        # The operators of the batch's heartbeats in one query: their handlers then find them in
        # the session instead of asking for each (13 a second with 200 operators online).
        await store.load_operators(
            session,
            {(e.tenant_id, e.payload.operator_id) for e in envelopes if isinstance(e.payload, SetOperatorPresence)},
        )

    @consumer.finish
    async def drain_marked_tenants(envelopes: list[Envelope[Any]], session: AsyncSession) -> None:
        await drain_pending(session, settings)

    @consumer.on(HandoffRequested)
    async def on_handoff_requested(envelope: Envelope[HandoffRequested], session: AsyncSession) -> None:
        assert envelope.conversation_id is not None
        decision = decision_for(envelope, session)
        if await store.get_conversation(session, envelope.conversation_id) is not None:
            return  # already routed: a repeated request changes nothing
        request = envelope.payload
        await session.flush()  # an operator's presence changed earlier in the batch counts
        if not await store.anyone_online(session, envelope.tenant_id):
            decision.emit(NoOperatorAvailable())
            decision.flush()
            return
        session.add(
            RoutedConversation(
                conversation_id=envelope.conversation_id,
                tenant_id=envelope.tenant_id,
                state="waiting",
                priority=request.priority,
                reason=request.reason.value if request.reason else None,
                intent=request.intent,
                wanted_skills=sorted(domain.wanted_skills(request.intent, request.skills)),
                excluded_operator_id=request.excluded_operator_id,
                declined_by=[],
                waiting_since=envelope.occurred_at,
            )
        )
        await session.flush()
        drain_later(decision)
        decision.flush()

    @consumer.on(StatusChanged)
    async def on_status_changed(envelope: Envelope[StatusChanged], session: AsyncSession) -> None:
        if envelope.payload.status in domain.ROUTED_STATUSES or envelope.conversation_id is None:
            return
        conversation = await store.get_conversation(session, envelope.conversation_id)
        if conversation is None or conversation.tenant_id != envelope.tenant_id:
            return
        decision = decision_for(envelope, session)
        await release(decision, conversation, envelope.payload.status)
        drain_later(decision)
        decision.flush()

    @consumer.on(SetOperatorPresence)
    async def on_set_presence(envelope: Envelope[SetOperatorPresence], session: AsyncSession) -> None:
        command, decision = envelope.payload, decision_for(envelope, session)
        operator = await store.get_operator(session, envelope.tenant_id, command.operator_id)
        if operator is None:
            operator = OperatorRecord(
                tenant_id=envelope.tenant_id, operator_id=command.operator_id, missed_offers=0, skills=[]
            )
            session.add(operator)
        update = domain.apply_presence_command(
            operator.current_presence if operator.presence else None,
            operator.requested_presence,
            command.presence,
            command.chosen,
        )
        capacity_changed = operator.capacity != command.capacity or set(operator.skills) != set(command.skills)
        operator.display_name = command.display_name
        operator.skills = list(command.skills)
        operator.capacity = command.capacity
        operator.requested_presence = update.requested
        operator.last_seen_at = decision.now
        if update.presence == "online" and update.changed:
            operator.missed_offers = 0
        # Each heartbeat pushes the operator's offline time back; going offline ends it.
        name = presence_timer(envelope.tenant_id, command.operator_id)
        if command.presence == "offline":
            timers.cancel(session, name)
        else:
            due_at = decision.now + timedelta(seconds=settings.presence_timeout_seconds)
            expiry = ExpirePresence(operator_id=command.operator_id, last_seen_at=decision.now)
            decision.schedule(name, due_at, expiry, None)
        if update.changed:
            await set_presence(decision, operator, update.presence)
        elif capacity_changed:
            await announce_presence(decision, operator)
        if update.changed or capacity_changed:
            drain_later(decision)
        decision.flush()

    @consumer.on(ExpirePresence)
    async def on_expire_presence(envelope: Envelope[ExpirePresence], session: AsyncSession) -> None:
        command = envelope.payload
        operator = await store.get_operator(session, envelope.tenant_id, command.operator_id)
        if operator is None or operator.presence == "offline" or operator.last_seen_at > command.last_seen_at:
            return  # a heartbeat came after the one that set this timer
        decision = decision_for(envelope, session)
        log.info("operator heartbeats stopped", operator_id=operator.operator_id)
        await set_presence(decision, operator, "offline")
        drain_later(decision)
        decision.flush()

    @consumer.on(TakeConversation)
    async def on_take(envelope: Envelope[TakeConversation], session: AsyncSession) -> None:
        assert envelope.conversation_id is not None
        decision = decision_for(envelope, session)
        operator = await store.get_operator(session, envelope.tenant_id, envelope.payload.operator_id)
        display_name = operator.display_name if operator else envelope.payload.operator_id
        try:
            await take(decision, envelope.conversation_id, envelope.payload.operator_id, display_name)
            drain_later(decision)
        except (NotWaitingError, AlreadyTakenError) as error:
            log.info("take refused", reason=type(error).__name__, operator_id=envelope.payload.operator_id)
        decision.flush()

    @consumer.on(DeclineOffer)
    async def on_decline(envelope: Envelope[DeclineOffer], session: AsyncSession) -> None:
        await answer_offer(envelope, session, envelope.payload.offer_id, envelope.payload.operator_id, "declined")

    @consumer.on(ExpireOffer)
    async def on_expire_offer(envelope: Envelope[ExpireOffer], session: AsyncSession) -> None:
        await answer_offer(envelope, session, envelope.payload.offer_id, envelope.payload.operator_id, "expired")

    async def answer_offer(
        envelope: Envelope[Any],
        session: AsyncSession,
        offer_id: uuid.UUID,
        operator_id: str,
        outcome: Literal["declined", "expired"],
    ) -> None:
        if envelope.conversation_id is None:
            return
        conversation = await store.get_conversation(session, envelope.conversation_id)
        if conversation is None or conversation.offer_id != offer_id or conversation.operator_id != operator_id:
            return  # answered, withdrawn or moved on meanwhile: a late timer or a stale click
        decision = decision_for(envelope, session)
        close_offer(decision, conversation, outcome)
        # Locked: its count of missed offers is read and written, and accepting another offer
        # resets it without the tenant's lock.
        operator = await store.get_operator(session, envelope.tenant_id, operator_id, lock=True)
        if operator is not None:
            if outcome == "declined":
                operator.missed_offers = 0
            else:
                missed = domain.after_expired_offer(
                    operator.current_presence, operator.missed_offers, settings.missed_offers_before_away
                )
                operator.missed_offers = missed.missed_in_a_row
                if missed.presence != operator.presence:
                    log.info("operator set away after missed offers", operator_id=operator_id)
                    await set_presence(decision, operator, missed.presence)
        if outcome == "declined":
            drain_later(decision, not_now=operator_id)
        else:
            drain_later(decision, expired=operator_id)
        decision.flush()

    @consumer.on(TransferConversation)
    async def on_transfer(envelope: Envelope[TransferConversation], session: AsyncSession) -> None:
        if envelope.conversation_id is None:
            return
        conversation = await store.get_conversation(session, envelope.conversation_id)
        if conversation is None or conversation.tenant_id != envelope.tenant_id or conversation.state != "assigned":
            return
        decision, command = decision_for(envelope, session), envelope.payload
        previous = conversation.operator_id
        assert previous is not None
        if command.operator_id != previous and command.role == "operator":
            # Only the assigned operator, or a supervisor or admin, moves a conversation (the
            # conversation service refuses the same transfer, so both keep the same owner).
            log.info("transfer by an operator who does not have the conversation; ignored")
            return
        target = None
        if command.to_operator_id and command.to_operator_id != previous:
            target = await store.get_operator(session, envelope.tenant_id, command.to_operator_id)
            if target is None or target.presence == "offline":
                log.info("transfer target not available; back to the queue", to_operator_id=command.to_operator_id)
                target = None
        if target is not None:
            decision.emit(OperatorReleased(operator_id=previous, reason="transferred"))
            assign(decision, conversation, target, "transfer", previous_operator_id=previous)
        else:
            decision.emit(OperatorReleased(operator_id=previous, reason="requeued"))
            # Back in line with its original waiting time; others are asked before its last operator.
            conversation.state, conversation.operator_id, conversation.assigned_at = "waiting", None, None
            conversation.declined_by, conversation.last_position = [previous], None
        drain_later(decision)
        decision.flush()
