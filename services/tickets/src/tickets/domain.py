"""The tickets service's rules, free of I/O: the lifecycle, the proposed priority, ticket numbers,
contact matching, and SLA time counted in a tenant's business hours."""

from __future__ import annotations

import hmac
import itertools
import re
import unicodedata
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from contracts.common import HandoffReason, TicketPriority, TicketStatus, shortened
from contracts.readapi import SlaState

S = TicketStatus
P = TicketPriority

# ------------------------------------------------------------------------------------ lifecycle

# The moves an operator (or a customer's reply) may make. A ticket is closed only once resolved,
# and a closed ticket is final: a customer writing about it again opens a new conversation.
TRANSITIONS: dict[S, frozenset[S]] = {
    S.OPEN: frozenset({S.IN_PROGRESS, S.WAITING_CUSTOMER, S.RESOLVED}),
    # Back to OPEN when its operator lets it go (unassigned).
    S.IN_PROGRESS: frozenset({S.OPEN, S.WAITING_CUSTOMER, S.RESOLVED}),
    # Leaves it when the customer answers (reopened) or the operator moves on without the answer.
    S.WAITING_CUSTOMER: frozenset({S.OPEN, S.IN_PROGRESS, S.RESOLVED}),
    # Reopened (by the customer's reply or an operator), or closed for good.
    S.RESOLVED: frozenset({S.OPEN, S.IN_PROGRESS, S.CLOSED}),
    S.CLOSED: frozenset(),
}


class IllegalTransitionError(ValueError):
    def __init__(self, current: S, target: S) -> None:
        super().__init__(f"a ticket in {current} cannot move to {target}")
        self.current, self.target = current, target


def transition(current: S, target: S) -> S:
    """Returns `target` when the move is allowed; raises IllegalTransitionError otherwise."""
    if target not in TRANSITIONS[current]:
        raise IllegalTransitionError(current, target)
    return target


def status_after_customer_reply(current: S, assigned: bool) -> S:
    """A customer's answer reopens a ticket that was waiting for it or resolved: to its operator
    (IN_PROGRESS) when it has one, else back in the open pile. Other statuses stay as they are
    (a CLOSED ticket refuses the reply before this is asked)."""
    if current in (S.WAITING_CUSTOMER, S.RESOLVED):
        return S.IN_PROGRESS if assigned else S.OPEN
    return current


def status_after_operator_reply(current: S) -> S:
    """An operator answering an OPEN ticket is working on it: IN_PROGRESS. Other statuses stay:
    a reply alone does not say that the team now waits for the customer (a holding answer, "we
    are checking", must not pause the SLA clocks); the operator sets WAITING_CUSTOMER for that."""
    return S.IN_PROGRESS if current == S.OPEN else current


def status_after_assignment(current: S, assigned: bool) -> S:
    """Taking an open ticket starts the work on it; letting an IN_PROGRESS one go puts it back
    in the open pile. An explicit status in the same command wins over this."""
    if assigned and current == S.OPEN:
        return S.IN_PROGRESS
    if not assigned and current == S.IN_PROGRESS:
        return S.OPEN
    return current


# ------------------------------------------------------------------------------------- priority

# Words that propose a priority, Italian and English, compared accent- and case-insensitively,
# whole words or phrases only (`subito` matches, `subitone` does not). A tenant's config may
# replace either list (`priority_words` in its YAML file).
URGENT_WORDS: tuple[str, ...] = (
    # Italian
    "urgente",
    "urgenti",
    "urgentissimo",
    "urgenza",
    "emergenza",
    "subito",
    "immediatamente",
    "al più presto",
    "il prima possibile",
    # English
    "urgent",
    "urgently",
    "emergency",
    "asap",
    "immediately",
    "right away",
    "as soon as possible",
)
HIGH_WORDS: tuple[str, ...] = (
    # Italian
    "reclamo",
    "rimborso",
    "truffa",
    "inaccettabile",
    "vergogna",
    "arrabbiato",
    "arrabbiata",
    "furioso",
    "furiosa",
    "avvocato",
    "denuncia",
    # English
    "complaint",
    "refund",
    "scam",
    "unacceptable",
    "angry",
    "furious",
    "lawyer",
    "chargeback",
)
# The assistant's reasons for a handoff that mean the customer should not wait long.
PRESSING_HANDOFF_REASONS = frozenset({HandoffReason.SENSITIVE_TOPIC, HandoffReason.NEGATIVE_SENTIMENT})


