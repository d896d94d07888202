"""A Redis cache of answers to repeated questions, per tenant and language.

Only answers marked `cacheable` are stored: those that depend on the question text alone (not on
the conversation) and did not come from an LLM fallback. Redis trouble never fails a reply: the
cache is bypassed and the error logged.
"""

from __future__ import annotations

import hashlib
import logging
import re

from pydantic import ValidationError
from redis.asyncio import Redis
from redis.exceptions import RedisError

from ai_responder.answering import Answer, KnowledgeBase, Question, Responder
from ai_responder.text import normalize

logger = logging.getLogger(__name__)

_SPACES = re.compile(r"[^a-z0-9]+")


def normalise_question(text: str) -> str:
    """Case, accents, punctuation and spacing do not make a different question."""
    return _SPACES.sub(" ", normalize(text)).strip()


class AnswerCache:
    """Answers keyed by tenant + language + hash of the normalised question, with a TTL."""

    def __init__(self, redis: Redis, ttl_s: int = 3600, prefix: str = "ai-responder:answer:v1") -> None:
        self.redis = redis
        self.ttl_s = ttl_s
        self.prefix = prefix

    def key(self, tenant_id: str, language: str, text: str) -> str:
        digest = hashlib.sha256(normalise_question(text).encode()).hexdigest()[:32]
        return f"{self.prefix}:{tenant_id}:{language}:{digest}"

    async def get(self, tenant_id: str, language: str, text: str) -> Answer | None:
        try:
            raw = await self.redis.get(self.key(tenant_id, language, text))
        except RedisError as exc:
            logger.warning("answer cache read failed", extra={"tenant_id": tenant_id, "error": str(exc)})
            return None
        if raw is None:
            return None
        try:
            return Answer.model_validate_json(raw)
        except ValidationError:
            return None  # written by an older, incompatible version: treat as a miss

    async def put(self, tenant_id: str, language: str, text: str, answer: Answer) -> bool:
        """Store a cacheable answer; returns whether it was stored."""
        if not answer.cacheable:
            return False
        try:
            await self.redis.set(self.key(tenant_id, language, text), answer.model_dump_json(), ex=self.ttl_s)
        except RedisError as exc:
            logger.warning("answer cache write failed", extra={"tenant_id": tenant_id, "error": str(exc)})
            return False
        return True

    async def invalidate_tenant(self, tenant_id: str) -> int:
        """Drop a tenant's cached answers (after its knowledge base changed)."""
        deleted = 0
        async for key in self.redis.scan_iter(match=f"{self.prefix}:{tenant_id}:*", count=500):
            deleted += await self.redis.delete(key)
        return deleted


class CachingResponder:
    """A `Responder` that serves repeated questions from the cache and fills it otherwise."""

    def __init__(self, inner: Responder, cache: AnswerCache, knowledge: KnowledgeBase) -> None:
        self.inner = inner
        self.cache = cache
        self.knowledge = knowledge

    async def answer(self, question: Question) -> Answer:
        language = self.knowledge.tenant(question.tenant_id).language_of(question)
        cached = await self.cache.get(question.tenant_id, language, question.text)
        if cached is not None:
            return cached
        answer = await self.inner.answer(question)
        await self.cache.put(question.tenant_id, answer.language, question.text, answer)
        return answer
