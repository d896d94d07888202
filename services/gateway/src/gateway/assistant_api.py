"""The tenant's assistant settings: thresholds, handoff phrases, sensitive topics, smart actions and
whether an LLM writes the answers. A proxy of the ai-responder's management API (`gateway.kb`'s
client), which owns them and applies them on every replica within a second or two.

Admins change them, supervisors read them, plain operators get 403 (the ai-responder is never
asked); the tenant is always the token's. A change is recorded in the gateway's audit log
(`assistant.update`, before and after) once the ai-responder has accepted it: the two databases
cannot share a transaction, and an entry for a change that was refused would be false. What the
ai-responder refuses (a 422 naming the field) goes back in its words, and nothing is saved.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends

from contracts.readapi import AssistantSettingsInput, AssistantSettingsView
from gateway.admin_api import AdminDep, transaction
from gateway.api import RuntimeDep, limit_per_ip
from gateway.kb import KnowledgeClient
from gateway.operator_api import OperatorDep
from gateway.operator_stream import SUPERVISING_ROLES
from gateway.schemas import operator_errors
from gateway.store import record_audit
from servicekit.http import ApiError
from servicekit.logs import get_logger

log = get_logger(__name__)

router = APIRouter(prefix="/v1/settings", tags=["settings"], dependencies=[Depends(limit_per_ip)])

WORDING = {
    "s403": "Supervisors read the assistant settings, admins change them",
    "s404": "The tenant has no knowledge base yet",
    "s422": "Invalid settings (the message names the field); nothing is saved",
    "s502": "The ai-responder answered badly",
    "s503": "The ai-responder is unreachable, or the gateway has no admin token for it",
}


def _client(runtime: RuntimeDep, tenant_id: str) -> KnowledgeClient:
    return KnowledgeClient(runtime.copilot_http, runtime.config.ai_responder_admin_token, tenant_id=tenant_id)


def _audited(view: AssistantSettingsView) -> dict[str, Any]:
    return view.model_dump(mode="json", exclude={"tenant_id", "updated_at"})


@router.get(
    "/assistant",
    response_model=AssistantSettingsView,
    summary="The assistant's settings (at first, as the tenant's knowledge-base files have them)",
    responses=operator_errors(401, 403, 404, 429, 502, 503, **WORDING),
)
async def get_assistant(runtime: RuntimeDep, operator: OperatorDep) -> AssistantSettingsView:
    if operator.role not in SUPERVISING_ROLES:
        raise ApiError(403, "forbidden", "the assistant settings are for supervisors and admins")
    return await _client(runtime, operator.tenant_id).call(AssistantSettingsView, "GET", "/assistant")


@router.put(
    "/assistant",
    response_model=AssistantSettingsView,
    summary="Change the assistant's settings: used by the next answer, on every replica, without a restart",
    responses=operator_errors(401, 403, 404, 422, 429, 502, 503, **WORDING),
)
async def put_assistant(runtime: RuntimeDep, actor: AdminDep, body: AssistantSettingsInput) -> AssistantSettingsView:
    client = _client(runtime, actor.tenant_id)
    before = await client.call(AssistantSettingsView, "GET", "/assistant")
    after = await client.call(AssistantSettingsView, "PUT", "/assistant", json=body.model_dump(mode="json"))
    async with transaction(runtime) as session:
        await record_audit(
            session,
            tenant_id=actor.tenant_id,
            actor=actor.operator_id,
            action="assistant.update",
            target="assistant",
            before=_audited(before),
            after=_audited(after),
        )
    log.info("assistant settings changed", by=actor.operator_id, version=after.version)
    return after
