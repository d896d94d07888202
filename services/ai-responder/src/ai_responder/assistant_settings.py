"""The tenant's assistant settings: thresholds, the phrases that call for a person, sensitive topics,
smart actions (link buttons) and whether an LLM writes the answers.

They are laid over the knowledge base's `tenant.yaml` and `policy.yaml`, which stay the defaults: a
tenant's first read stores them as taken from those files (version 1), and from then on the stored
settings win, also over a knowledge base loaded again from its folder. Messages, synonyms, negative
words and the rest of the files are not settings.

A change is checked against the live knowledge base under its row lock (label languages, the actions
and topics its articles name) and stored as a new version; the replica that took it reloads at once,
the others when their refresh sees the new version (`Assistant.refresh_forever`), as for a knowledge
base. Bodies: `contracts.readapi` (assistant settings).
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Depends, Request
from pydantic import ValidationError

from ai_responder.admin import require_admin
from ai_responder.answering import TenantKnowledge
from ai_responder.kb import ActionSpec, TenantConfig, TenantKB
from ai_responder.store import (
    AssistantSettingsRecord,
    assistant_settings_of,
    live_knowledge_base,
    save_assistant_settings,
    seed_assistant_settings,
)
from ai_responder.text import tokenize
from contracts.common import SmartActionType
from contracts.envelope import TenantId
from contracts.readapi import AssistantSettingsInput, AssistantSettingsView, SmartActionSetting
from servicekit.http import ApiError, Runtime

if TYPE_CHECKING:
    from ai_responder.assistant import Assistant

router = APIRouter(prefix="/admin/tenants/{tenant_id}", tags=["assistant settings"])
Admin = Annotated[Runtime, Depends(require_admin)]
# Offered by the policy itself (policy.yaml's large_group_min), so an article may name it without a phrase list.
BUILT_IN_TOPICS = frozenset({"large_group"})


def settings_from_files(kb: TenantKB) -> AssistantSettingsInput:
    """The settings as the knowledge base's tenant.yaml and policy.yaml have them."""
    actions = [
        SmartActionSetting(id=action_id, url=spec.url, label=spec.label, triggers=spec.triggers)
        for action_id, spec in kb.config.actions.items()
        if spec.type == SmartActionType.OPEN_URL and spec.url is not None
    ]
    return AssistantSettingsInput(
        answer_threshold=kb.config.answer_threshold,
        unknown_threshold=kb.config.unknown_threshold,
        handoff_phrases=kb.policy.customer_request,
        sensitive_topics=kb.policy.sensitive_topics,
        smart_actions=actions,
        llm_enabled=True,
    )


def apply_settings(kb: TenantKB, settings: AssistantSettingsInput) -> TenantKB:
    """The knowledge base as the assistant answers from it with these settings. Actions of the files
    that are no link (which the settings cannot express) are kept."""
    actions: dict[str, Any] = {
        action_id: spec.model_dump() for action_id, spec in kb.config.actions.items() if spec.url is None
    }
    for action in settings.smart_actions:
        actions[action.id] = ActionSpec(
            type=SmartActionType.OPEN_URL, url=action.url, label=action.label, triggers=action.triggers
        ).model_dump()
    config = TenantConfig.model_validate(
        {
            **kb.config.model_dump(),
            "answer_threshold": settings.answer_threshold,
            "unknown_threshold": settings.unknown_threshold,
            "actions": actions,
        }
    )
    policy = kb.policy.model_copy(
        update={"customer_request": list(settings.handoff_phrases), "sensitive_topics": dict(settings.sensitive_topics)}
    )
    return kb.model_copy(update={"config": config, "policy": policy})


