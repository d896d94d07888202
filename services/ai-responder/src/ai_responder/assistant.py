"""The assistant as the service runs it: the knowledge bases from the store with the tenants'
assistant settings laid over them, the responder of the configured mode, and the answer cache;
swapped as a whole when a knowledge base or a tenant's settings change (on this replica at once, on
the others at their next refresh, every `kb_refresh_s`)."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from collections.abc import Iterator, Sequence

from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ai_responder.answering import (
    Answer,
    KnowledgeBase,
    Question,
    TenantKnowledge,
    build_responder,
)
from ai_responder.assistant_settings import effective
from ai_responder.cache import AnswerCache, CachingResponder, code_fingerprint
from ai_responder.config import Settings
from ai_responder.store import live_versions, load_assistant_settings, load_knowledge_bases
from contracts.common import HandoffReason, SmartAction, SmartActionType
from servicekit.logs import get_logger

log = get_logger(__name__)

CODE_FINGERPRINT = code_fingerprint()  # once: the code does not change while it runs

# Said when a tenant has no knowledge base loaded: the customer still gets an answer and a person.
NO_KNOWLEDGE = {
    "it": ("Al momento non riesco a rispondere. Vuoi parlare con un operatore?", "Sì, chiama un operatore", "No"),
    "en": ("I can't answer right now. Would you like to talk to an operator?", "Yes, call an operator", "No"),
}


def cannot_answer(language: str) -> Answer:
    text, yes, no = NO_KNOWLEDGE.get(language, NO_KNOWLEDGE["it"])
    return Answer(
        text=text,
        language=language if language in NO_KNOWLEDGE else "it",
        confidence=0.0,
        smart_actions=[
            SmartAction(type=SmartActionType.REQUEST_OPERATOR, label=yes),
            SmartAction(type=SmartActionType.CONTINUE_AI, label=no),
        ],
        handoff_reason=HandoffReason.UNKNOWN_ANSWER,
    )


class Assistant:
    def __init__(self, settings: Settings, sessions: async_sessionmaker[AsyncSession], redis: Redis) -> None:
        self.settings = settings
        self.sessions = sessions
        self.redis = redis
        self.versions: dict[str, int] = {}
        self.settings_versions: dict[str, int] = {}
        """Of each tenant's assistant settings (a tenant without any answers by its files)."""
        self.knowledge = KnowledgeBase({})
        self.responder: CachingResponder | None = None
        self._refresher: asyncio.Task[None] | None = None
        self._last_reload = 0.0
        # One reload at a time: two at once (the refresher's and an admin change's) may finish in
        # the other order, and the one that read the database first would put back the older
        # knowledge base after the change had been applied and answered.
        self._reloading = asyncio.Lock()

    async def answer_all(self, questions: Sequence[Question]) -> list[Answer]:
        """Answers a batch of questions. A tenant not known yet triggers one early reload, so a
        knowledge base just loaded by another replica or the CLI is used without waiting for the
        next refresh; a tenant still unknown gets `cannot_answer`."""
        if any(q.tenant_id not in self.versions for q in questions) and self._since_reload() > 1.0:
            await self.reload()
        responder = self.responder
        known = [responder is not None and q.tenant_id in self.versions for q in questions]
        answered: Iterator[Answer] = iter(())
        if responder is not None and any(known):
            answerable = [q for q, is_known in zip(questions, known, strict=True) if is_known]
            answered = iter(await responder.answer_all(answerable))
        answers: list[Answer] = []
        for question, is_known in zip(questions, known, strict=True):
            if not is_known:
                log.error("no knowledge base for tenant", tenant=question.tenant_id)
            answers.append(next(answered) if is_known else cannot_answer(question.language or "it"))
        return answers

    def _since_reload(self) -> float:
        return asyncio.get_running_loop().time() - self._last_reload

    async def reload(self) -> None:
        async with self._reloading:
            await self._reload()

    async def _reload(self) -> None:
        self._last_reload = asyncio.get_running_loop().time()
        async with self.sessions() as session:
            versions, bases = await load_knowledge_bases(session)
            records = {r.tenant_id: r for r in await load_assistant_settings(session)}
        tenants: dict[str, TenantKnowledge] = {}
        # The cache key names what the answers come from: the answering code and every tenant's
        # knowledge base as its settings apply it. Version numbers alone are not enough: two
        # systems sharing a Redis (or a database built again) reach the same numbers with other
        # articles, and a new release of the code may answer the same articles otherwise.
        fingerprint = hashlib.sha256(CODE_FINGERPRINT.encode())
        for kb in sorted(bases, key=lambda kb: kb.tenant_id):
            applied, llm_enabled = effective(kb, records.get(kb.tenant_id))
            tenants[kb.tenant_id] = TenantKnowledge(applied, llm_enabled=llm_enabled)
            fingerprint.update(f"{applied.model_dump_json()}|{llm_enabled}\n".encode())
        knowledge = KnowledgeBase(tenants)
        settings_versions = {tenant: r.version for tenant, r in records.items() if tenant in versions}
        generation = fingerprint.hexdigest()[:24]
        cache = AnswerCache(self.redis, self.settings.answer_cache_ttl_s, prefix=f"{AnswerCache.PREFIX}:{generation}")
        inner = build_responder(self.settings, knowledge) if bases else None
        self.knowledge, self.versions, self.settings_versions = knowledge, versions, settings_versions
        self.responder = CachingResponder(inner, cache, knowledge) if inner else None
        log.info("knowledge bases loaded", tenants=sorted(versions), llm=bool(self.settings.llm_api_key))

    async def refresh_forever(self) -> None:
        while True:
            await asyncio.sleep(self.settings.kb_refresh_s)
            try:
                async with self.sessions() as session:
                    if await live_versions(session) != (self.versions, self.settings_versions):
                        await self.reload()
            except Exception:
                log.exception("knowledge base refresh failed")

    async def start(self) -> None:
        await self.reload()
        self._refresher = asyncio.create_task(self.refresh_forever())

    async def stop(self) -> None:
        if self._refresher:
            self._refresher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._refresher
