"""Routing's rules, free of I/O: whom to offer a conversation to, the order of the queue, what a
missed offer does to an operator, and how long a customer may wait."""

from __future__ import annotations

import math
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Literal

from contracts.common import ConversationStatus, OperatorPresence

Priority = Literal["normal", "high"]
EntryState = Literal["waiting", "offered", "assigned"]

# While a conversation is in one of these states, routing keeps it (queued, offered or assigned);
# any other state means it left routing's hands: its offer is withdrawn, its operator's load freed.
ROUTED_STATUSES = frozenset(
    {
        ConversationStatus.HANDOFF_OFFERED,
        ConversationStatus.QUEUED,
        ConversationStatus.WITH_OPERATOR,
        ConversationStatus.WAITING_CUSTOMER,
    }
)
ESTIMATE_CAP_SECONDS = 86_400  # the contract's bound on an estimated wait


@dataclass(frozen=True)
class Operator:
    """What routing knows of one operator when choosing: `load` counts the conversations it has
    and the offers it has not answered yet, so a pending offer holds a seat."""

    operator_id: str
    presence: OperatorPresence
    skills: frozenset[str]
    capacity: int
    load: int
    last_assigned_at: datetime | None

    @property
    def has_room(self) -> bool:
        return self.presence == "online" and self.load < self.capacity


@dataclass(frozen=True)
class Waiting:
    """A conversation waiting for an operator."""

    conversation_id: uuid.UUID
    priority: Priority
    waiting_since: datetime
    wanted_skills: frozenset[str] = frozenset()
    excluded_operator_id: str | None = None
    declined_by: tuple[str, ...] = ()
    """Operators who declined it or let its offer expire: it is offered to others first."""


@dataclass(frozen=True)
class Offer:
    conversation_id: uuid.UUID
    operator_id: str


def wanted_skills(intent: str | None, skills: Iterable[str]) -> frozenset[str]:
    """The skills a handoff asks for: its explicit skills and the AI's intent (a topic is a skill)."""
    return frozenset(skills) | ({intent} if intent else set())


def _preference(operator: Operator, wanted: frozenset[str]) -> tuple[int, int, float, str]:
    # Lowest first: most wanted skills, then least loaded, then least recently assigned (never
    # assigned comes first), then the id, so that equal operators are still chosen in one order.
    last = operator.last_assigned_at.timestamp() if operator.last_assigned_at else -math.inf
    return (-len(operator.skills & wanted), operator.load, last, operator.operator_id)


def choose_operator(
    operators: Iterable[Operator], conversation: Waiting, not_now: str | None = None
) -> Operator | None:
    """Whom to offer `conversation` to: among the online operators with room (never its excluded
    one, nor `not_now`, who has just declined it or let its offer expire), skill match first, then the
    lowest load, then round-robin (least recently assigned). Operators who declined it before are
    asked only when nobody else with room is left."""
    candidates = [
        o for o in operators if o.has_room and o.operator_id not in (conversation.excluded_operator_id, not_now)
    ]
    fresh = [o for o in candidates if o.operator_id not in conversation.declined_by]
    if not fresh and not candidates:
        return None
    return min(fresh or candidates, key=lambda o: _preference(o, conversation.wanted_skills))


def queue_order(waiting: Iterable[Waiting]) -> list[Waiting]:
    """High priority (upset customers, someone who may be in danger) first, then the longest waiting."""
    return sorted(waiting, key=lambda w: (w.priority != "high", w.waiting_since, str(w.conversation_id)))


def plan_offers(
    waiting: Iterable[Waiting],
    operators: Sequence[Operator],
    now: datetime,
    not_now: Mapping[uuid.UUID, str] | None = None,
    expired: Mapping[uuid.UUID, str] | None = None,
) -> list[Offer]:
    """Drains the queue as far as capacity allows: in queue order, each conversation is offered
    to the operator `choose_operator` picks, whose load and last assignment then count for the
    next one. Conversations nobody can take stay waiting (one whose excluded operator is the only
    one with room does not hold back those behind it).

    `not_now` names, per conversation, the operator who has just declined it: not asked again
    in this drain (it stays in the queue for them to take). `expired` names the one who has just
    let its offer expire: asked again only after every other waiting conversation had its chance
    at their seat and nobody else can take it, so a lone operator who missed an offer gets it
    again (and a second miss in a row sets them away) instead of the customer waiting for
    nobody."""
    pool = {o.operator_id: o for o in operators}
    offers: list[Offer] = []

    def offer(conversation: Waiting, skip: str | None) -> bool:
        chosen = choose_operator(pool.values(), conversation, skip)
        if chosen is not None:
            pool[chosen.operator_id] = replace(chosen, load=chosen.load + 1, last_assigned_at=now)
            offers.append(Offer(conversation.conversation_id, chosen.operator_id))
        return chosen is not None

    asked_last: list[Waiting] = []
    for conversation in queue_order(waiting):
        missed_by = (expired or {}).get(conversation.conversation_id)
        if not offer(conversation, missed_by or (not_now or {}).get(conversation.conversation_id)) and missed_by:
            asked_last.append(conversation)
    for conversation in asked_last:
        offer(conversation, None)
    return offers


