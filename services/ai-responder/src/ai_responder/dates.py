"""Yes or no to "are you open on 2 January?" / "aprite il lunedì?", read from the answering text.

Retrieval finds the opening-hours passage; this module makes the answer cover the question: it reads
the day the customer asks about (a date, a holiday or a weekday, Italian or English) and what the
passage says (open from 7 December to 6 January; Tuesday to Sunday; closed on Mondays, on 25
December) and puts "Yes, ..." or "No, ..." before the passage. When the passage says nothing it can
decide on, nothing is added: the passage alone is the answer, as before.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, timedelta

from ai_responder.text import normalize, tokenize

__all__ = ["DayQuestion", "day_question", "open_on"]

MONTHS: dict[str, int] = {}
for _number, _names in enumerate(
    (
        "gennaio january jan",
        "febbraio february feb",
        "marzo march mar",
        "aprile april apr",
        "maggio may",
        "giugno june jun",
        "luglio july jul",
        "agosto august aug",
        "settembre september sep sept",
        "ottobre october oct",
        "novembre november nov",
        "dicembre december dec",
    ),
    start=1,
):
    for _name in _names.split():
        MONTHS[_name] = _number

WEEKDAYS: dict[str, int] = {}
for _number, _names in enumerate(
    (
        "lunedi monday mondays",
        "martedi tuesday tuesdays",
        "mercoledi wednesday wednesdays",
        "giovedi thursday thursdays",
        "venerdi friday fridays",
        "sabato sabati saturday saturdays",
        "domenica domeniche sunday sundays",
    )
):
    for _name in _names.split():
        WEEKDAYS[_name] = _number

# Holidays customers name instead of a date: (phrase tokens, month, day). Longest first.
HOLIDAYS: tuple[tuple[tuple[str, ...], int, int], ...] = (
    (("vigilia", "di", "natale"), 12, 24),
    (("christmas", "eve"), 12, 24),
    (("santo", "stefano"), 12, 26),
    (("boxing", "day"), 12, 26),
    (("san", "silvestro"), 12, 31),
    (("new", "year", "s", "eve"), 12, 31),
    (("new", "years", "eve"), 12, 31),
    (("new", "year", "s", "day"), 1, 1),
    (("new", "years", "day"), 1, 1),
    (("christmas", "day"), 12, 25),
    (("natale",), 12, 25),
    (("christmas",), 12, 25),
    (("capodanno",), 1, 1),
    (("epifania",), 1, 6),
    (("epiphany",), 1, 6),
    (("befana",), 1, 6),
    (("ferragosto",), 8, 15),
)
_OPEN_WORDS = frozenset(
    ["aperto", "aperti", "aperta", "aperte", "aprite", "apre", "aprono", "apertura", "open", "opens", "opening"]
)
_CLOSED_WORDS = frozenset(
    ["chiuso", "chiusi", "chiusa", "chiuse", "chiudete", "chiude", "chiusura", "closed", "close", "closes"]
)
_EVERY_DAY = (("tutti", "i", "giorni"), ("tutte", "le", "sere"), ("every", "day"), ("every", "evening"), ("daily",))
_ORDINAL = re.compile(r"^(\d{1,2})(st|nd|rd|th|o)?$")
_SENTENCES = re.compile(r"[.;!?\n]+")


@dataclass(frozen=True, slots=True)
class DayQuestion:
    """The day a customer asks about: a calendar day (month, day) or a weekday (0 = Monday)."""

    month_day: tuple[int, int] | None
    weekday: int | None
    words: frozenset[str]
    """The question's tokens that name the day (left out of retrieval: they are not the topic)."""
    label: str
    """The day as the customer wrote it, for the reply ("2 gennaio", "Mondays")."""


def _dates_in(tokens: list[str]) -> list[tuple[int, int, int, int]]:
    """(month, day, first index, last index) of every date and holiday in the tokens."""
    found: list[tuple[int, int, int, int]] = []
    for i, token in enumerate(tokens):
        match = _ORDINAL.match(token)
        if match and i + 1 < len(tokens) and tokens[i + 1] in MONTHS:
            found.append((MONTHS[tokens[i + 1]], int(match.group(1)), i, i + 1))
        elif token in MONTHS and i + 1 < len(tokens):
            after = _ORDINAL.match(tokens[i + 1])
            if after and not (i > 0 and _ORDINAL.match(tokens[i - 1])):
                found.append((MONTHS[token], int(after.group(1)), i, i + 1))
    for i in range(len(tokens)):
        for phrase, month, day in HOLIDAYS:
            if tuple(tokens[i : i + len(phrase)]) == phrase and not any(a <= i <= b for _, _, a, b in found):
                found.append((month, day, i, i + len(phrase) - 1))
                break
    return [(m, d, a, b) for m, d, a, b in found if 1 <= d <= 31]


def day_question(text: str) -> DayQuestion | None:
    """The day of an "are you open on ...?" question, or None when the text asks no such thing."""
    tokens = tokenize(text)
    if not (_OPEN_WORDS | _CLOSED_WORDS) & set(tokens):
        return None
    dates = _dates_in(tokens)
    if dates:
        month, day, first, last = dates[0]
        words = set(tokens[first : last + 1])
        if tokens[first] not in MONTHS and not _ORDINAL.match(tokens[first]):
            words |= {"day", "eve"}  # "Christmas Day"
        label = _label(text, tokens[first : last + 1]) or " ".join(tokens[first : last + 1])
        return DayQuestion((month, day), None, frozenset(words), label)
    for token in tokens:
        if token in WEEKDAYS:
            return DayQuestion(None, WEEKDAYS[token], frozenset({token}), _label(text, [token]))
    return None


