"""Client of the ai-responder's knowledge-base management API (`/admin/tenants/{tenant_id}/...`,
bodies in `contracts.readapi`), for the dashboard's knowledge-base page.

The gateway holds the ai-responder's admin token; the tenant in the path is always the operator's
(from the JWT), and an answer about another tenant is refused (defence in depth). What the
ai-responder says about the tenant's own knowledge base (a bad file, an unknown article, an id
that exists) goes back to the dashboard in its own words: the message names the problem.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from gateway.internal import InternalApi, InternalResponse, ViewT
from servicekit.http import ApiError
from servicekit.logs import get_logger

log = get_logger(__name__)

# The ai-responder's refusals that are the caller's to fix, passed on as they are.
PASSED_ON = frozenset({404, 409, 413, 422})


class KnowledgeClient:
    def __init__(self, api: InternalApi, admin_token: str, tenant_id: str) -> None:
        self._api = api
        self._token = admin_token
        self._tenant_id = tenant_id

    async def call(self, model: type[ViewT], method: str, path: str, **options: Any) -> ViewT:
        """`path` is under the tenant's `/admin/tenants/{tenant_id}`; its segments come quoted."""
        if not self._token:
            raise ApiError(503, "unavailable", "the knowledge base cannot be managed here: no admin token is set")
        url = f"/admin/tenants/{quote(self._tenant_id, safe='')}{path}"
        headers = {**options.pop("headers", {}), "Authorization": f"Bearer {self._token}"}
        response = await self._api.request(method, url, headers=headers, **options)
        if response.status in PASSED_ON:
            code, message = _error_of(response)
            raise ApiError(response.status, code, message)
        # 401/403 mean the two services disagree on the token: the operator can do nothing (502).
        view = self._api.parse(model, response)
        tenant = getattr(view, "tenant_id", self._tenant_id)
        if tenant != self._tenant_id:
            log.warning("ai-responder answered about another tenant", asked=self._tenant_id, got=tenant)
            raise ApiError(502, "upstream_error", "the assistant answered about another tenant")
        return view


def segment(value: str) -> str:
    """One path segment, quoted (an article id is checked by the route, but never trusted)."""
    return quote(value, safe="")


def _error_of(response: InternalResponse) -> tuple[str, str]:
    try:
        error = response.json()["error"]
        return str(error["code"])[:100], str(error["message"])[:1000]
    except (ValueError, KeyError, TypeError):
        # FastAPI's own validation answer ({"detail": ...}) or anything else: a generic wording.
        return ("not_found", "not found") if response.status == 404 else ("invalid_request", "refused")
