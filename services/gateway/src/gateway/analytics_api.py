"""The supervisors' analytics: a tenant's figures over a period, their breakdowns and the
conversations behind each figure, read from the analytics service (JSON, or its CSV passed
through with `format=csv`), and the live figures of the moment.

Supervisors and admins only: an operator's token answers 403. The tenant is always the token's;
the analytics service is asked for that tenant alone and its answer is checked against it.
"""

from __future__ import annotations

import asyncio
from datetime import date, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query
from fastapi.responses import Response

from contracts import utc_now
from contracts.common import ConversationStatus, HandoffReason
from contracts.readapi import (
    AnalyticsFigure,
    AnalyticsOverview,
    AnalyticsSeries,
    DrilldownView,
    HandoffReasonsView,
    KbGapsView,
    OperatorFiguresView,
    ReportPeriod,
)
from gateway.api import RuntimeDep, limit_per_ip
from gateway.internal import QueryValue
from gateway.operator_api import OperatorDep
from gateway.operator_stream import SUPERVISING_ROLES
from gateway.runtime import GatewayRuntime
from gateway.schemas import LiveFigures, operator_errors
from gateway.tokens import OperatorClaims
from servicekit.http import ApiError

router = APIRouter(prefix="/v1/analytics", tags=["analytics"], dependencies=[Depends(limit_per_ip)])

# A conversation with the assistant counts as "now" while something happened in it lately: one
# the customer simply left stays in AI (nothing closes it), and is not a conversation of now.
LIVE_AI_WINDOW = timedelta(minutes=30)
# The conversation service lists at most this many per status, most recently changed first.
LIVE_LIST_LIMIT = 500

WORDING = {
    "s403": "Analytics are for supervisors and admins",
    "s422": "Invalid parameters: `to` before `from`, more than 366 days, an unknown zone or figure",
    "s502": "The analytics service answered badly",
    "s503": "The analytics service is unreachable",
}
REPORT_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"content": {"text/csv": {"schema": {"type": "string"}}}, "description": "JSON, or CSV with `format=csv`"},
    **operator_errors(401, 403, 422, 429, 502, 503, **WORDING),
}


async def supervisor(operator: OperatorDep) -> OperatorClaims:
    if operator.role not in SUPERVISING_ROLES:
        raise ApiError(403, "forbidden", "analytics are for supervisors and admins")
    return operator


SupervisorDep = Annotated[OperatorClaims, Depends(supervisor)]


class Period:
    """The period every report takes: days on the tenant's clock, both included."""

    def __init__(
        self,
        from_date: Annotated[date, Query(alias="from", description="First day, included (YYYY-MM-DD)")],
        to_date: Annotated[date, Query(alias="to", description="Last day, included (YYYY-MM-DD)")],
        tz: Annotated[
            str, Query(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_+/-]+$", description="IANA time zone")
        ] = "UTC",
    ) -> None:
        self.params: dict[str, QueryValue] = {"from": from_date.isoformat(), "to": to_date.isoformat(), "tz": tz}


PeriodDep = Annotated[Period, Depends()]
Format = Annotated[Literal["json", "csv"], Query(description="`csv`: a CSV attachment, one row per item")]


async def report(
    runtime: GatewayRuntime,
    model: type[ReportPeriod],
    path: str,
    operator: OperatorClaims,
    params: dict[str, QueryValue],
    format: str,
) -> Any:
    if format == "csv":
        csv = await runtime.analytics.csv(path, operator.tenant_id, params)
        return Response(
            csv.content,
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": csv.filename_header, "Cache-Control": "no-store"},
        )
    return await runtime.analytics.report(model, path, operator.tenant_id, params)


@router.get(
    "/overview",
    response_model=AnalyticsOverview,
    summary="The tenant's figures over a period: volume, AI resolution, handoffs, abandonment, queue and "
    "operator times, tickets and SLA, CSAT, busiest hours",
    responses=REPORT_RESPONSES,
)
async def overview(runtime: RuntimeDep, operator: SupervisorDep, period: PeriodDep, format: Format = "json") -> Any:
    path = "/internal/analytics/overview"
    return await report(runtime, AnalyticsOverview, path, operator, period.params, format)


