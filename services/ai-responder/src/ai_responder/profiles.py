"""Tenants created through the platform (sign-up, the platform API) get a knowledge base from their
profile (`tenant.profile_changed` on `tenant.events.v1`), so that documents, articles, assistant
settings and answers work for them before anyone loads a folder.

A tenant with no knowledge base gets an empty one (version 1, no article), parsed from a
`tenant.yaml` holding only its languages by the loader a folder goes through: generic messages,
thresholds and policy, and "I don't know" plus the offer of a person for every question until
articles arrive. The messages name no tenant, so the profile's name is not used. A newer profile
sets the languages (the first is the default) of an existing knowledge base too, those of its
files included, as a new version; only languages the knowledge base has messages for are taken,
and nothing is written when they are already the same. Revisions not newer than the stored one
change nothing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import yaml
from sqlalchemy.ext.asyncio import AsyncSession

from ai_responder.admin import load_files
from ai_responder.kb import DEFAULT_MESSAGES, TenantConfig, TenantKB
from ai_responder.store import create_knowledge_base, keep_newest_profile, live_knowledge_base, save_knowledge_base
from contracts import Envelope
from contracts.events import TenantProfileChanged
from servicekit.logs import get_logger

log = get_logger(__name__)
AUTHOR = "tenant profile"


def spoken(languages: Sequence[str], known: Sequence[str]) -> list[str]:
    """The profile's languages the assistant has messages for, in the profile's order."""
    return [language for language in languages if language in known]


def empty_knowledge_base(tenant_id: str, languages: Sequence[str]) -> TenantKB:
    """A knowledge base with no article, as a folder holding only this `tenant.yaml` loads."""
    config: dict[str, object] = {}
    if languages:
        config = {"default_language": languages[0], "languages": list(languages)}
    return load_files(tenant_id, {"tenant.yaml": yaml.safe_dump(config)}, allow_empty=True)


def with_languages(kb: TenantKB, languages: list[str]) -> TenantKB:
    config = TenantConfig.model_validate(
        {**kb.config.model_dump(), "languages": languages, "default_language": languages[0]}
    )
    return kb.model_copy(update={"config": config})


async def apply_profile(session: AsyncSession, envelope: Envelope[TenantProfileChanged]) -> None:
    profile = envelope.payload
    if profile.tenant_id != envelope.tenant_id:
        log.warning("tenant profile of another tenant ignored", tenant_id=envelope.tenant_id, of=profile.tenant_id)
        return
    tenant_id = profile.tenant_id
    if not await keep_newest_profile(session, tenant_id, profile.revision, list(profile.languages)):
        log.info("tenant profile not newer than the stored one", tenant_id=tenant_id, revision=profile.revision)
        return
    note = f"languages from profile revision {profile.revision}"
    # Locked: an article edit or a file load applies before or after this, never half-way.
    live = await live_knowledge_base(session, tenant_id, lock=True)
    if live is None:
        languages = spoken(profile.languages, list(DEFAULT_MESSAGES))
        if not languages:
            log.warning(
                "no assistant messages for the tenant's languages", tenant_id=tenant_id, languages=profile.languages
            )
        kb = await asyncio.to_thread(empty_knowledge_base, tenant_id, languages)
        if await create_knowledge_base(
            session, kb, author=AUTHOR, note=f"created from profile revision {profile.revision}"
        ):
            log.info("empty knowledge base created", tenant_id=tenant_id, languages=kb.config.languages)
        return
    _, kb = live
    languages = spoken(profile.languages, list(kb.config.messages))
    if not languages:
        log.warning(
            "no assistant messages for the tenant's languages", tenant_id=tenant_id, languages=profile.languages
        )
        return
    if languages == kb.config.languages and languages[0] == kb.config.default_language:
        return
    version = await save_knowledge_base(session, with_languages(kb, languages), author=AUTHOR, note=note)
    log.info("knowledge base languages changed", tenant_id=tenant_id, languages=languages, version=version)
