"""The internal API on the figures of the known day: drill-downs, CSV exports, tenants kept apart."""

from __future__ import annotations

import csv
import io
from typing import Any

import httpx
import pytest

from contracts.readapi import AnalyticsOverview, DrilldownView

from .conftest import OTHER_TENANT, TENANT, AnalyticsHarness, Mix, apply_mix

DAY = {"from": "2025-03-10", "to": "2025-03-10"}


@pytest.fixture
async def api(analytics: AnalyticsHarness, mix: Mix) -> Any:
    await apply_mix(analytics, mix)
    async with analytics.read_api() as client:
        yield client


async def drill(api: httpx.AsyncClient, figure: str, tenant_id: str = TENANT, **filters: Any) -> DrilldownView:
    response = await api.get(
        "/internal/analytics/conversations", params={"tenant_id": tenant_id, "figure": figure, **DAY, **filters}
    )
    assert response.status_code == 200, response.text
    return DrilldownView.model_validate(response.json())


async def test_every_figure_drills_down_to_the_conversations_behind_it(api: httpx.AsyncClient, mix: Mix) -> None:
    ids = mix.ids

    async def conversations(figure: str, **filters: Any) -> list[Any]:
        view = await drill(api, figure, **filters)
        assert view.count == len(view.items)
        return [item.conversation_id for item in view.items]

    assert await conversations("ai_resolved") == [ids["ai_resolved"], ids["offer_declined"]]
    assert await conversations("ai_resolved_assumed") == [ids["offer_declined"]]
    assert await conversations("ai_resolved_confirmed") == [ids["ai_resolved"]]
    assert await conversations("ai_pending") == [ids["pending"]]
    assert await conversations("abandoned") == [ids["left_queue"], ids["unanswered"]]
    assert await conversations("abandoned_in_queue") == [ids["left_queue"]]
    assert await conversations("handed_off", handoff_reason="unknown_answer") == [ids["anna_resolved"]]
    assert await conversations("operator_handled", operator_id="bruno") == [ids["bruno_resolved"]]
    assert await conversations("rated", score=4) == [ids["anna_resolved"]]
    assert await conversations("queue_wait") == [ids["anna_resolved"], ids["bruno_resolved"]]
    assert await conversations("no_operator_available") == [ids["ticketed"]]
    assert await conversations("started", hour=9) == [ids["ai_resolved"], ids["offer_declined"]]
    assert len(await conversations("started")) == 8

    tickets = await drill(api, "tickets_created")
    assert [(i.ticket_id, i.conversation_id) for i in tickets.items] == [
        (ids["ticket_t1"], ids["ticketed"]),
        (ids["ticket_t2"], None),
    ]
    assert [i.ticket_id for i in (await drill(api, "sla_first_response_missed")).items] == [ids["ticket_t2"]]
    assert [i.ticket_id for i in (await drill(api, "sla_resolution_pending")).items] == [ids["ticket_t2"]]

    limited = await drill(api, "started", limit=3)
    assert (limited.count, len(limited.items)) == (8, 3)