def _label(text: str, tokens: list[str]) -> str:
    """The words of `tokens` as written in `text` (with their accents and capitals)."""
    words = re.findall(r"[\w°º']+", text)
    wanted = list(tokens)
    picked: list[str] = []
    for word in words:
        if wanted and normalize(word).strip("'") in (wanted[0], wanted[0] + "s"):
            picked.append(word)
            wanted.pop(0)
        elif picked and wanted:
            normalized = tokenize(word)
            if normalized and normalized[0] == wanted[0]:
                picked.append(word)
                wanted.pop(0)
    return " ".join(picked)


@dataclass(frozen=True, slots=True)
class _Calendar:
    ranges: tuple[tuple[tuple[int, int], tuple[int, int]], ...]
    closed_days: frozenset[tuple[int, int]]
    open_weekdays: frozenset[int] | None
    closed_weekdays: frozenset[int]


def _weekday_span(first: int, last: int) -> frozenset[int]:
    days = {first}
    while first != last:
        first = (first + 1) % 7
        days.add(first)
    return frozenset(days)


def _calendar(passage: str) -> _Calendar:
    ranges: list[tuple[tuple[int, int], tuple[int, int]]] = []
    closed_days: set[tuple[int, int]] = set()
    open_weekdays: set[int] | None = None
    closed_weekdays: set[int] = set()
    for sentence in _SENTENCES.split(passage):
        tokens = tokenize(sentence)
        closed = bool(_CLOSED_WORDS & set(tokens)) and not _OPEN_WORDS & set(tokens)
        dates = _dates_in(tokens)
        weekdays = [(i, WEEKDAYS[t]) for i, t in enumerate(tokens) if t in WEEKDAYS]
        if closed:
            closed_days.update((m, d) for m, d, _, _ in dates)
            closed_weekdays.update(day for _, day in weekdays)
            continue
        if len(dates) >= 2:
            ranges.append(((dates[0][0], dates[0][1]), (dates[1][0], dates[1][1])))
        if any(tuple(tokens[i : i + len(p)]) == p for p in _EVERY_DAY for i in range(len(tokens))):
            open_weekdays = set(range(7))
        if len(weekdays) >= 2 and weekdays[1][0] - weekdays[0][0] <= 3:
            # "dal martedì alla domenica", "Tuesday to Sunday": a span of days, in a sentence of its own
            # or about hours; a weekday named alone ("in luglio il giovedì fino alle 21") is an extension.
            open_weekdays = set(_weekday_span(weekdays[0][1], weekdays[1][1]))
    return _Calendar(
        tuple(ranges),
        frozenset(closed_days),
        frozenset(open_weekdays) if open_weekdays is not None else None,
        frozenset(closed_weekdays),
    )


def _in_range(day: tuple[int, int], start: tuple[int, int], end: tuple[int, int]) -> bool:
    if start <= end:
        return start <= day <= end
    return day >= start or day <= end  # across the new year: 7 December to 6 January


def _next_occurrence(month_day: tuple[int, int], today: date) -> date | None:
    for year in (today.year, today.year + 1, today.year + 4):
        try:
            candidate = date(year, *month_day)
        except ValueError:
            continue  # 29 February
        if candidate >= today - timedelta(days=1):
            return candidate
    return None


def open_on(question: DayQuestion, passage: str, today: date | None = None) -> bool | None:
    """Whether the passage says the place is open that day; None when it does not say."""
    calendar = _calendar(passage)
    if question.month_day is not None:
        if question.month_day in calendar.closed_days:
            return False
        if calendar.ranges and not any(_in_range(question.month_day, a, b) for a, b in calendar.ranges):
            return False
        known = bool(calendar.ranges or calendar.closed_days or calendar.closed_weekdays or calendar.open_weekdays)
        when = _next_occurrence(question.month_day, today or date.today())
        if when is not None and (
            when.weekday() in calendar.closed_weekdays
            or (calendar.open_weekdays is not None and when.weekday() not in calendar.open_weekdays)
        ):
            return False
        return True if known else None
    assert question.weekday is not None
    if question.weekday in calendar.closed_weekdays:
        return False
    if calendar.open_weekdays is not None:
        return question.weekday in calendar.open_weekdays
    return None


REPLIES = {
    ("it", True): "Sì, {day} siamo aperti.",
    ("it", False): "No, {day} siamo chiusi.",
    ("en", True): "Yes, we are open on {day}.",
    ("en", False): "No, we are closed on {day}.",
}


def yes_no(question: DayQuestion, passage: str, language: str, today: date | None = None) -> str | None:
    """The "Yes, ..." / "No, ..." sentence to put before the passage, or None."""
    verdict = open_on(question, passage, today)
    if verdict is None:
        return None
    template = REPLIES.get((language, verdict)) or REPLIES[("en", verdict)]
    return template.format(day=question.label)
