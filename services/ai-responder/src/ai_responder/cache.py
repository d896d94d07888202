"""A Redis cache of answers to repeated questions, per tenant and language.

Only answers marked `cacheable` are stored: those that depend on the question text alone (not on
the conversation) and did not come from an LLM fallback. Redis trouble never fails a reply: the
cache is bypassed and the error logged.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
from collections.abc import Sequence
from pathlib import Path

from pydantic import ValidationError
from redis.asyncio import Redis
from redis.exceptions import RedisError

from ai_responder.answering import Answer, KnowledgeBase, Question, Responder
from ai_responder.text import normalize

logger = logging.getLogger(__name__)

_SPACES = re.compile(r"[^a-z0-9]+")


def code_fingerprint(package: Path = Path(__file__).parent) -> str:
    """A digest of the answering code, every module of this package: another version of it may
    retrieve, judge moods or offer handoffs otherwise, so its cached answers are not this one's."""
    digest = hashlib.sha256()
    for module in sorted(package.glob("*.py")):
        digest.update(module.name.encode() + b"\0" + module.read_bytes())
    return digest.hexdigest()[:16]


def normalise_question(text: str) -> str:
    """Case, accents, punctuation and spacing do not make a different question."""
    return _SPACES.sub(" ", normalize(text)).strip()


class AnswerCache:
    """Answers keyed by tenant + language + hash of the normalised question, with a TTL."""

    # Names the Answer's shape: v2 added `upset`, v3 `urgent`, which older entries would read as False.
    PREFIX = "ai-responder:answer:v3"

    def __init__(self, redis: Redis, ttl_s: int = 3600, prefix: str = PREFIX) -> None:
        self.redis = redis
        self.ttl_s = ttl_s
        self.prefix = prefix

    def key(self, tenant_id: str, language: str, text: str) -> str:
        digest = hashlib.sha256(normalise_question(text).encode()).hexdigest()[:32]
        return f"{self.prefix}:{tenant_id}:{language}:{digest}"

    async def get(self, tenant_id: str, language: str, text: str) -> Answer | None:
        return (await self.get_many([(tenant_id, language, text)]))[0]

    async def get_many(self, entries: Sequence[tuple[str, str, str]]) -> list[Answer | None]:
        """The cached answers of (tenant, language, question text) entries, None where missing;
        one round trip whatever their number."""
        if not entries:
            return []
        try:
            raws = await self.redis.mget([self.key(*entry) for entry in entries])
        except RedisError as exc:
            logger.warning("answer cache read failed", extra={"error": str(exc)})
            return [None] * len(entries)
        return [self._parse(raw) for raw in raws]

    @staticmethod
    def _parse(raw: bytes | str | None) -> Answer | None:
        if raw is None:
            return None
        try:
            return Answer.model_validate_json(raw)
        except ValidationError:
            return None  # written by an older, incompatible version: treat as a miss

    async def put(self, tenant_id: str, language: str, text: str, answer: Answer) -> bool:
        """Store a cacheable answer; returns whether it was stored."""
        return await self.put_many([(tenant_id, language, text, answer)]) == 1

    async def put_many(self, entries: Sequence[tuple[str, str, str, Answer]]) -> int:
        """Stores the cacheable answers of (tenant, language, question text, answer) entries in
        one round trip; returns how many were stored."""
        cacheable = [
            (self.key(tenant, language, text), answer) for tenant, language, text, answer in entries if answer.cacheable
        ]
        if not cacheable:
            return 0
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                for key, answer in cacheable:
                    pipe.set(key, answer.model_dump_json(), ex=self.ttl_s)
                await pipe.execute()
        except RedisError as exc:
            logger.warning("answer cache write failed", extra={"error": str(exc)})
            return 0
        return len(cacheable)

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
        return (await self.answer_all([question]))[0]

    async def answer_all(self, questions: Sequence[Question]) -> list[Answer]:
        """Answers questions of known tenants, reading and filling the cache in one round trip
        each; the questions not cached are answered together (an LLM's calls overlap)."""
        entries = [(q.tenant_id, self.knowledge.tenant(q.tenant_id).language_of(q), q.text) for q in questions]
        cached = await self.cache.get_many(entries)
        missing = [question for question, answer in zip(questions, cached, strict=True) if answer is None]
        fresh = await asyncio.gather(*(self.inner.answer(question) for question in missing))
        await self.cache.put_many([(q.tenant_id, a.language, q.text, a) for q, a in zip(missing, fresh, strict=True)])
        answered = iter(fresh)
        return [answer if answer is not None else next(answered) for answer in cached]