@router.get(
    "/series",
    response_model=AnalyticsSeries,
    summary="The main figures per day or per hour of the period (only those with something to count)",
    responses=REPORT_RESPONSES,
)
async def series(
    runtime: RuntimeDep,
    operator: SupervisorDep,
    period: PeriodDep,
    granularity: Literal["day", "hour"] = "day",
    format: Format = "json",
) -> Any:
    params = {**period.params, "granularity": granularity}
    return await report(runtime, AnalyticsSeries, "/internal/analytics/series", operator, params, format)


@router.get(
    "/handoff-reasons",
    response_model=HandoffReasonsView,
    summary="Why the customers were handed to a person, with each reason's share",
    responses=REPORT_RESPONSES,
)
async def handoff_reasons(
    runtime: RuntimeDep, operator: SupervisorDep, period: PeriodDep, format: Format = "json"
) -> Any:
    path = "/internal/analytics/handoff-reasons"
    return await report(runtime, HandoffReasonsView, path, operator, period.params, format)


@router.get(
    "/operators",
    response_model=OperatorFiguresView,
    summary="Each operator's conversations, first response, handle time and CSAT",
    responses=REPORT_RESPONSES,
)
async def operators(runtime: RuntimeDep, operator: SupervisorDep, period: PeriodDep, format: Format = "json") -> Any:
    path = "/internal/analytics/operators"
    return await report(runtime, OperatorFiguresView, path, operator, period.params, format)


@router.get(
    "/kb-gaps",
    response_model=KbGapsView,
    summary="The customers' questions the knowledge base could not answer, grouped, the most frequent first",
    responses=REPORT_RESPONSES,
)
async def kb_gaps(runtime: RuntimeDep, operator: SupervisorDep, period: PeriodDep, format: Format = "json") -> Any:
    return await report(runtime, KbGapsView, "/internal/analytics/kb-gaps", operator, period.params, format)


@router.get(
    "/conversations",
    response_model=DrilldownView,
    summary="The conversations (or tickets) behind a figure, filtered by handoff reason, operator, score or hour",
    responses=REPORT_RESPONSES,
)
async def drilldown(
    runtime: RuntimeDep,
    operator: SupervisorDep,
    period: PeriodDep,
    figure: AnalyticsFigure,
    handoff_reason: HandoffReason | Literal["unspecified"] | None = None,
    operator_id: Annotated[str | None, Query(pattern=r"^[A-Za-z0-9_.@-]{1,100}$", max_length=100)] = None,
    score: Annotated[int | None, Query(ge=1, le=5)] = None,
    hour: Annotated[int | None, Query(ge=0, le=23)] = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
    format: Format = "json",
) -> Any:
    filters = {"handoff_reason": handoff_reason, "operator_id": operator_id, "score": score, "hour": hour}
    params: dict[str, QueryValue] = {**period.params, "figure": figure.value, "limit": limit}
    params |= {name: value for name, value in filters.items() if value is not None}
    return await report(runtime, DrilldownView, "/internal/analytics/conversations", operator, params, format)


@router.get(
    "/live",
    response_model=LiveFigures,
    summary="Now: conversations with the assistant, waiting in the queue and with operators; operators online",
    responses=operator_errors(401, 403, 429, 502, 503, s403=WORDING["s403"]),
)
async def live(runtime: RuntimeDep, operator: SupervisorDep) -> LiveFigures:
    tenant_id = operator.tenant_id
    now = utc_now()

    async def listed(status: ConversationStatus) -> list[Any]:
        view = await runtime.reader.conversations(tenant_id, status=status, operator_id=None, limit=LIVE_LIST_LIMIT)
        return [c for c in view.conversations if c.tenant_id == tenant_id]

    with_ai, offered, with_operator, waiting_customer, queue, routed = await asyncio.gather(
        listed(ConversationStatus.AI),
        listed(ConversationStatus.HANDOFF_OFFERED),
        listed(ConversationStatus.WITH_OPERATOR),
        listed(ConversationStatus.WAITING_CUSTOMER),
        runtime.routing.queue(tenant_id),
        runtime.routing.operators(tenant_id),
    )
    recent = [c for c in with_ai + offered if c.updated_at >= now - LIVE_AI_WINDOW]
    return LiveFigures(
        tenant_id=tenant_id,
        as_of=now,
        with_ai=len(recent),
        queued=len([entry for entry in queue.entries if entry.tenant_id == tenant_id]),
        with_operators=len(with_operator) + len(waiting_customer),
        operators_online=sum(1 for view in routed if view.presence == "online"),
    )
