"""The figures of a known day, from its events applied by the real consumer to the real PostgreSQL;
the same events again, in another order and twice, give the same figures."""

from __future__ import annotations

import random
import uuid
from datetime import timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from prometheus_client import REGISTRY
from sqlalchemy import func, select

from analytics import reports
from analytics.store import FactRecord, Period, QuestionRecord
from contracts.common import ConversationStatus as S
from contracts.common import Sender
from contracts.events import (
    AiReplyGenerated,
    AnalyticsFact,
    AnswerFeedbackGiven,
    ConversationStarted,
    MessagePosted,
    StatusChanged,
)
from contracts.readapi import AnalyticsOverview, ReportPeriod
from devkit.testing import Infra, create_database, drop_database

from .conftest import DAY, TENANT, AnalyticsHarness, Mix, apply_mix, at, message, migrated_harness

DAY_PARAMS = {"tenant_id": TENANT, "from": "2025-03-10", "to": "2025-03-10"}


async def overview_of(harness: AnalyticsHarness, **params: Any) -> AnalyticsOverview:
    async with harness.read_api() as api:
        response = await api.get("/internal/analytics/overview", params=DAY_PARAMS | params)
    assert response.status_code == 200, response.text
    return AnalyticsOverview.model_validate(response.json())


async def test_every_figure_of_a_known_day_with_a_duplicate_and_late_events(
    analytics: AnalyticsHarness, mix: Mix
) -> None:
    await apply_mix(analytics, mix)
    o = await overview_of(analytics)

    assert o.conversations_started == 8
    assert (o.ai_involved, o.involvement_rate) == (7, 7 / 8)
    assert (o.ai_resolved, o.ai_resolved_confirmed, o.ai_resolved_assumed, o.ai_pending) == (2, 1, 1, 1)
    assert o.ai_resolution_rate == 2 / 7
    assert o.automation_rate == 2 / 8
    assert (o.handed_off, o.handoff_rate) == (4, 0.5)
    assert (o.abandoned, o.abandoned_in_queue, o.abandoned_unanswered, o.abandonment_rate) == (2, 1, 1, 0.25)
    assert o.no_operator_available == 1

    assert (o.queue_wait.count, o.queue_wait.mean_seconds, o.queue_wait.p50_seconds) == (2, 90, 90)
    assert o.queue_wait.p90_seconds == pytest.approx(114)
    first = o.operator_first_response
    assert (first.count, first.mean_seconds, first.p50_seconds) == (2, 60, 60)
    assert first.p90_seconds == pytest.approx(84)
    handle = o.operator_handle_time
    assert (handle.count, handle.mean_seconds, handle.p50_seconds) == (2, 450, 450)
    assert handle.p90_seconds == pytest.approx(570)

    assert o.tickets_created == 2
    assert o.sla_first_response.model_dump() == {"met": 1, "missed": 1, "pending": 0, "compliance": 0.5}
    assert o.sla_resolution.model_dump() == {"met": 1, "missed": 0, "pending": 1, "compliance": 1.0}

    assert (o.csat.count, o.csat.average) == (2, 3.0)
    assert {s.score: s.count for s in o.csat.distribution} == {1: 0, 2: 1, 3: 0, 4: 1, 5: 0}
    assert [(h.hour, h.conversations) for h in o.busiest_hours] == [
        (9, 2),
        (10, 1),
        (11, 1),
        (12, 1),
        (13, 1),
        (14, 1),
        (15, 1),
    ]

    async with analytics.read_api() as api:
        reasons = (await api.get("/internal/analytics/handoff-reasons", params=DAY_PARAMS)).json()
        operators = (await api.get("/internal/analytics/operators", params=DAY_PARAMS)).json()
        gaps = (await api.get("/internal/analytics/kb-gaps", params=DAY_PARAMS)).json()
        days = (await api.get("/internal/analytics/series", params=DAY_PARAMS)).json()
        hours = (await api.get("/internal/analytics/series", params=DAY_PARAMS | {"granularity": "hour"})).json()
    assert reasons["handed_off"] == 4
    assert [(r["reason"], r["conversations"], r["share"]) for r in reasons["reasons"]] == [
        ("customer_request", 1, 0.25),
        ("low_confidence", 1, 0.25),
        ("negative_sentiment", 1, 0.25),
        ("unknown_answer", 1, 0.25),
    ]
    assert [
        (o["operator_id"], o["conversations"], o["turns"], o["first_response_mean_seconds"])
        for o in operators["operators"]
    ] == [("anna", 1, 1, 30), ("bruno", 1, 1, 90)]
    assert [(o["handle_time_mean_seconds"], o["csat_count"], o["csat_average"]) for o in operators["operators"]] == [
        (600, 1, 4.0),
        (300, 1, 2.0),
    ]

    assert gaps["unanswered_questions"] == 3
    assert [(g["question"], g["count"], g["examples"]) for g in gaps["gaps"]] == [
        ("Posso portare il cane?", 2, ["Posso portare il cane?", "posso portare il mio cane???"]),
        ("Avete un parcheggio per camper?", 1, ["Avete un parcheggio per camper?"]),
    ]
    assert gaps["gaps"][0]["conversation_ids"] == [str(mix.ids["offer_declined"]), str(mix.ids["anna_resolved"])]

    (day,) = days["points"]
    assert day == {
        "period_start": "2025-03-10T00:00:00Z",
        "conversations_started": 8,
        "ai_involved": 7,
        "ai_resolved": 2,
        "handed_off": 4,
        "abandoned": 2,
        "tickets_created": 2,
    }
    by_hour = {p["period_start"][11:13]: p for p in hours["points"]}
    assert sorted(by_hour) == ["09", "10", "11", "12", "13", "14", "15", "16"]
    assert (by_hour["09"]["conversations_started"], by_hour["09"]["ai_resolved"]) == (2, 2)
    assert (by_hour["12"]["handed_off"], by_hour["12"]["tickets_created"]) == (1, 1)
    assert (by_hour["16"]["conversations_started"], by_hour["16"]["tickets_created"]) == (0, 1)