def check_settings(kb: TenantKB, settings: AssistantSettingsInput) -> TenantKB:
    """What the body's own bounds cannot say, as a 422 naming the field; the applied knowledge base."""

    def refuse(field: str, problem: str) -> ApiError:
        return ApiError(422, "invalid_settings", f"{field}: {problem}")

    def words(field: str, phrase: str) -> None:
        if not tokenize(phrase.replace("=", " ")):
            raise refuse(field, f"{phrase!r} has no word to match")

    for i, phrase in enumerate(settings.handoff_phrases):
        words(f"handoff_phrases.{i}", phrase)
    for topic, phrases in settings.sensitive_topics.items():
        for i, phrase in enumerate(phrases):
            words(f"sensitive_topics.{topic}.{i}", phrase)
    languages = kb.config.languages
    for i, action in enumerate(settings.smart_actions):
        unknown = sorted(set(action.label) - set(languages))
        if unknown:
            raise refuse(f"smart_actions.{i}.label", f"language(s) {unknown} are not the tenant's {languages}")
        for j, phrase in enumerate(action.triggers):
            words(f"smart_actions.{i}.triggers.{j}", phrase)
    defined = {a.id for a in settings.smart_actions} | {i for i, s in kb.config.actions.items() if s.url is None}
    topics = set(settings.sensitive_topics) | BUILT_IN_TOPICS
    for article in kb.articles:
        missing = sorted(set(article.actions) - defined)
        if missing:
            raise refuse("smart_actions", f"article {article.id!r} offers {missing}: keep them or edit the article")
        gone = sorted(set(article.topics) - topics)
        if gone:
            raise refuse("sensitive_topics", f"article {article.id!r} answers {gone}: keep them or edit the article")
    try:
        applied = apply_settings(kb, settings)
        TenantKnowledge(applied)  # built as the assistant will: what cannot be served is refused here
    except (ValidationError, ValueError) as error:
        raise ApiError(422, "invalid_settings", str(error)) from error
    return applied


def effective(kb: TenantKB, record: AssistantSettingsRecord | None) -> tuple[TenantKB, bool]:
    """The knowledge base with the stored settings applied, and whether the LLM may answer."""
    if record is None:
        return kb, True
    settings = AssistantSettingsInput.model_validate(record.settings)
    return apply_settings(kb, settings), settings.llm_enabled


def _view(tenant_id: str, record: AssistantSettingsRecord) -> AssistantSettingsView:
    return AssistantSettingsView(
        **record.settings, tenant_id=tenant_id, version=record.version, updated_at=record.updated_at
    )


def _sessions(runtime: Runtime) -> Any:
    assert runtime.sessions is not None
    return runtime.sessions


@router.get("/assistant", response_model=AssistantSettingsView, summary="The tenant's assistant settings")
async def get_settings(tenant_id: TenantId, runtime: Admin) -> AssistantSettingsView:
    async with _sessions(runtime)() as session, session.begin():
        record = await assistant_settings_of(session, tenant_id)
        if record is None:
            live = await live_knowledge_base(session, tenant_id)
            if live is None:
                raise ApiError(404, "not_found", f"no knowledge base for tenant {tenant_id!r}")
            await seed_assistant_settings(session, tenant_id, settings_from_files(live[1]).model_dump(mode="json"))
            record = await assistant_settings_of(session, tenant_id)
            assert record is not None
        return _view(tenant_id, record)


@router.put("/assistant", response_model=AssistantSettingsView, summary="Change the tenant's assistant settings")
async def put_settings(
    tenant_id: TenantId, body: AssistantSettingsInput, runtime: Admin, request: Request
) -> AssistantSettingsView:
    async with _sessions(runtime)() as session, session.begin():
        # The knowledge base's lock: an article edit and a settings change apply one after the other.
        live = await live_knowledge_base(session, tenant_id, lock=True)
        if live is None:
            raise ApiError(404, "not_found", f"no knowledge base for tenant {tenant_id!r}")
        await asyncio.to_thread(check_settings, live[1], body)
        await save_assistant_settings(session, tenant_id, body.model_dump(mode="json"))
        record = await assistant_settings_of(session, tenant_id)
        assert record is not None
        view = _view(tenant_id, record)
    assistant: Assistant = request.app.state.assistant
    await assistant.reload()
    return view
