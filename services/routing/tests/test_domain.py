"""Routing's rules, directly: choosing an operator, the queue order, offers and presence."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from routing import domain
from routing.domain import Operator, Waiting

T0 = datetime(2025, 12, 1, 10, 0, tzinfo=UTC)


def operator(
    operator_id: str,
    *,
    load: int = 0,
    capacity: int = 3,
    skills: tuple[str, ...] = (),
    presence: str = "online",
    last_assigned_minutes_ago: int | None = None,
) -> Operator:
    last = None if last_assigned_minutes_ago is None else T0 - timedelta(minutes=last_assigned_minutes_ago)
    return Operator(operator_id, presence, frozenset(skills), capacity, load, last)  # type: ignore[arg-type]


def waiting(
    *,
    seconds: int = 0,
    priority: str = "normal",
    skills: tuple[str, ...] = (),
    excluded: str | None = None,
    declined_by: tuple[str, ...] = (),
) -> Waiting:
    return Waiting(
        conversation_id=uuid.uuid4(),
        priority=priority,  # type: ignore[arg-type]
        waiting_since=T0 + timedelta(seconds=seconds),
        wanted_skills=frozenset(skills),
        excluded_operator_id=excluded,
        declined_by=declined_by,
    )


def chosen(operators: list[Operator], conversation: Waiting) -> str | None:
    found = domain.choose_operator(operators, conversation)
    return found.operator_id if found else None


def test_a_skill_match_wins_over_a_lower_load() -> None:
    operators = [operator("anna", load=0), operator("bruno", load=2, skills=("tickets",))]
    assert chosen(operators, waiting(skills=("tickets",))) == "bruno"
    assert chosen(operators, waiting(skills=("refunds",))) == "anna", "nobody has it: the lowest load"


def test_the_wanted_skills_are_the_handoff_skills_and_its_intent() -> None:
    assert domain.wanted_skills("tickets", ["italian"]) == {"tickets", "italian"}
    assert domain.wanted_skills(None, []) == frozenset()


def test_among_equal_skills_the_lowest_load_then_the_least_recently_assigned() -> None:
    conversation = waiting()
    assert chosen([operator("anna", load=2), operator("bruno", load=1)], conversation) == "bruno"
    tied = [
        operator("anna", load=1, last_assigned_minutes_ago=1),
        operator("bruno", load=1, last_assigned_minutes_ago=5),
        operator("carla", load=1, last_assigned_minutes_ago=3),
    ]
    assert chosen(tied, conversation) == "bruno"
    assert chosen([*tied, operator("dario", load=1)], conversation) == "dario", "never assigned goes first"


def test_only_online_operators_with_room_and_not_excluded_are_chosen() -> None:
    operators = [
        operator("away", presence="away"),
        operator("offline", presence="offline"),
        operator("full", load=3, capacity=3),
        operator("excluded"),
    ]
    assert chosen(operators, waiting(excluded="excluded")) is None
    assert domain.nobody_online(operators[:2])
    assert not domain.nobody_online(operators)


def test_operators_who_declined_come_last_and_the_one_who_just_did_is_not_asked_again_at_once() -> None:
    operators = [operator("anna"), operator("bruno", load=2)]
    assert chosen(operators, waiting(declined_by=("anna",))) == "bruno"
    assert chosen(operators, waiting(declined_by=("anna", "bruno"))) == "anna", "nobody else: asked again"
    assert domain.choose_operator(operators, waiting(declined_by=("anna",)), not_now="bruno") == operators[0]
    assert domain.choose_operator([operator("anna")], waiting(declined_by=("anna",)), not_now="anna") is None


def test_a_missed_offer_goes_to_someone_else_first_and_back_to_a_lone_operator_only_a_declined_one_does_not() -> None:
    missed, behind = waiting(seconds=0), waiting(seconds=10)
    anna = operator("anna", capacity=1)
    expired = {missed.conversation_id: "anna"}
    # Another operator with room takes it.
    offers = domain.plan_offers([missed], [anna, operator("bruno")], T0, expired=expired)
    assert offers == [domain.Offer(missed.conversation_id, "bruno")]
    # Alone, anna is asked again...
    assert domain.plan_offers([missed], [anna], T0, expired=expired) == [domain.Offer(missed.conversation_id, "anna")]
    # ...after the conversation behind it had its chance at her only seat.
    assert domain.plan_offers([missed, behind], [anna], T0, expired=expired) == [
        domain.Offer(behind.conversation_id, "anna")
    ]
    # A decline is her answer: not asked again in this drain (she may take it from the queue).
    assert domain.plan_offers([missed], [anna], T0, not_now={missed.conversation_id: "anna"}) == []


def test_the_queue_serves_high_priority_first_then_the_longest_waiting() -> None:
    early, late = waiting(seconds=0), waiting(seconds=60)
    upset = waiting(seconds=120, priority="high")
    assert domain.queue_order([late, upset, early]) == [upset, early, late]
    assert domain.positions([late, upset, early]) == {
        upset.conversation_id: 1,
        early.conversation_id: 2,
        late.conversation_id: 3,
    }


def test_draining_offers_in_queue_order_while_seats_last_and_rotates_between_operators() -> None:
    first, second, third = waiting(seconds=0), waiting(seconds=10), waiting(seconds=20)
    upset = waiting(seconds=30, priority="high")
    operators = [operator("anna", capacity=1), operator("bruno", capacity=2, last_assigned_minutes_ago=1)]
    offers = domain.plan_offers([third, second, upset, first], operators, T0)
    # anna was never assigned, so she goes first; then bruno, whose load then equals hers.
    assert offers == [
        domain.Offer(upset.conversation_id, "anna"),
        domain.Offer(first.conversation_id, "bruno"),
        domain.Offer(second.conversation_id, "bruno"),
    ]


def test_a_conversation_nobody_can_take_does_not_hold_back_the_ones_behind_it() -> None:
    blocked = waiting(seconds=0, excluded="anna")
    behind = waiting(seconds=10)
    assert domain.plan_offers([blocked, behind], [operator("anna")], T0) == [
        domain.Offer(behind.conversation_id, "anna")
    ]


def test_two_expired_offers_in_a_row_set_an_operator_away() -> None:
    once = domain.after_expired_offer("online", 0, away_after=2)
    assert once == domain.MissedOffer(missed_in_a_row=1, presence="online")
    twice = domain.after_expired_offer("online", once.missed_in_a_row, away_after=2)
    assert twice.presence == "away"
    assert domain.after_expired_offer("online", 0, away_after=1).presence == "away"


def test_a_heartbeat_repeating_the_operators_choice_does_not_undo_away_but_a_new_choice_does() -> None:
    heartbeat = domain.apply_presence_command("away", "online", "online")
    assert heartbeat == domain.PresenceUpdate(presence="away", requested="online", changed=False)
    chosen_again = domain.apply_presence_command("away", "away", "online")
    assert chosen_again.presence == "online"
    assert chosen_again.changed
    back = domain.apply_presence_command("offline", "online", "online")
    assert back == domain.PresenceUpdate(presence="online", requested="online", changed=True), "a socket reconnects"
    first = domain.apply_presence_command(None, None, "online")
    assert first.presence == "online"
    assert first.changed
    clicked = domain.apply_presence_command("away", "online", "online", chosen=True)
    assert clicked == domain.PresenceUpdate(presence="online", requested="online", changed=True), "clicked again"


def test_positions_are_told_at_every_change_near_the_head_and_by_tenths_further_back() -> None:
    assert domain.worth_telling(None, 412), "the first position is always told"
    assert not domain.worth_telling(7, 7)
    assert [p for p in range(12, 0, -1) if domain.worth_telling(p + 1, p)] == list(range(10, 0, -1))
    told, last = [], 400
    for position in range(399, 0, -1):  # the head leaves 399 times
        if domain.worth_telling(last, position):
            told.append(position)
            last = position
    assert told[:3] == [360, 324, 291]
    assert told[-10:] == list(range(10, 0, -1))
    assert len(told) < 50, "not 399"
    assert domain.worth_telling(20, 22), "moving back (an upset customer ahead) by a tenth is told"


def test_the_estimated_wait_grows_with_the_position_and_is_unknown_with_nobody_online() -> None:
    operators = [operator("anna", capacity=2), operator("bruno", capacity=1), operator("away", presence="away")]
    assert domain.estimated_wait_seconds(1, operators, 240) == 240
    assert domain.estimated_wait_seconds(3, operators, 240) == 240
    assert domain.estimated_wait_seconds(4, operators, 240) == 480
    assert domain.estimated_wait_seconds(1, operators[2:], 240) is None
    assert domain.estimated_wait_seconds(10_000, operators, 240) == domain.ESTIMATE_CAP_SECONDS


def test_transitions_a_conversation_can_be_taken_until_it_is_assigned() -> None:
    assert domain.can_take("waiting")
    assert domain.can_take("offered")
    assert not domain.can_take("assigned")
    assert domain.can_move("offered", "offered"), "an offer moves on to the next operator"
    assert domain.can_move("assigned", "waiting"), "a transfer back to the queue"
    assert not domain.can_move("waiting", "waiting")