async def test_a_duplicate_makes_no_second_fact_and_an_answered_question_keeps_no_text(
    analytics: AnalyticsHarness, mix: Mix
) -> None:
    await apply_mix(analytics, mix)
    async with analytics.sessions() as session:
        facts = await session.scalar(select(func.count()).select_from(FactRecord))
        kept = set(await session.scalars(select(QuestionRecord.text).where(QuestionRecord.text.is_not(None))))
    assert facts == len(mix.envelopes)
    assert len(await analytics.emitted()) == len(mix.envelopes), "one fact published per distinct event"
    # The questions the AI answered are forgotten; the gaps and the one nobody answered are kept.
    assert kept == {
        "Posso portare il cane?",
        "posso portare il mio cane???",
        "Avete un parcheggio per camper?",
        "C'è qualcuno?",
    }


async def all_figures(harness: AnalyticsHarness, mix: Mix) -> dict[str, Any]:
    """Every report of the mix's day, judged at one moment."""
    period = Period(
        tenant_id=TENANT,
        start=DAY,
        end=DAY + timedelta(days=1),
        zone=ZoneInfo("UTC"),
        as_of=mix.now,
        resolution_window=timedelta(hours=24),
    )
    base = ReportPeriod(tenant_id=TENANT, from_date=DAY.date(), to_date=DAY.date(), timezone="UTC")
    async with harness.sessions() as session:
        bodies = [
            await reports.overview(session, period, base),
            await reports.series(session, period, base, "hour"),
            await reports.handoff_reasons(session, period, base),
            await reports.operators(session, period, base),
            await reports.kb_gaps(session, period, base, 75, 3),
        ]
        bodies += [await reports.drilldown(session, period, base, figure) for figure in reports.Fig]
    return {f"{type(b).__name__}{i}": b.model_dump(mode="json") for i, b in enumerate(bodies)}


def summarised(how: str) -> float:
    return REGISTRY.get_sample_value("analytics_conversations_summarised_total", {"how": how}) or 0.0


async def test_a_replay_in_another_order_and_twice_into_an_empty_store_gives_the_same_figures(
    infra: Infra, analytics: AnalyticsHarness, mix: Mix
) -> None:
    await apply_mix(analytics, mix)
    expected = await all_figures(analytics, mix)
    assert expected["AnalyticsOverview0"]["conversations_started"] == 8

    database = await create_database(infra)
    replay, engine = await migrated_harness(infra, database)
    try:
        shuffled = mix.envelopes * 2
        random.Random(12).shuffle(shuffled)
        extended, rebuilt = summarised("extended"), summarised("rebuilt")
        for start in range(0, len(shuffled), 7):
            await replay.apply(*shuffled[start : start + 7])
        assert await all_figures(replay, mix) == expected
        # Both ways of bringing a conversation up to date were taken: new facts folded into its
        # stored fold, and (for a fact older than one folded in) a summary of all of its facts.
        assert summarised("extended") > extended
        assert summarised("rebuilt") > rebuilt
    finally:
        await engine.dispose()
        await drop_database(infra, database)


