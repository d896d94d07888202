"""The figures of a tenant's period, by query over the conversation, operator-turn, ticket and
question rows (`store`), as the read-API bodies of `contracts.readapi`."""

from __future__ import annotations

from typing import Any, Literal

from sqlalchemy import ColumnElement, and_, func, null, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from analytics import domain
from analytics.store import (
    ConversationRecord,
    OperatorSessionRecord,
    Period,
    QuestionRecord,
    TicketRecord,
    conversation_figures,
    ticket_figures,
)
from contracts.readapi import (
    AnalyticsFigure,
    AnalyticsOverview,
    AnalyticsSeries,
    CsatFigure,
    DrilldownItem,
    DrilldownView,
    DurationFigure,
    HandoffReasonCount,
    HandoffReasonsView,
    HourCount,
    KbGap,
    KbGapsView,
    OperatorFigures,
    OperatorFiguresView,
    ReportPeriod,
    ScoreCount,
    SeriesPoint,
    SlaFigure,
)

Fig = AnalyticsFigure
C = ConversationRecord
T = TicketRecord
O = OperatorSessionRecord  # noqa: E741 -- the table's initial, as C and T


def _count(condition: ColumnElement[bool]) -> ColumnElement[int]:
    return func.count().filter(condition)


def _durations(column: InstrumentedAttribute[float | None]) -> list[ColumnElement[Any]]:
    return [
        func.count(column),
        func.avg(column),
        func.percentile_cont(0.5).within_group(column),
        func.percentile_cont(0.9).within_group(column),
    ]


def _duration_figure(values: Any) -> DurationFigure:
    count, mean, p50, p90 = values
    as_float = [float(v) if v is not None else None for v in (mean, p50, p90)]
    return DurationFigure(count=count, mean_seconds=as_float[0], p50_seconds=as_float[1], p90_seconds=as_float[2])


async def overview(session: AsyncSession, period: Period, base: ReportPeriod) -> AnalyticsOverview:
    figures = conversation_figures(period)
    counted = list(figures)
    row = (
        await session.execute(
            select(*[_count(figures[f]) for f in counted], *_durations(C.queue_wait_seconds)).where(
                period.conversations()
            )
        )
    ).one()
    n = dict(zip(counted, row[: len(counted)], strict=True))
    queue_wait = _duration_figure(row[len(counted) :])

    turns = (
        await session.execute(
            select(*_durations(O.first_response_seconds), *_durations(O.handle_seconds))
            .join_from(O, C, and_(O.tenant_id == C.tenant_id, O.conversation_id == C.conversation_id))
            .where(period.conversations())
        )
    ).one()

    scores = dict(
        (
            await session.execute(
                select(C.rating, func.count()).where(period.conversations(), C.rating.is_not(None)).group_by(C.rating)
            )
        ).all()
    )
    rated = sum(scores.values())
    csat = CsatFigure(
        count=rated,
        average=sum(s * k for s, k in scores.items() if s is not None) / rated if rated else None,
        distribution=[ScoreCount(score=s, count=scores.get(s, 0)) for s in range(1, 6)],
    )

    hour = func.extract("hour", period.local(C.started_at))
    hours = (await session.execute(select(hour, func.count()).where(period.conversations()).group_by(hour))).all()
    busiest = sorted(
        (HourCount(hour=int(h), conversations=k) for h, k in hours), key=lambda h: (-h.conversations, h.hour)
    )

    tickets = ticket_figures(period)
    ticket_counted = list(tickets)
    ticket_row = (
        await session.execute(select(*[_count(tickets[f]) for f in ticket_counted]).where(period.tickets()))
    ).one()
    t = dict(zip(ticket_counted, ticket_row, strict=True))

    started, involved, resolved = n[Fig.STARTED], n[Fig.AI_INVOLVED], n[Fig.AI_RESOLVED]
    return AnalyticsOverview(
        **base.model_dump(),
        as_of=period.as_of,
        conversations_started=started,
        ai_involved=involved,
        involvement_rate=domain.rate(involved, started),
        ai_resolved=resolved,
        ai_resolved_confirmed=n[Fig.AI_RESOLVED_CONFIRMED],
        ai_resolved_assumed=n[Fig.AI_RESOLVED_ASSUMED],
        ai_pending=n[Fig.AI_PENDING],
        ai_resolution_rate=domain.rate(resolved, involved),
        automation_rate=domain.rate(resolved, started),
        handed_off=n[Fig.HANDED_OFF],
        handoff_rate=domain.rate(n[Fig.HANDED_OFF], started),
        abandoned=n[Fig.ABANDONED],
        abandoned_in_queue=n[Fig.ABANDONED_IN_QUEUE],
        abandoned_unanswered=n[Fig.ABANDONED_UNANSWERED],
        abandonment_rate=domain.rate(n[Fig.ABANDONED], started),
        no_operator_available=n[Fig.NO_OPERATOR_AVAILABLE],
        queue_wait=queue_wait,
        operator_first_response=_duration_figure(turns[:4]),
        operator_handle_time=_duration_figure(turns[4:]),
        tickets_created=t[Fig.TICKETS_CREATED],
        sla_first_response=_sla(
            t[Fig.SLA_FIRST_RESPONSE_MET], t[Fig.SLA_FIRST_RESPONSE_MISSED], t[Fig.SLA_FIRST_RESPONSE_PENDING]
        ),
        sla_resolution=_sla(t[Fig.SLA_RESOLUTION_MET], t[Fig.SLA_RESOLUTION_MISSED], t[Fig.SLA_RESOLUTION_PENDING]),
        csat=csat,
        busiest_hours=busiest,
    )


