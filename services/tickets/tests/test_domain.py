"""The tickets service's rules, directly: the lifecycle, the proposed priority, numbers, contact
matching, business-hours arithmetic (the demo tenant's 17:30-22:30 in Europe/Rome, across
daylight-saving changes) and the tenant config files."""

from __future__ import annotations

import re
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from contracts.common import HandoffReason, TicketPriority, TicketStatus
from tickets import domain
from tickets.domain import BusinessHours, ClockReading, PriorityWords, Window
from tickets.tenants import DEFAULT_POLICY, TenantPolicies, load_policies, read_tenant_file

S = TicketStatus
P = TicketPriority
ROME = ZoneInfo("Europe/Rome")
EVENINGS = BusinessHours(ROME, tuple(Window(day, time(17, 30), time(22, 30)) for day in range(7)))
SHIPPED_TENANTS = Path(__file__).resolve().parents[1] / "tenants"


def rome(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=ROME)


# ------------------------------------------------------------------------------------ lifecycle


@pytest.mark.parametrize(
    ("current", "target"),
    [
        (S.OPEN, S.IN_PROGRESS),
        (S.IN_PROGRESS, S.WAITING_CUSTOMER),
        (S.WAITING_CUSTOMER, S.IN_PROGRESS),
        (S.IN_PROGRESS, S.RESOLVED),
        (S.RESOLVED, S.CLOSED),
        (S.RESOLVED, S.IN_PROGRESS),
        (S.WAITING_CUSTOMER, S.RESOLVED),
    ],
)
def test_the_lifecycle_allows_the_usual_moves(current: S, target: S) -> None:
    assert domain.transition(current, target) == target


@pytest.mark.parametrize(
    ("current", "target"),
    [
        (S.OPEN, S.CLOSED),
        (S.IN_PROGRESS, S.CLOSED),
        (S.WAITING_CUSTOMER, S.CLOSED),
        (S.RESOLVED, S.WAITING_CUSTOMER),
        (S.CLOSED, S.OPEN),
        (S.CLOSED, S.IN_PROGRESS),
        (S.CLOSED, S.RESOLVED),
    ],
)
def test_illegal_moves_are_refused_by_name(current: S, target: S) -> None:
    with pytest.raises(domain.IllegalTransitionError, match=f"{current} cannot move to {target}"):
        domain.transition(current, target)


def test_every_status_is_in_the_table_and_closed_is_final() -> None:
    assert set(domain.TRANSITIONS) == set(S)
    assert domain.TRANSITIONS[S.CLOSED] == frozenset()
    assert all(S.CLOSED not in targets for status, targets in domain.TRANSITIONS.items() if status != S.RESOLVED)


def test_a_customer_reply_reopens_a_waiting_or_resolved_ticket_to_its_operator_or_the_open_pile() -> None:
    for current in (S.WAITING_CUSTOMER, S.RESOLVED):
        assert domain.status_after_customer_reply(current, assigned=True) == S.IN_PROGRESS
        assert domain.status_after_customer_reply(current, assigned=False) == S.OPEN
    assert domain.status_after_customer_reply(S.OPEN, assigned=False) == S.OPEN
    assert domain.status_after_customer_reply(S.IN_PROGRESS, assigned=True) == S.IN_PROGRESS


def test_assigning_starts_an_open_ticket_and_unassigning_puts_it_back() -> None:
    assert domain.status_after_assignment(S.OPEN, assigned=True) == S.IN_PROGRESS
    assert domain.status_after_assignment(S.IN_PROGRESS, assigned=False) == S.OPEN
    assert domain.status_after_assignment(S.WAITING_CUSTOMER, assigned=True) == S.WAITING_CUSTOMER


# ------------------------------------------------------------------------------------- priority


@pytest.mark.parametrize(
    "text",
    [
        "È URGENTE, il concerto è stasera",
        "Mi serve una risposta il prima possibile",
        "Rispondete al più presto!",
        "Please answer ASAP",
        "This is an emergency",
        "I need it right away.",
    ],
)
def test_urgent_words_in_italian_or_english_make_a_ticket_urgent(text: str) -> None:
    assert domain.propose_priority([text]) == P.URGENT