def _folded_words(text: str) -> str:
    """Lower-case words without accents, one space apart and padded, for whole-word matching."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    plain = "".join(c for c in decomposed if not unicodedata.combining(c))
    return " " + " ".join(re.findall(r"[a-z0-9]+", plain)) + " "


@dataclass(frozen=True)
class PriorityWords:
    urgent: tuple[str, ...] = URGENT_WORDS
    high: tuple[str, ...] = HIGH_WORDS

    def find(self, words: Iterable[str], texts: Sequence[str]) -> bool:
        haystack = "".join(_folded_words(t) for t in texts)
        return any(_folded_words(w) in haystack for w in words if w.strip())


def propose_priority(
    texts: Sequence[str],
    *,
    upset: bool = False,
    handoff_reason: HandoffReason | None = None,
    words: PriorityWords = PriorityWords(),  # frozen: one shared default is safe
) -> P:
    """The priority a ticket starts with when nobody set one: urgent words make it urgent; an
    upset customer, a sensitive or angry conversation, or a complaint's words make it high."""
    if words.find(words.urgent, texts):
        return P.URGENT
    if upset or handoff_reason in PRESSING_HANDOFF_REASONS or words.find(words.high, texts):
        return P.HIGH
    return P.NORMAL


# -------------------------------------------------------------------------------------- numbers


def ticket_number(prefix: str, year: int, counter: int) -> str:
    """`TCK-2026-000123`: the tenant's prefix, the year opened, its counter (6 digits or more)."""
    return f"{prefix}-{year:04d}-{counter:06d}"


SUBJECT_CHARS = 120


def subject_from(message: str, customer_lines: Sequence[str]) -> str:
    """A subject when none was given: the first line of the customer's message (else of what the
    customer wrote first in the conversation), cut to a list line."""
    for text in (message, *customer_lines):
        first = next((line.strip() for line in text.splitlines() if line.strip()), "")
        if first:
            return shortened(first, SUBJECT_CHARS)
    return ""


# ------------------------------------------------------------------------------ contact lookup


def email_key(email: str | None) -> str | None:
    """An email as it is compared: trimmed, case-insensitive."""
    key = (email or "").strip().casefold()
    return key or None


def phone_key(phone: str | None) -> str | None:
    """A phone number as it is compared: its digits only (`+39 333-123 4567` = `393331234567`)."""
    key = re.sub(r"[^0-9]", "", phone or "")
    return key or None


# Compared instead when the ticket is unknown, so that an unknown number costs what a wrong
# contact costs; it never matches (a real key has no NUL).
DUMMY_CONTACT_KEY = "\0" * 32


def contact_matches(
    stored_email: str | None, stored_phone: str | None, given_email: str | None, given_phone: str | None
) -> bool:
    """Whether the email or the phone a customer gave is the ticket's, compared in constant time
    per value (both values are always compared, whichever is given)."""
    given = (email_key(given_email), phone_key(given_phone))
    stored = (stored_email, stored_phone)
    matched = False
    for mine, theirs in zip(given, stored, strict=True):
        same = hmac.compare_digest((mine or DUMMY_CONTACT_KEY).encode(), (theirs or "\0").encode())
        matched |= same and mine is not None
    return matched


# ------------------------------------------------------------------------------ business hours

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_MAX_DAYS_AHEAD = 3660  # a clock never needs more; guards against a calendar with no open time


@dataclass(frozen=True)
class Window:
    """Open from `start` to `end` (local time, the same day) on `weekday` (0 = Monday)."""

    weekday: int
    start: time
    end: time


