"""The conversation state machine: the rules, free of I/O."""

from __future__ import annotations

from contracts.common import ConversationStatus as S

TRANSITIONS: dict[S, frozenset[S]] = {
    S.AI: frozenset({S.HANDOFF_OFFERED, S.QUEUED, S.TICKET_PENDING, S.RESOLVED, S.CANCELLED, S.ABANDONED}),
    S.HANDOFF_OFFERED: frozenset({S.AI, S.QUEUED, S.TICKET_PENDING, S.CANCELLED, S.ABANDONED}),
    S.QUEUED: frozenset({S.WITH_OPERATOR, S.TICKET_PENDING, S.AI, S.CANCELLED, S.ABANDONED}),
    # An operator hands back to the AI (release) or to the queue (transfer) from both operator states.
    S.WITH_OPERATOR: frozenset({S.WAITING_CUSTOMER, S.QUEUED, S.AI, S.RESOLVED, S.NOT_RESOLVED, S.CANCELLED}),
    S.WAITING_CUSTOMER: frozenset(
        {S.WITH_OPERATOR, S.QUEUED, S.AI, S.RESOLVED, S.NOT_RESOLVED, S.CANCELLED, S.ABANDONED}
    ),
    S.TICKET_PENDING: frozenset({S.TICKET_CREATED, S.AI, S.CANCELLED, S.ABANDONED}),
    S.TICKET_CREATED: frozenset({S.RESOLVED, S.NOT_RESOLVED}),
    S.RESOLVED: frozenset(),
    S.NOT_RESOLVED: frozenset(),
    S.CANCELLED: frozenset(),
    S.ABANDONED: frozenset(),
}

CLOSED = frozenset(status for status, targets in TRANSITIONS.items() if not targets)
# States in which the customer can still write; the AI answers only in AI.
ACCEPTS_CUSTOMER_MESSAGES = frozenset(TRANSITIONS) - CLOSED - {S.TICKET_CREATED}
# States with an operator in the conversation: operators write, close, transfer and release here.
WITH_AN_OPERATOR = frozenset({S.WITH_OPERATOR, S.WAITING_CUSTOMER})
# States the operators own: the AI never posts in them (a reply arriving then is dropped).
OWNED_BY_OPERATORS = WITH_AN_OPERATOR | {S.QUEUED}


class IllegalTransitionError(ValueError):
    def __init__(self, current: S, target: S) -> None:
        super().__init__(f"a conversation in {current} cannot move to {target}")
        self.current, self.target = current, target


def transition(current: S, target: S) -> S:
    """Returns `target` when the move is allowed; raises IllegalTransitionError otherwise."""
    if target not in TRANSITIONS[current]:
        raise IllegalTransitionError(current, target)
    return target


def status_after_customer_message(current: S) -> S:
    """A customer writing again reactivates a waiting conversation, and typing instead of
    answering the handoff offer means carrying on with the assistant."""
    if current == S.WAITING_CUSTOMER:
        return S.WITH_OPERATOR
    if current == S.HANDOFF_OFFERED:
        return S.AI
    return current