@pytest.mark.parametrize("text", ["Voglio un rimborso", "Ho un reclamo da fare", "This is unacceptable", "REFUND now"])
def test_complaint_words_make_a_ticket_high(text: str) -> None:
    assert domain.propose_priority(["", text]) == P.HIGH


def test_words_match_whole_words_only_and_plain_text_is_normal() -> None:
    assert domain.propose_priority(["Vorrei sapere gli orari"]) == P.NORMAL
    assert domain.propose_priority(["insurgentes avenue", "subitone"]) == P.NORMAL


def test_an_upset_customer_or_a_pressing_handoff_makes_a_ticket_high() -> None:
    assert domain.propose_priority(["orari?"], upset=True) == P.HIGH
    assert domain.propose_priority(["orari?"], handoff_reason=HandoffReason.SENSITIVE_TOPIC) == P.HIGH
    assert domain.propose_priority(["orari?"], handoff_reason=HandoffReason.NEGATIVE_SENTIMENT) == P.HIGH
    assert domain.propose_priority(["orari?"], handoff_reason=HandoffReason.LOW_CONFIDENCE) == P.NORMAL
    assert domain.propose_priority(["urgente"], upset=True) == P.URGENT, "urgent words win"


def test_a_tenant_may_bring_its_own_words() -> None:
    words = PriorityWords(urgent=("codice rosso",), high=())
    assert domain.propose_priority(["Codice ROSSO!"], words=words) == P.URGENT
    assert domain.propose_priority(["urgente"], words=words) == P.NORMAL


# -------------------------------------------------------------------------------------- numbers


def test_numbers_are_prefix_year_and_a_counter_of_six_digits_or_more() -> None:
    assert domain.ticket_number("TCK", 2026, 123) == "TCK-2026-000123"
    assert domain.ticket_number("TCK", 2026, 1_234_567) == "TCK-2026-1234567"
    assert re.fullmatch(r"[A-Z]{2,5}-[0-9]{4}-[0-9]{6,10}", domain.ticket_number("GLX", 2027, 1))


def test_a_subject_is_the_first_line_of_the_message_else_of_the_customer_cut_to_a_line() -> None:
    assert domain.subject_from("\n  Biglietto perso \nDettagli...", []) == "Biglietto perso"
    assert domain.subject_from("", ["Ciao", "altro"]) == "Ciao"
    assert len(domain.subject_from("x" * 500, [])) == domain.SUBJECT_CHARS


# ------------------------------------------------------------------------------ contact lookup


def test_contacts_match_case_insensitive_email_or_the_digits_of_the_phone() -> None:
    email, phone = domain.email_key("Anna.Rossi@Example.com"), domain.phone_key("+39 333-123 4567")
    assert phone == "393331234567"
    assert domain.contact_matches(email, phone, " anna.rossi@EXAMPLE.com ", None)
    assert domain.contact_matches(email, phone, None, "+39 (333) 1234567")
    assert domain.contact_matches(email, phone, "wrong@example.com", "393331234567"), "either one is enough"
    assert not domain.contact_matches(email, phone, "wrong@example.com", None)
    assert not domain.contact_matches(email, phone, None, "3331234567"), "every digit counts"
    assert not domain.contact_matches(email, None, None, "123456"), "no phone stored"
    assert not domain.contact_matches(None, None, "", "  "), "nothing given matches nothing"
    dummy = domain.DUMMY_CONTACT_KEY
    assert not domain.contact_matches(dummy, dummy, "anna.rossi@example.com", "393331234567")


# ------------------------------------------------------------------------------ business hours


def test_time_outside_the_evening_window_does_not_count() -> None:
    morning = rome(2025, 12, 10, 10, 0)
    assert domain.add_business_time(EVENINGS, morning, 30 * 60) == rome(2025, 12, 10, 18, 0)
    assert domain.business_seconds(EVENINGS, morning, rome(2025, 12, 10, 17, 30)) == 0
    assert domain.business_seconds(EVENINGS, rome(2025, 12, 10, 17, 0), rome(2025, 12, 10, 23, 0)) == 5 * 3600


