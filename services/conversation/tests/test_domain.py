import pytest

from contracts.common import ConversationStatus as S
from conversation.domain import (
    ACCEPTS_CUSTOMER_MESSAGES,
    CLOSED,
    TRANSITIONS,
    IllegalTransitionError,
    status_after_customer_message,
    transition,
)
from conversation.notices import duration_text


def test_every_state_of_the_design_is_modelled() -> None:
    assert set(TRANSITIONS) == set(S)
    assert {S.RESOLVED, S.NOT_RESOLVED, S.CANCELLED, S.ABANDONED} == CLOSED


@pytest.mark.parametrize(
    ("current", "target"),
    [
        (S.AI, S.HANDOFF_OFFERED),
        (S.HANDOFF_OFFERED, S.QUEUED),
        (S.HANDOFF_OFFERED, S.AI),
        (S.QUEUED, S.WITH_OPERATOR),
        (S.QUEUED, S.TICKET_PENDING),
        (S.WITH_OPERATOR, S.WAITING_CUSTOMER),
        (S.WAITING_CUSTOMER, S.WITH_OPERATOR),
        (S.WITH_OPERATOR, S.RESOLVED),
        (S.WITH_OPERATOR, S.NOT_RESOLVED),
        (S.TICKET_PENDING, S.TICKET_CREATED),
        (S.AI, S.ABANDONED),
        (S.AI, S.QUEUED),  # the customer asks for a person from the widget's menu
        (S.QUEUED, S.AI),  # the customer leaves the queue
        (S.WITH_OPERATOR, S.AI),  # an operator hands back to the assistant
        (S.WAITING_CUSTOMER, S.AI),
        (S.WAITING_CUSTOMER, S.QUEUED),  # transferred back to the queue
        (S.WAITING_CUSTOMER, S.ABANDONED),
    ],
)
def test_the_designed_transitions_are_allowed(current: S, target: S) -> None:
    assert transition(current, target) == target


@pytest.mark.parametrize(
    ("current", "target"),
    [(S.AI, S.WITH_OPERATOR), (S.RESOLVED, S.AI), (S.TICKET_CREATED, S.QUEUED), (S.QUEUED, S.HANDOFF_OFFERED)],
)
def test_illegal_transitions_are_rejected_with_a_clear_error(current: S, target: S) -> None:
    with pytest.raises(IllegalTransitionError, match=f"{current} cannot move to {target}"):
        transition(current, target)


def test_closed_conversations_accept_no_customer_messages() -> None:
    assert not (CLOSED & ACCEPTS_CUSTOMER_MESSAGES)
    assert S.AI in ACCEPTS_CUSTOMER_MESSAGES
    assert S.TICKET_CREATED not in ACCEPTS_CUSTOMER_MESSAGES


def test_a_customer_message_reactivates_or_continues() -> None:
    assert status_after_customer_message(S.WAITING_CUSTOMER) == S.WITH_OPERATOR
    assert status_after_customer_message(S.HANDOFF_OFFERED) == S.AI
    assert status_after_customer_message(S.QUEUED) == S.QUEUED
    assert status_after_customer_message(S.AI) == S.AI


@pytest.mark.parametrize(
    ("locale", "seconds", "expected"),
    [
        ("en", 30, "1 minute"),
        ("en", 61, "2 minutes"),
        ("en", 2 * 3600 - 1, "120 minutes"),
        ("en", 2 * 3600 + 1, "3 hours"),
        ("it", 3 * 86400, "3 giorni"),
        ("it", 86400, "24 ore"),
        ("fr", 3600, "60 minuti"),  # an unknown locale reads the default language (Italian)
    ],
)
def test_a_promised_duration_is_rounded_up_in_the_largest_honest_unit(
    locale: str, seconds: float, expected: str
) -> None:
    assert duration_text(locale, seconds) == expected
