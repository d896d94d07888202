"""The analytics service's internal API for the gateway: the figures of a tenant's period, their
breakdowns and the conversations behind each figure, as JSON or CSV (`format=csv`)."""

from __future__ import annotations

import csv
import io
from datetime import date, datetime, time, timedelta
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel

from analytics import reports
from analytics.config import Settings
from analytics.store import Period
from contracts import utc_now
from contracts.common import HandoffReason
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
from servicekit.http import ApiError, ReadSession

router = APIRouter(prefix="/internal/analytics", tags=["analytics API"])
MAX_DAYS = 366
Format = Annotated[Literal["json", "csv"], Query(description="`csv` answers text/csv, one row per item")]


class Report:
    """The query parameters every report shares: the tenant, its days and its clock."""

    def __init__(
        self,
        request: Request,
        tenant_id: Annotated[str, Query(min_length=1, max_length=63)],
        from_date: Annotated[date, Query(alias="from", description="first day, included")],
        to_date: Annotated[date, Query(alias="to", description="last day, included")],
        tz: Annotated[str, Query(max_length=64, description="IANA time zone of the days and hours")] = "UTC",
    ) -> None:
        if to_date < from_date:
            raise ApiError(422, "invalid_request", "`to` is before `from`")
        if (to_date - from_date).days >= MAX_DAYS:
            raise ApiError(422, "invalid_request", f"a report covers at most {MAX_DAYS} days")
        try:
            zone = ZoneInfo(tz)
        except (ZoneInfoNotFoundError, ValueError):
            raise ApiError(422, "invalid_request", f"unknown time zone {tz!r}") from None
        settings: Settings = request.app.state.runtime.settings
        self.settings = settings
        self.base = ReportPeriod(tenant_id=tenant_id, from_date=from_date, to_date=to_date, timezone=zone.key)
        self.period = Period(
            tenant_id=tenant_id,
            start=datetime.combine(from_date, time(0), tzinfo=zone),
            end=datetime.combine(to_date + timedelta(days=1), time(0), tzinfo=zone),
            zone=zone,
            as_of=utc_now(),
            resolution_window=timedelta(hours=settings.ai_resolution_window_hours),
        )


ReportParams = Annotated[Report, Depends()]


def answer(body: BaseModel, format: str, name: str, report: Report) -> Any:
    """The body as JSON, or as a CSV attachment."""
    if format != "csv":
        return body
    rows = reports.csv_rows_of(body)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]) if rows else ["empty"], lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    base = report.base
    filename = f"{name}-{base.tenant_id}-{base.from_date}-{base.to_date}.csv"
    return Response(
        buffer.getvalue(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


CSV: dict[int | str, dict[str, Any]] = {
    200: {"content": {"text/csv": {}}, "description": "JSON, or CSV with `format=csv`"}
}


@router.get("/overview", response_model=AnalyticsOverview, responses=CSV)
async def get_overview(report: ReportParams, session: ReadSession, format: Format = "json") -> Any:
    return answer(await reports.overview(session, report.period, report.base), format, "overview", report)


@router.get("/series", response_model=AnalyticsSeries, responses=CSV)
async def get_series(
    report: ReportParams, session: ReadSession, granularity: Literal["day", "hour"] = "day", format: Format = "json"
) -> Any:
    body = await reports.series(session, report.period, report.base, granularity)
    return answer(body, format, f"series-{granularity}", report)


@router.get("/handoff-reasons", response_model=HandoffReasonsView, responses=CSV)
async def get_handoff_reasons(report: ReportParams, session: ReadSession, format: Format = "json") -> Any:
    return answer(await reports.handoff_reasons(session, report.period, report.base), format, "handoff-reasons", report)


@router.get("/operators", response_model=OperatorFiguresView, responses=CSV)
async def get_operators(report: ReportParams, session: ReadSession, format: Format = "json") -> Any:
    return answer(await reports.operators(session, report.period, report.base), format, "operators", report)


@router.get("/kb-gaps", response_model=KbGapsView, responses=CSV)
async def get_kb_gaps(report: ReportParams, session: ReadSession, format: Format = "json") -> Any:
    settings = report.settings
    body = await reports.kb_gaps(
        session, report.period, report.base, settings.kb_gap_similarity, settings.kb_gap_examples
    )
    return answer(body, format, "kb-gaps", report)


@router.get("/conversations", response_model=DrilldownView, responses=CSV)
async def get_drilldown(
    report: ReportParams,
    session: ReadSession,
    figure: AnalyticsFigure,
    handoff_reason: HandoffReason | Literal["unspecified"] | None = None,
    operator_id: Annotated[str | None, Query(max_length=100)] = None,
    score: Annotated[int | None, Query(ge=1, le=5)] = None,
    hour: Annotated[int | None, Query(ge=0, le=23)] = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
    format: Format = "json",
) -> Any:
    body = await reports.drilldown(
        session,
        report.period,
        report.base,
        figure,
        handoff_reason=handoff_reason,
        operator_id=operator_id,
        score=score,
        hour=hour,
        limit=limit,
    )
    return answer(body, format, f"conversations-{figure.value}", report)