def test_a_deadline_past_closing_time_carries_over_to_the_next_evening() -> None:
    late = rome(2025, 12, 10, 22, 0)
    assert domain.add_business_time(EVENINGS, late, 3600) == rome(2025, 12, 11, 18, 0)
    assert domain.add_business_time(EVENINGS, late, 10.5 * 3600) == rome(2025, 12, 12, 22, 30), "30m + 5h + 5h"
    assert domain.add_business_time(EVENINGS, late, 11 * 3600) == rome(2025, 12, 13, 18, 0), "and 30m more"
    assert domain.business_seconds(EVENINGS, late, rome(2025, 12, 11, 18, 0)) == 3600


def test_adding_and_measuring_agree() -> None:
    start = rome(2025, 12, 10, 19, 12, 33)
    for seconds in (1, 59, 3600, 5 * 3600, 17 * 3600 + 123):
        end = domain.add_business_time(EVENINGS, start, seconds)
        assert domain.business_seconds(EVENINGS, start, end) == pytest.approx(seconds)


@pytest.mark.parametrize(
    ("before", "after"),
    [
        ((2026, 3, 28), (2026, 3, 29)),  # spring forward: CET (+1) to CEST (+2)
        ((2026, 10, 24), (2026, 10, 25)),  # fall back: CEST to CET
    ],
)
def test_the_window_stays_17_30_to_22_30_on_the_wall_across_daylight_saving_changes(
    before: tuple[int, int, int], after: tuple[int, int, int]
) -> None:
    closing = rome(*before, 22, 30)
    next_deadline = domain.add_business_time(EVENINGS, closing, 60)
    assert next_deadline.astimezone(ROME).replace(tzinfo=None) == datetime(*after, 17, 31)
    offsets = {rome(*day, 18, 0).utcoffset() for day in (before, after)}
    assert len(offsets) == 2, "the UTC offset changed between the two evenings"
    assert domain.business_seconds(EVENINGS, rome(*before, 12, 0), rome(*after, 23, 0)) == 10 * 3600


def test_a_night_window_lasts_what_really_elapses_on_the_nights_the_clocks_change() -> None:
    nights = BusinessHours(ROME, (Window(6, time(1, 0), time(4, 0)),))  # Sundays 01:00-04:00
    spring, autumn, plain = rome(2026, 3, 29), rome(2026, 10, 25), rome(2026, 3, 22)
    day = timedelta(days=1)
    assert domain.business_seconds(nights, spring, spring + day) == 2 * 3600
    assert domain.business_seconds(nights, autumn, autumn + day) == 4 * 3600
    assert domain.business_seconds(nights, plain, plain + day) == 3 * 3600


def test_without_business_hours_every_second_counts() -> None:
    start = datetime(2025, 12, 10, 3, 0, tzinfo=UTC)
    assert domain.add_business_time(None, start, 90) == start + timedelta(seconds=90)
    assert domain.business_seconds(None, start, start + timedelta(hours=2)) == 7200
    assert domain.add_business_time(EVENINGS, start, 0) == start, "nothing left is due at once"


def test_business_hours_refuse_overlaps_and_empty_calendars() -> None:
    with pytest.raises(ValueError, match="overlap"):
        BusinessHours(ROME, (Window(0, time(9), time(12)), Window(0, time(11), time(13))))
    with pytest.raises(ValueError, match="at least one"):
        BusinessHours(ROME, ())


# ---------------------------------------------------------------------------------- SLA clocks


def test_a_clock_warns_at_80_percent_and_breaches_at_its_target_in_business_time() -> None:
    started = rome(2025, 12, 10, 17, 30)
    clock = ClockReading(target_seconds=3600, used_seconds=0, running_since=started)
    assert clock.deadline(EVENINGS, domain.WARNING_FRACTION) == rome(2025, 12, 10, 18, 18)
    assert clock.deadline(EVENINGS) == rome(2025, 12, 10, 18, 30)
    assert clock.state(EVENINGS, rome(2025, 12, 10, 18, 0)) == "on_time"
    assert clock.state(EVENINGS, rome(2025, 12, 10, 18, 20)) == "at_risk"
    assert clock.state(EVENINGS, rome(2025, 12, 10, 18, 30)) == "breached"