def nobody_online(operators: Iterable[Operator]) -> bool:
    return not any(o.presence == "online" for o in operators)


@dataclass(frozen=True)
class MissedOffer:
    """An operator's state after letting an offer expire."""

    missed_in_a_row: int
    presence: OperatorPresence


def after_expired_offer(presence: OperatorPresence, missed_in_a_row: int, away_after: int) -> MissedOffer:
    """An operator who lets `away_after` offers in a row expire is set to away (answering one,
    accepting or declining, resets the count)."""
    missed = missed_in_a_row + 1
    if missed >= away_after and presence == "online":
        return MissedOffer(missed_in_a_row=0, presence="away")
    return MissedOffer(missed_in_a_row=missed, presence=presence)


@dataclass(frozen=True)
class PresenceUpdate:
    presence: OperatorPresence
    requested: OperatorPresence
    changed: bool


def apply_presence_command(
    current: OperatorPresence | None, last_requested: str | None, requested: OperatorPresence, chosen: bool = False
) -> PresenceUpdate:
    """The presence an operator has after a `SetOperatorPresence`. The gateway repeats the
    operator's chosen presence as a heartbeat, so a repeat of the same choice must not undo what
    routing decided meanwhile (away after missed offers); a new choice does, and so does the same
    one chosen again (`chosen`: the operator clicked online after routing set them away)."""
    if current is None or requested != last_requested or chosen:
        presence = requested
    else:
        presence = current if current == "away" and requested == "online" else requested
    return PresenceUpdate(presence=presence, requested=requested, changed=presence != current)


def positions(waiting: Iterable[Waiting]) -> dict[uuid.UUID, int]:
    """Each waiting conversation's place in the queue, from 1."""
    return {w.conversation_id: n for n, w in enumerate(queue_order(waiting), start=1)}


# Positions told to the customer at every change; further back, a change is told once it is a
# tenth of the last position told. A queue of n moves every position behind the head each time
# the head leaves: telling them all is n events per departure, n squared for the queue to drain,
# where the customer far back reads no difference between 412th and 411th.
EXACT_POSITIONS = 10


def worth_telling(last_told: int | None, position: int) -> bool:
    """Whether a waiting conversation is told its new position."""
    if last_told is None:
        return True
    if position == last_told:
        return False
    return position <= EXACT_POSITIONS or abs(position - last_told) * 10 >= last_told


def estimated_wait_seconds(position: int, operators: Iterable[Operator], handling_seconds: int) -> int | None:
    """A rough wait: the conversations ahead share the online operators' seats, each freed after
    an average handling time. None when nobody is online (no estimate is better than a wrong one)."""
    seats = sum(o.capacity for o in operators if o.presence == "online")
    if seats == 0:
        return None
    rounds = math.ceil(position / seats)
    return min(rounds * handling_seconds, ESTIMATE_CAP_SECONDS)


# The moves of a conversation in routing's hands. An offer can move on to the next operator, and
# an assignment to another operator (a transfer) or back to the queue.
TRANSITIONS: dict[EntryState, frozenset[EntryState]] = {
    "waiting": frozenset({"offered", "assigned"}),
    "offered": frozenset({"waiting", "offered", "assigned"}),
    "assigned": frozenset({"waiting", "assigned"}),
}


def can_move(current: EntryState, target: EntryState) -> bool:
    return target in TRANSITIONS[current]


def can_take(state: EntryState) -> bool:
    """A conversation can be taken while it waits or is offered (to anyone: taking it from the
    queue wins over someone else's pending offer); once assigned, it is taken."""
    return state != "assigned"