def _sla(met: int, missed: int, pending: int) -> SlaFigure:
    return SlaFigure(met=met, missed=missed, pending=pending, compliance=domain.rate(met, met + missed))


async def series(
    session: AsyncSession, period: Period, base: ReportPeriod, granularity: Literal["day", "hour"]
) -> AnalyticsSeries:
    figures = conversation_figures(period)
    shown = (Fig.STARTED, Fig.AI_INVOLVED, Fig.AI_RESOLVED, Fig.HANDED_OFF, Fig.ABANDONED)
    bucket = func.date_trunc(granularity, period.local(C.started_at))
    rows = (
        await session.execute(
            select(bucket, *[_count(figures[f]) for f in shown]).where(period.conversations()).group_by(bucket)
        )
    ).all()
    points: dict[Any, dict[str, int]] = {
        row[0]: {f.value: count for f, count in zip(shown, row[1:], strict=True)} for row in rows
    }
    ticket_bucket = func.date_trunc(granularity, period.local(T.opened_at))
    for start, count in await session.execute(
        select(ticket_bucket, func.count()).where(period.tickets()).group_by(ticket_bucket)
    ):
        points.setdefault(start, {f.value: 0 for f in shown})["tickets_created"] = count
    zone = period.zone
    return AnalyticsSeries(
        **base.model_dump(),
        granularity=granularity,
        points=[
            SeriesPoint(
                period_start=start.replace(tzinfo=zone),
                conversations_started=counts[Fig.STARTED.value],
                ai_involved=counts[Fig.AI_INVOLVED.value],
                ai_resolved=counts[Fig.AI_RESOLVED.value],
                handed_off=counts[Fig.HANDED_OFF.value],
                abandoned=counts[Fig.ABANDONED.value],
                tickets_created=counts.get("tickets_created", 0),
            )
            for start, counts in sorted(points.items())
        ],
    )


async def handoff_reasons(session: AsyncSession, period: Period, base: ReportPeriod) -> HandoffReasonsView:
    rows = (
        await session.execute(
            select(C.handoff_reason, func.count())
            .where(period.conversations(), C.handed_off)
            .group_by(C.handoff_reason)
        )
    ).all()
    handed_off = sum(count for _, count in rows)
    reasons = [
        HandoffReasonCount(reason=reason or "unspecified", conversations=count, share=count / handed_off)
        for reason, count in rows
    ]
    reasons.sort(key=lambda r: (-r.conversations, r.reason))
    return HandoffReasonsView(**base.model_dump(), handed_off=handed_off, reasons=reasons)


async def operators(session: AsyncSession, period: Period, base: ReportPeriod) -> OperatorFiguresView:
    joined = and_(O.tenant_id == C.tenant_id, O.conversation_id == C.conversation_id)
    turn_rows = (
        await session.execute(
            select(
                O.operator_id,
                func.count(func.distinct(O.conversation_id)),
                func.count(),
                func.avg(O.first_response_seconds),
                func.percentile_cont(0.5).within_group(O.first_response_seconds),
                func.avg(O.handle_seconds),
                func.percentile_cont(0.5).within_group(O.handle_seconds),
            )
            .join_from(O, C, joined)
            .where(period.conversations())
            .group_by(O.operator_id)
        )
    ).all()
    # A rating is the last operator's: the one the customer was talking to when it closed.
    csat = {
        operator_id: (count, average)
        for operator_id, count, average in (
            await session.execute(
                select(C.last_operator_id, func.count(), func.avg(C.rating))
                .where(period.conversations(), C.rating.is_not(None), C.last_operator_id.is_not(None))
                .group_by(C.last_operator_id)
            )
        )
    }

    def number(value: Any) -> float | None:
        return float(value) if value is not None else None

    figures = [
        OperatorFigures(
            operator_id=operator_id,
            conversations=conversations,
            turns=turns,
            first_response_mean_seconds=number(fr_mean),
            first_response_p50_seconds=number(fr_p50),
            handle_time_mean_seconds=number(ht_mean),
            handle_time_p50_seconds=number(ht_p50),
            csat_count=csat.get(operator_id, (0, None))[0],
            csat_average=number(csat.get(operator_id, (0, None))[1]),
        )
        for operator_id, conversations, turns, fr_mean, fr_p50, ht_mean, ht_p50 in turn_rows
    ]
    figures.sort(key=lambda o: (-o.conversations, o.operator_id))
    return OperatorFiguresView(**base.model_dump(), operators=figures)


