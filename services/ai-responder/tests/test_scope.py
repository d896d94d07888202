"""Knowing what is out of scope, and answering what was asked, on the plain-document tenant."""

from __future__ import annotations

from datetime import date

import pytest

from ai_responder.answering import KnowledgeBase, Question, RetrievalResponder
from ai_responder.dates import day_question, yes_no

from .conftest import KB_ROOT

TENANT = "museo-del-vetro"
HOURS_IT = (
    "Il museo è aperto dal martedì alla domenica, dalle 10:00 alle 18:00.\n"
    "Il lunedì è chiuso. Siamo chiusi anche il 25 dicembre e il 1° gennaio."
)
LUCINE_EN = "The park is open every evening from 7 December to 6 January, from 17:30 to 22:30."


@pytest.fixture(scope="module")
def responder() -> RetrievalResponder:
    return RetrievalResponder(KnowledgeBase.load(KB_ROOT))


def answer(responder: RetrievalResponder, text: str, tenant: str = TENANT) -> tuple[str | None, str | None, str]:
    reply = responder.answer_now(Question(tenant_id=tenant, text=text))
    source = reply.sources[0].article_id if reply.sources else None
    return source, reply.handoff_reason.value if reply.handoff_reason else None, reply.text


@pytest.mark.parametrize(
    "question",
    [
        "Quanto costa l'ingresso al Museo Egizio di Torino?",  # another place
        "Che orari ha il mercatino di Natale di Como?",  # another event, another town
        "Qual è la password del wi-fi?",  # a detail no document states
        "quanto costa il traghetto da Verbania?",  # the ferry is mentioned, its price is not
        "Is the café gluten free?",
    ],
)
def test_out_of_scope_gets_an_honest_i_dont_know_and_a_person(responder: RetrievalResponder, question: str) -> None:
    source, reason, _ = answer(responder, question)
    assert source is None
    assert reason in ("unknown_answer", "low_confidence")


def test_another_events_prices_are_not_this_tenants_answer(responder: RetrievalResponder) -> None:
    source, reason, _ = answer(
        responder, "How much are tickets for the Christmas market in Trento?", "lucine-di-natale"
    )
    assert source is None
    assert reason is not None


@pytest.mark.parametrize(
    ("question", "article"),
    [
        ("What's the exact address?", "faq-en-where-is-the-museum"),
        ("Where exactly is the museum?", "faq-en-where-is-the-museum"),
        ("qual è l'indirizzo esatto?", "faq-it-dove-si-trova-il-museo"),
        ("come ci arrivo da Varese?", "faq-it-come-si-arriva-in-treno-in-traghetto-o-in-auto"),
    ],
)
def test_a_qualifier_or_a_starting_point_does_not_lose_the_answer(
    responder: RetrievalResponder, question: str, article: str
) -> None:
    source, reason, _ = answer(responder, question)
    assert (source, reason) == (article, None)


@pytest.mark.parametrize(
    ("question", "passage", "language", "expected"),
    [
        ("Siete aperti il 2 gennaio?", HOURS_IT, "it", None),  # depends on the weekday: see below
        ("siete aperti a natale?", HOURS_IT, "it", "No"),
        ("il lunedì siete aperti?", HOURS_IT, "it", "No"),
        ("aprite la domenica?", HOURS_IT, "it", "Sì"),
        ("Are you open on 2 January?", LUCINE_EN, "en", "Yes"),
        ("Are you open on 10 February?", LUCINE_EN, "en", "No"),
        ("Are you open on New Year's Eve?", LUCINE_EN, "en", "Yes"),
    ],
)
def test_are_you_open_on_a_day_is_answered_yes_or_no(
    question: str, passage: str, language: str, expected: str | None
) -> None:
    day = day_question(question)
    assert day is not None
    reply = yes_no(day, passage, language, today=date(2026, 12, 2))
    if expected is None:
        # 2 January 2027 is a Saturday: open; in 2034 it is a Monday: closed.
        assert (reply or "").startswith("Sì")
        tuesday = yes_no(day, passage, language, today=date(2028, 12, 2))  # 2 January 2029 is a Tuesday
        assert (tuesday or "").startswith("Sì")
        assert (yes_no(day, passage, language, today=date(2033, 12, 2)) or "").startswith("No")  # a Monday
    else:
        assert (reply or "").startswith(expected), reply


def test_a_day_question_gets_yes_or_no_before_the_hours(responder: RetrievalResponder) -> None:
    source, reason, text = answer(responder, "Are you open on Christmas Day?")
    assert (source, reason) == ("faq-en-when-is-the-museum-open", None)
    assert text.startswith("No, we are closed on Christmas Day.")
    assert "10 am to 6 pm" in text
    assert day_question("What time do you open?") is None