def test_a_paused_clock_keeps_its_time_has_no_deadline_and_never_breaches() -> None:
    paused = ClockReading(target_seconds=3600, used_seconds=3000, running_since=None, warned=True)
    assert paused.deadline(EVENINGS) is None
    assert paused.state(EVENINGS, rome(2030, 1, 1, 20, 0)) == "paused"
    resumed = ClockReading(target_seconds=3600, used_seconds=3000, running_since=rome(2025, 12, 11, 12, 0))
    assert resumed.deadline(EVENINGS) == rome(2025, 12, 11, 17, 40), "the ten minutes it had left, in business time"


def test_a_met_clock_is_met_unless_it_breached_first() -> None:
    now = rome(2025, 12, 10, 20, 0)
    assert ClockReading(3600, 100, None, met=True).state(EVENINGS, now) == "met"
    assert ClockReading(3600, 4000, None, breached=True, met=True).state(EVENINGS, now) == "breached"
    assert domain.worst(["met", "paused", "at_risk"]) == "at_risk"
    assert domain.worst(["met", "breached", "at_risk"]) == "breached"


# ---------------------------------------------------------------------------------- tenant files


def test_the_shipped_tenant_counts_only_its_evenings_in_rome() -> None:
    policy = read_tenant_file(SHIPPED_TENANTS / "lucine-di-natale.yaml")
    assert policy.ticket_prefix == "TCK"
    assert policy.business_hours is not None
    assert policy.business_hours.time_zone == ROME
    assert {w.weekday for w in policy.business_hours.windows} == set(range(7))
    assert policy.targets[P.URGENT].first_response_seconds == 30 * 60
    assert set(policy.targets) == set(P)
    assert policy.year_of(datetime(2025, 12, 31, 23, 30, tzinfo=UTC)) == 2026, "the year on the tenant's wall"
    assert load_policies(SHIPPED_TENANTS).of("lucine-di-natale") == policy


def test_tenant_files_read_durations_and_refuse_mistakes(tmp_path: Path) -> None:
    good = tmp_path / "good.yaml"
    good.write_text(
        "tenant_id: t1\nsla:\n  urgent: {first_response: 1h30m, resolution: 90}\n"
        "  high: {first_response: 2s, resolution: 4s}\n  normal: {first_response: 5m, resolution: 1h}\n"
        "  low: {first_response: 1h, resolution: 2h}\npriority_words: {urgent: [presto]}\n"
    )
    policy = read_tenant_file(good)
    assert policy.targets[P.URGENT].first_response_seconds == 5400
    assert policy.targets[P.URGENT].resolution_seconds == 90
    assert policy.business_hours is None
    assert policy.words.urgent == ("presto",)
    assert policy.words.high == domain.HIGH_WORDS, "a list left out keeps the built-in one"
    for mistake, message in (
        ("tenant_id: t2\nsla: {urgent: {first_response: soon, resolution: 1h}}", "not a duration"),
        ("tenant_id: t3\nsla: {urgent: {first_response: 1h, resolution: 1h}}", "every priority"),
        (
            "tenant_id: t4\nbusiness_hours: {time_zone: Mars/Olympus, windows: [{days: [mon], start: '09:00',"
            " end: '10:00'}]}",
            "time zone",
        ),
        (
            "tenant_id: t5\nbusiness_hours: {time_zone: UTC, windows: [{days: [moon], start: '09:00', end: '10:00'}]}",
            "days",
        ),
    ):
        bad = tmp_path / "bad.yaml"
        bad.write_text(mistake)
        with pytest.raises(ValueError, match=message):
            read_tenant_file(bad)


def test_an_unknown_tenant_gets_the_default_policy() -> None:
    assert TenantPolicies({}).of("nobody") is DEFAULT_POLICY
    assert DEFAULT_POLICY.business_hours is None