async def test_answer_feedback_confirms_a_resolution_and_a_not_helpful_answer_is_a_knowledge_gap(
    infra: Infra, analytics: AnalyticsHarness
) -> None:
    """👍 on the last answer of a closed conversation: confirmed. 👎 on a confident answer: not
    resolved, and its question in the gap report although the assistant was sure. Replayed in the
    other order into an empty store: the same figures."""
    mix = Mix(now=at(20))
    ev = mix.event

    def answered(name: str, hour: int, question: str) -> tuple[list[Any], uuid.UUID, uuid.UUID]:
        asked = message(Sender.CUSTOMER, question, S.AI, 1)
        reply = AiReplyGenerated(
            in_reply_to=asked.message_id,
            reply_id=uuid.uuid4(),
            text="Apriamo alle 17:30.",
            language="it",
            confidence=0.9,
            mode="retrieval",
        )
        answer = MessagePosted(
            message_id=reply.reply_id, seq=2, sender=Sender.AI, text=reply.text, status=S.AI, confidence=0.9
        )
        events = [
            ev(ConversationStarted(locale="it"), at(hour), name),
            ev(asked, at(hour, 0, 10), name),
            ev(reply, at(hour, 0, 11), name),
            ev(answer, at(hour, 0, 12), name),
        ]
        return events, asked.message_id, reply.reply_id

    confirmed, _, confirmed_answer = answered("confirmed", 9, "A che ora aprite?")
    confirmed += [
        ev(AnswerFeedbackGiven(message_id=confirmed_answer, helpful=True), at(9, 1), "confirmed"),
        ev(StatusChanged(previous=S.AI, status=S.RESOLVED, reason="closed_by_operator"), at(9, 2), "confirmed"),
    ]
    unhelpful, question, unhelpful_answer = answered("unhelpful", 10, "Posso portare il cane in carrozzina?")
    feedback = AnswerFeedbackGiven(
        message_id=unhelpful_answer,
        helpful=False,
        question_message_id=question,
        question="Posso portare il cane in carrozzina?",
    )
    unhelpful += [
        ev(feedback, at(10, 1), "unhelpful"),
        ev(StatusChanged(previous=S.AI, status=S.HANDOFF_OFFERED, reason="answer_not_helpful"), at(10, 1), "unhelpful"),
        ev(StatusChanged(previous=S.HANDOFF_OFFERED, status=S.AI, reason="customer"), at(10, 2), "unhelpful"),
        ev(StatusChanged(previous=S.AI, status=S.RESOLVED, reason="closed_by_operator"), at(10, 3), "unhelpful"),
    ]
    await analytics.apply(*confirmed)
    await analytics.apply(*unhelpful)

    o = await overview_of(analytics)
    assert o.conversations_started == 2
    assert (o.ai_resolved, o.ai_resolved_confirmed, o.ai_resolved_assumed) == (1, 1, 0)
    async with analytics.read_api() as api:
        gaps = (await api.get("/internal/analytics/kb-gaps", params=DAY_PARAMS)).json()
        behind = (
            await api.get("/internal/analytics/conversations", params=DAY_PARAMS | {"figure": "ai_resolved_confirmed"})
        ).json()
    assert [(g["question"], g["conversation_ids"]) for g in gaps["gaps"]] == [
        ("Posso portare il cane in carrozzina?", [str(mix.ids["unhelpful"])])
    ]
    assert [item["conversation_id"] for item in behind["items"]] == [str(mix.ids["confirmed"])]
    facts = [e.payload for e in await analytics.emitted(AnalyticsFact) if e.payload.name == "answer_feedback"]
    assert sorted((f.message_id, f.helpful, f.in_reply_to) for f in facts) == sorted(
        [(confirmed_answer, True, None), (unhelpful_answer, False, question)]
    )

    database = await create_database(infra)
    replay, engine = await migrated_harness(infra, database)
    try:
        await replay.apply(*reversed(unhelpful))  # the feedback before the question and its answer
        await replay.apply(*reversed(confirmed))
        again = await overview_of(replay)
        assert again.model_dump(exclude={"as_of"}) == o.model_dump(exclude={"as_of"})
        async with replay.read_api() as api:
            assert (await api.get("/internal/analytics/kb-gaps", params=DAY_PARAMS)).json() == gaps
    finally:
        await engine.dispose()
        await drop_database(infra, database)