async def kb_gaps(
    session: AsyncSession, period: Period, base: ReportPeriod, similarity: float, examples: int
) -> KbGapsView:
    q = QuestionRecord
    rows = await session.execute(
        select(q.message_id, q.conversation_id, q.asked_at, q.text).where(
            q.tenant_id == period.tenant_id,
            or_(q.kb_gap, q.not_helpful),
            q.text.is_not(None),
            q.asked_at >= period.start,
            q.asked_at < period.end,
        )
    )
    questions = [
        domain.Question(message_id=m, conversation_id=c, asked_at=a, text=t)
        for m, c, a, t in rows
        if c is not None and a is not None and t is not None
    ]
    groups = domain.group_questions(questions, similarity)
    return KbGapsView(
        **base.model_dump(),
        unanswered_questions=len(questions),
        gaps=[
            KbGap(
                question=g.representative,
                count=len(g.questions),
                examples=g.examples(examples),
                conversation_ids=list(dict.fromkeys(q.conversation_id for q in g.questions)),
            )
            for g in groups
        ],
    )


async def drilldown(
    session: AsyncSession,
    period: Period,
    base: ReportPeriod,
    figure: AnalyticsFigure,
    *,
    handoff_reason: str | None = None,
    operator_id: str | None = None,
    score: int | None = None,
    hour: int | None = None,
    limit: int = 1000,
) -> DrilldownView:
    """The conversations (or tickets) a figure counts, with the same condition as the count."""
    tickets = ticket_figures(period)
    if figure in tickets:
        listed = (
            select(T.conversation_id, T.ticket_id, T.opened_at.label("at"))
            .where(period.tickets(), tickets[figure])
            .subquery()
        )
    else:
        conditions = [period.conversations(), conversation_figures(period)[figure]]
        if handoff_reason is not None:
            unspecified = handoff_reason == "unspecified"
            conditions.append(C.handoff_reason.is_(None) if unspecified else C.handoff_reason == handoff_reason)
        if operator_id is not None:
            turn = select(O.turn).where(
                O.tenant_id == C.tenant_id, O.conversation_id == C.conversation_id, O.operator_id == operator_id
            )
            conditions.append(turn.exists())
        if score is not None:
            conditions.append(C.rating == score)
        if hour is not None:
            conditions.append(func.extract("hour", period.local(C.started_at)) == hour)
        listed = (
            select(C.conversation_id, null().label("ticket_id"), C.started_at.label("at")).where(*conditions).subquery()
        )
    total = await session.scalar(select(func.count()).select_from(listed))
    rows = await session.execute(select(listed).order_by(listed.c.at, listed.c.conversation_id).limit(limit))
    return DrilldownView(
        **base.model_dump(),
        figure=figure,
        count=total or 0,
        items=[DrilldownItem(conversation_id=c, ticket_id=t, at=at) for c, t, at in rows],
    )


def csv_rows_of(body: Any) -> list[dict[str, Any]]:
    """A report as CSV rows: lists of items become one row each; the overview becomes
    `figure,value` rows (nested figures dotted: `queue_wait.p50_seconds`)."""
    data = body.model_dump(mode="json")
    for key in ("points", "reasons", "operators", "gaps", "items"):
        if key in data:
            return domain.flat_rows(data[key])
    return domain.flat_rows([{"figure": k, "value": v} for k, v in _dotted(data)])


def _dotted(data: Any, prefix: str = "") -> list[tuple[str, Any]]:
    if isinstance(data, dict):
        return [pair for k, v in data.items() for pair in _dotted(v, f"{prefix}{k}.")]
    if isinstance(data, list):
        # [{score: 5, count: 2}, ...] → `csat.distribution.5 = 2`
        return [(f"{prefix}{next(iter(item.values()))}", list(item.values())[1]) for item in data]
    return [(prefix.rstrip("."), data)]
