"""The answer cache against the real local Redis."""

import shutil
from pathlib import Path

from redis.asyncio import Redis

from ai_responder import cache
from ai_responder.answering import Answer, KnowledgeBase, Question, RetrievalResponder
from ai_responder.cache import AnswerCache, CachingResponder, code_fingerprint, normalise_question

TENANT = "lucine-di-natale"


class CountingResponder:
    """Counts real calls so the test can tell a cache hit from a miss."""

    def __init__(self, inner: RetrievalResponder) -> None:
        self.inner = inner
        self.calls = 0

    async def answer(self, question: Question) -> Answer:
        self.calls += 1
        return await self.inner.answer(question)


def test_normalisation() -> None:
    assert normalise_question("  Quanto COSTA il biglietto?? ") == normalise_question("quanto costa il biglietto")
    assert normalise_question("Perché") == "perche"


async def test_key_shape(redis_client: Redis, key_prefix: str) -> None:
    cache = AnswerCache(redis_client, prefix=key_prefix)
    key = cache.key(TENANT, "it", "Quanto costa?")
    assert key.startswith(f"{key_prefix}:{TENANT}:it:")
    assert key == cache.key(TENANT, "it", "quanto costa")
    assert key != cache.key(TENANT, "en", "quanto costa")
    assert key != cache.key("other-tenant", "it", "quanto costa")


async def test_repeated_question_is_served_from_redis(
    redis_client: Redis, key_prefix: str, knowledge: KnowledgeBase
) -> None:
    inner = CountingResponder(RetrievalResponder(knowledge))
    cache = AnswerCache(redis_client, ttl_s=60, prefix=key_prefix)
    responder = CachingResponder(inner, cache, knowledge)

    first = await responder.answer(Question(tenant_id=TENANT, text="Quanto costa il biglietto?"))
    second = await responder.answer(Question(tenant_id=TENANT, text="quanto costa il biglietto"))
    assert inner.calls == 1
    assert second == first
    key = cache.key(TENANT, "it", "Quanto costa il biglietto?")
    assert 0 < await redis_client.ttl(key) <= 60

    english = await responder.answer(Question(tenant_id=TENANT, text="How much is a ticket?"))
    assert inner.calls == 2
    assert english.language == "en"


async def test_conversation_specific_answers_are_not_cached(
    redis_client: Redis, key_prefix: str, knowledge: KnowledgeBase
) -> None:
    inner = CountingResponder(RetrievalResponder(knowledge))
    cache = AnswerCache(redis_client, prefix=key_prefix)
    responder = CachingResponder(inner, cache, knowledge)
    question = Question(
        tenant_id=TENANT,
        text="e dove si prende?",
        history=[("customer", "C'è una navetta?")],  # type: ignore[list-item]
    )
    answer = await responder.answer(question)
    assert answer.sources
    assert not answer.cacheable
    await responder.answer(question)
    assert inner.calls == 2
    assert [k async for k in redis_client.scan_iter(match=f"{key_prefix}:*")] == []


async def test_tenants_do_not_share_entries(redis_client: Redis, key_prefix: str, knowledge: KnowledgeBase) -> None:
    cache = AnswerCache(redis_client, prefix=key_prefix)
    answer = Answer(text="x", language="it", confidence=1.0, cacheable=True)
    assert await cache.put("tenant-a", "it", "ciao", answer)
    assert await cache.get("tenant-a", "it", "ciao") == answer
    assert await cache.get("tenant-b", "it", "ciao") is None
    assert not await cache.put("tenant-a", "it", "altro", answer.model_copy(update={"cacheable": False}))
    assert await cache.invalidate_tenant("tenant-a") == 1
    assert await cache.get("tenant-a", "it", "ciao") is None


async def test_corrupt_entry_is_a_miss(redis_client: Redis, key_prefix: str) -> None:
    cache = AnswerCache(redis_client, prefix=key_prefix)
    await redis_client.set(cache.key(TENANT, "it", "ciao"), b"{not json")
    assert await cache.get(TENANT, "it", "ciao") is None


async def test_redis_down_never_breaks_answers(knowledge: KnowledgeBase) -> None:
    dead = Redis.from_url("redis://127.0.0.1:9/0", socket_connect_timeout=0.2)
    try:
        responder = CachingResponder(RetrievalResponder(knowledge), AnswerCache(dead), knowledge)
        answer = await responder.answer(Question(tenant_id=TENANT, text="C'è una navetta?"))
        assert answer.sources[0].article_id == "shuttle-bus"
    finally:
        await dead.aclose()


async def test_a_batch_is_answered_in_order_from_cache_and_responder(
    redis_client: Redis, key_prefix: str, knowledge: KnowledgeBase
) -> None:
    inner = CountingResponder(RetrievalResponder(knowledge))
    responder = CachingResponder(inner, AnswerCache(redis_client, ttl_s=60, prefix=key_prefix), knowledge)
    warm = await responder.answer(Question(tenant_id=TENANT, text="Quanto costa il biglietto?"))
    texts = ["C'è una navetta?", "quanto costa il biglietto", "How much is a ticket?", "C'è una navetta?"]

    answers = await responder.answer_all([Question(tenant_id=TENANT, text=text) for text in texts])

    assert inner.calls == 1 + 3, "only the question cached before the batch is served from Redis"
    assert answers[1] == warm
    assert answers[0] == answers[3]
    assert answers[0].sources[0].article_id == "shuttle-bus"
    assert answers[2].language == "en"
    again = await responder.answer_all([Question(tenant_id=TENANT, text=text) for text in texts])
    assert inner.calls == 4, "the batch stored its fresh answers"
    assert again == answers


def test_another_version_of_the_answering_code_has_another_fingerprint(tmp_path: Path) -> None:
    for module in Path(cache.__file__).parent.glob("*.py"):
        shutil.copy(module, tmp_path)
    assert code_fingerprint(tmp_path) == code_fingerprint()
    policy = tmp_path / "policy.py"
    policy.write_text(policy.read_text() + "\nDEFAULT_NEGATIVE += ('livid',)\n")
    assert code_fingerprint(tmp_path) != code_fingerprint()