async def test_the_reports_export_as_csv(api: httpx.AsyncClient, mix: Mix) -> None:
    params = {"tenant_id": TENANT, **DAY, "format": "csv"}

    response = await api.get("/internal/analytics/overview", params=params)
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/csv; charset=utf-8"
    assert response.headers["content-disposition"] == (
        f'attachment; filename="overview-{TENANT}-2025-03-10-2025-03-10.csv"'
    )
    figures = {row["figure"]: row["value"] for row in csv.DictReader(io.StringIO(response.text))}
    assert figures["conversations_started"] == "8"
    assert figures["automation_rate"] == "0.25"
    assert figures["queue_wait.p50_seconds"] == "90.0"
    assert figures["csat.distribution.4"] == "1"
    assert figures["busiest_hours.9"] == "2"
    assert figures["sla_first_response.compliance"] == "0.5"

    operators = await api.get("/internal/analytics/operators", params=params)
    rows = list(csv.DictReader(io.StringIO(operators.text)))
    assert [(r["operator_id"], r["conversations"], r["csat_average"]) for r in rows] == [
        ("anna", "1", "4.0"),
        ("bruno", "1", "2.0"),
    ]

    gaps = list(csv.DictReader(io.StringIO((await api.get("/internal/analytics/kb-gaps", params=params)).text)))
    assert [(g["question"], g["count"]) for g in gaps] == [
        ("Posso portare il cane?", "2"),
        ("Avete un parcheggio per camper?", "1"),
    ]
    assert gaps[0]["examples"] == "Posso portare il cane? | posso portare il mio cane???"

    drilled = await api.get("/internal/analytics/conversations", params=params | {"figure": "abandoned"})
    assert [r["conversation_id"] for r in csv.DictReader(io.StringIO(drilled.text))] == [
        str(mix.ids["left_queue"]),
        str(mix.ids["unanswered"]),
    ]
    for path in ("series", "handoff-reasons"):
        exported = await api.get(f"/internal/analytics/{path}", params=params)
        assert exported.status_code == 200
        assert len(list(csv.DictReader(io.StringIO(exported.text)))) >= 1


async def test_a_tenant_sees_only_its_own_conversations_operators_and_questions(
    api: httpx.AsyncClient, mix: Mix
) -> None:
    other = {"tenant_id": OTHER_TENANT, **DAY}
    overview = AnalyticsOverview.model_validate((await api.get("/internal/analytics/overview", params=other)).json())
    assert (overview.conversations_started, overview.handed_off, overview.tickets_created) == (1, 1, 0)
    assert (overview.csat.count, overview.csat.average) == (1, 1.0)
    operators = (await api.get("/internal/analytics/operators", params=other)).json()["operators"]
    assert [(o["operator_id"], o["csat_average"]) for o in operators] == [("anna", 1.0)]
    gaps = (await api.get("/internal/analytics/kb-gaps", params=other)).json()
    assert [(g["question"], g["count"]) for g in gaps["gaps"]] == [("Posso portare il cane?", 1)]
    assert gaps["gaps"][0]["conversation_ids"] == [str(mix.ids["other_tenant"])]

    started = await drill(api, "started", OTHER_TENANT)
    assert [i.conversation_id for i in started.items] == [mix.ids["other_tenant"]]
    mine = await drill(api, "started")
    assert mix.ids["other_tenant"] not in {i.conversation_id for i in mine.items}
    nobody = await drill(api, "started", "nobody-here")
    assert nobody.count == 0


async def test_days_and_hours_follow_the_tenant_time_zone(api: httpx.AsyncClient) -> None:
    # 09:05 UTC is 10:05 in Rome (CET, UTC+1 in March before the change).
    params = {"tenant_id": TENANT, **DAY, "tz": "Europe/Rome"}
    overview = (await api.get("/internal/analytics/overview", params=params)).json()
    assert overview["timezone"] == "Europe/Rome"
    assert overview["busiest_hours"][0] == {"hour": 10, "conversations": 2}
    days = (await api.get("/internal/analytics/series", params=params)).json()["points"]
    assert [p["period_start"] for p in days] == ["2025-03-10T00:00:00+01:00"]


@pytest.mark.parametrize(
    ("params", "problem"),
    [
        ({"from": "2025-03-11", "to": "2025-03-10"}, "`to` is before `from`"),
        ({"from": "2024-01-01", "to": "2025-03-10"}, "at most 366 days"),
        ({"tz": "Mars/Olympus"}, "unknown time zone"),
        ({"from": "yesterday"}, "from"),
    ],
)
async def test_bad_parameters_are_a_422_never_a_500(
    analytics: AnalyticsHarness, params: dict[str, str], problem: str
) -> None:
    async with analytics.read_api() as api:
        response = await api.get("/internal/analytics/overview", params={"tenant_id": TENANT, **DAY, **params})
        unknown = await api.get(
            "/internal/analytics/conversations", params={"tenant_id": TENANT, **DAY, "figure": "revenue"}
        )
    assert response.status_code == 422
    assert problem in response.json()["error"]["message"]
    assert unknown.status_code == 422