@dataclass(frozen=True)
class BusinessHours:
    """When a tenant's SLA clocks count: windows of local time in `time_zone`. Local times are
    turned into instants day by day, so a daylight-saving change moves the window with the
    clock on the wall (17:30 stays 17:30) and a window's length is what really elapses."""

    time_zone: ZoneInfo
    windows: tuple[Window, ...] = field(default=())

    def __post_init__(self) -> None:
        if not self.windows:
            raise ValueError("business hours need at least one window")
        for day in range(7):
            spans = sorted((w.start, w.end) for w in self.windows if w.weekday == day)
            for start, end in spans:
                if end <= start:
                    raise ValueError(f"a window must end after it starts ({start}-{end})")
            for (_, end), (start, _) in itertools.pairwise(spans):
                if start < end:
                    raise ValueError(f"windows overlap on {WEEKDAYS[day]}")

    def periods(self, since: datetime) -> Iterator[tuple[datetime, datetime]]:
        """The open periods (UTC) from `since` on, in order, the first cut at `since`."""
        # From the day before: a local day may begin before `since`'s UTC date.
        day: date = since.astimezone(self.time_zone).date() - timedelta(days=1)
        for _ in range(_MAX_DAYS_AHEAD):
            for window in sorted((w for w in self.windows if w.weekday == day.weekday()), key=lambda w: w.start):
                opens = datetime.combine(day, window.start, self.time_zone).astimezone(UTC)
                closes = datetime.combine(day, window.end, self.time_zone).astimezone(UTC)
                # A window inside a spring-forward gap does not exist that day.
                if closes > since and closes > opens:
                    yield max(opens, since), closes
            day += timedelta(days=1)
        raise RuntimeError("no business hours within ten years")


def add_business_time(hours: BusinessHours | None, start: datetime, seconds: float) -> datetime:
    """The instant when `seconds` of business time have passed since `start` (wall-clock time
    when the tenant has no business hours). Zero or less is `start` itself."""
    if seconds <= 0:
        return start
    if hours is None:
        return start + timedelta(seconds=seconds)
    remaining = seconds
    for opens, closes in hours.periods(start):
        span = (closes - opens).total_seconds()
        if remaining <= span:
            return opens + timedelta(seconds=remaining)
        remaining -= span
    raise AssertionError("periods() never ends")  # pragma: no cover


def business_seconds(hours: BusinessHours | None, start: datetime, end: datetime) -> float:
    """Business seconds between two instants (0 when `end` is not after `start`)."""
    if end <= start:
        return 0.0
    if hours is None:
        return (end - start).total_seconds()
    total = 0.0
    for opens, closes in hours.periods(start):
        if opens >= end:
            break
        total += (min(closes, end) - opens).total_seconds()
    return total


# ---------------------------------------------------------------------------------- SLA clocks

WARNING_FRACTION = 0.8  # a clock is at risk, and warns once, at 80% of its target


@dataclass(frozen=True)
class SlaTargets:
    """Business seconds a ticket of one priority may take to its first answer and to resolution."""

    first_response_seconds: float
    resolution_seconds: float


@dataclass(frozen=True)
class ClockReading:
    """An SLA clock as stored: its target, the business time it used before its current run,
    the start of that run (None while paused or met) and its once-only marks."""

    target_seconds: float
    used_seconds: float
    running_since: datetime | None
    warned: bool = False
    breached: bool = False
    met: bool = False

    def used_at(self, hours: BusinessHours | None, now: datetime) -> float:
        running = business_seconds(hours, self.running_since, now) if self.running_since else 0.0
        return self.used_seconds + running

    def deadline(self, hours: BusinessHours | None, fraction: float = 1.0) -> datetime | None:
        """When the clock reaches `fraction` of its target if it keeps running; None unless running."""
        if self.running_since is None or self.met:
            return None
        return add_business_time(hours, self.running_since, fraction * self.target_seconds - self.used_seconds)

    def state(self, hours: BusinessHours | None, now: datetime) -> SlaState:
        """What the dashboard's badge shows. A breach is remembered (met late is still breached);
        a paused clock is `paused` however close it was."""
        used = self.used_at(hours, now)
        if self.breached or (not self.met and self.running_since is not None and used >= self.target_seconds):
            return "breached"
        if self.met:
            return "met"
        if self.running_since is None:
            return "paused"
        if self.warned or used >= WARNING_FRACTION * self.target_seconds:
            return "at_risk"
        return "on_time"


# Worst first: a ticket's SLA state is the worst of its clocks'.
SLA_SEVERITY: dict[SlaState, int] = {"breached": 4, "at_risk": 3, "on_time": 2, "paused": 1, "met": 0}


def worst(states: Iterable[SlaState]) -> SlaState:
    return max(states, key=SLA_SEVERITY.__getitem__, default="on_time")
