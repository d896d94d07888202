"""Client of the analytics service's internal API: a tenant's figures, their breakdowns and the
conversations behind each, as JSON (parsed into the `contracts.readapi` bodies) or CSV (passed
through as the analytics service wrote it)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeVar

from contracts.readapi import ReportPeriod
from gateway.internal import InternalApi, InternalResponse, QueryValue
from servicekit.http import ApiError
from servicekit.logs import get_logger

log = get_logger(__name__)

ReportT = TypeVar("ReportT", bound=ReportPeriod)


@dataclass(frozen=True)
class CsvReport:
    content: bytes
    filename_header: str
    """The analytics service's `Content-Disposition` (an attachment with its file name)."""


class AnalyticsClient:
    def __init__(self, api: InternalApi) -> None:
        self._api = api

    async def report(self, model: type[ReportT], path: str, tenant_id: str, params: dict[str, QueryValue]) -> ReportT:
        response = await self._get(path, {**params, "tenant_id": tenant_id})
        self._pass_on_refusal(response)
        body = self._api.parse(model, response)
        # Defence in depth: whatever the service answered, nothing of another tenant goes out.
        if body.tenant_id != tenant_id:
            log.warning("analytics answered another tenant's report", asked=tenant_id, got=body.tenant_id)
            raise ApiError(502, "upstream_error", "the analytics service answered another tenant's report")
        return body

    async def csv(self, path: str, tenant_id: str, params: dict[str, QueryValue]) -> CsvReport:
        response = await self._get(path, {**params, "tenant_id": tenant_id, "format": "csv"})
        self._pass_on_refusal(response)
        self._api.expect_ok(response)
        if not response.headers.get("content-type", "").startswith("text/csv"):
            raise ApiError(502, "upstream_error", "the analytics service answered something other than CSV")
        disposition = response.headers.get("content-disposition") or 'attachment; filename="analytics.csv"'
        return CsvReport(content=response.content, filename_header=disposition)

    async def _get(self, path: str, params: dict[str, QueryValue]) -> InternalResponse:
        return await self._api.request("GET", path, params=params)

    @staticmethod
    def _pass_on_refusal(response: InternalResponse) -> None:
        if response.status == 422:
            # The parameters the gateway passed on (dates, zone, figure...) were refused: the
            # caller's mistake, said in the service's words.
            try:
                message = str(response.json()["error"]["message"])[:500]
            except (ValueError, KeyError, TypeError):
                message = "invalid report parameters"
            raise ApiError(422, "invalid_request", message)
