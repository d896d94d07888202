"""LLM mode against a real local OpenAI-compatible server (see conftest.llm_server)."""

import json
import logging
import time
import uuid
from typing import Any

import pytest
from openai import AsyncOpenAI

from ai_responder.answering import AnswerMode, KnowledgeBase, LlmResponder, Question, RetrievalResponder
from ai_responder.handlers import question_of
from ai_responder.store import QuestionContext
from contracts import new_envelope
from contracts.common import HandoffReason, Sender
from contracts.events import MessagePosted

TENANT = "lucine-di-natale"


def make(knowledge: KnowledgeBase, base_url: str, timeout: float = 5.0) -> LlmResponder:
    client = AsyncOpenAI(base_url=base_url, api_key="test-key", timeout=timeout, max_retries=0)
    return LlmResponder(knowledge, client, model="test-model")


def system_prompt(body: dict[str, Any]) -> str:
    return str(body["messages"][0]["content"])


async def test_grounded_answer_through_the_real_client(knowledge, fake_llm) -> None:
    def reply(body: dict[str, Any]) -> str:
        # The "model" can only know the price from the passages it was sent.
        assert "Ridotto" in system_prompt(body)
        return json.dumps(
            {"answer": "Il ridotto costa 7 € (bambini 3-12 anni).", "answerable": True, "confidence": 0.9}
        )

    fake_llm.reply = reply
    responder = make(knowledge, fake_llm.base_url)
    answer = await responder.answer(Question(tenant_id=TENANT, text="quanto costa il biglietto ridotto?"))

    assert answer.mode == AnswerMode.LLM
    assert answer.text == "Il ridotto costa 7 € (bambini 3-12 anni)."
    assert answer.sources[0].article_id == "ticket-prices"
    assert any(str(a.url).startswith("https://lucinedinatale.it/") for a in answer.smart_actions)
    retrieval = RetrievalResponder(knowledge).answer_now(
        Question(tenant_id=TENANT, text="quanto costa il biglietto ridotto?")
    )
    assert answer.confidence == pytest.approx((retrieval.confidence + 0.9) / 2, abs=1e-3)
    assert answer.cacheable

    [request] = fake_llm.requests
    assert request["model"] == "test-model"
    assert "Italian" in system_prompt(request)
    assert "ONLY the facts" in system_prompt(request)
    assert request["messages"][-1] == {"role": "user", "content": "quanto costa il biglietto ridotto?"}


async def test_a_redelivered_message_asks_with_the_same_idempotency_key(knowledge, fake_llm) -> None:
    def customer_message(text: str) -> Any:
        message = MessagePosted(message_id=uuid.uuid4(), seq=1, sender="customer", text=text, status="AI")
        return new_envelope(message, tenant_id=TENANT, conversation_id=uuid.uuid4())

    responder = make(knowledge, fake_llm.base_url)
    first = customer_message("quanto costa il biglietto ridotto?")
    other = customer_message("quanto costa il biglietto ridotto?")  # the same words, another message
    for envelope in (first, first, other):  # the second is a redelivery of the first
        await responder.answer(question_of(envelope, QuestionContext()))

    keys = [headers.get("idempotency-key") for headers in fake_llm.headers]
    assert keys[0] == keys[1] == str(uuid.uuid5(first.event_id, "llm-answer"))
    assert keys[2] == str(uuid.uuid5(other.event_id, "llm-answer"))
    assert keys[2] != keys[0]


async def test_english_prompt_and_handoff_kept(knowledge, fake_llm) -> None:
    fake_llm.reply = lambda body: '{"answer": "Our staff handle refunds.", "answerable": true, "confidence": 0.8}'
    responder = make(knowledge, fake_llm.base_url)
    answer = await responder.answer(Question(tenant_id=TENANT, text="Can I get a refund for my tickets?"))
    assert "English" in system_prompt(fake_llm.requests[0])
    assert answer.language == "en"
    assert answer.handoff_reason == HandoffReason.SENSITIVE_TOPIC
    assert answer.text.startswith("Our staff handle refunds.")
    assert [a.type.value for a in answer.smart_actions][-2:] == ["request_operator", "continue_ai"]


async def test_two_questions_send_both_articles_and_cite_both(knowledge, fake_llm) -> None:
    def reply(body: dict[str, Any]) -> str:
        assert "[dates-hours]" in system_prompt(body)
        assert "[parking]" in system_prompt(body)
        return '{"answer": "Apriamo alle 17:30; il parcheggio è gratuito.", "answerable": true, "confidence": 0.9}'

    fake_llm.reply = reply
    responder = make(knowledge, fake_llm.base_url)
    answer = await responder.answer(Question(tenant_id=TENANT, text="A che ora aprite? C'è un parcheggio?"))
    assert answer.mode == AnswerMode.LLM
    assert answer.text == "Apriamo alle 17:30; il parcheggio è gratuito."
    assert [s.article_id for s in answer.sources] == ["dates-hours", "parking"]


async def test_model_saying_it_cannot_answer_means_unknown(knowledge, fake_llm) -> None:
    fake_llm.reply = lambda body: '{"answer": "", "answerable": false, "confidence": 0.1}'
    responder = make(knowledge, fake_llm.base_url)
    answer = await responder.answer(Question(tenant_id=TENANT, text="A che ora apre il parcheggio?"))
    assert answer.sources == []
    assert answer.handoff_reason in (HandoffReason.UNKNOWN_ANSWER, HandoffReason.LOW_CONFIDENCE)
    assert "non ho questa informazione" in answer.text


async def test_free_text_reply_is_accepted(knowledge, fake_llm) -> None:
    fake_llm.reply = lambda body: "Il parco è aperto dalle 17:30 alle 22:30."
    answer = await make(knowledge, fake_llm.base_url).answer(Question(tenant_id=TENANT, text="orari di apertura"))
    assert answer.mode == AnswerMode.LLM
    assert answer.text == "Il parco è aperto dalle 17:30 alle 22:30."


async def test_no_model_call_without_evidence_or_for_a_person(knowledge, fake_llm) -> None:
    responder = make(knowledge, fake_llm.base_url)
    person = await responder.answer(Question(tenant_id=TENANT, text="voglio un operatore"))
    off_topic = await responder.answer(Question(tenant_id=TENANT, text="Qual è la capitale della Francia?"))
    assert person.handoff_reason == HandoffReason.CUSTOMER_REQUEST
    assert off_topic.handoff_reason == HandoffReason.UNKNOWN_ANSWER
    assert fake_llm.requests == []


async def test_a_question_with_a_request_for_a_person_is_answered_from_the_kb_without_the_model(
    knowledge, fake_llm
) -> None:
    responder = make(knowledge, fake_llm.base_url)
    answer = await responder.answer(
        Question(tenant_id=TENANT, text="Quanto costano i biglietti? Vorrei parlare con un operatore")
    )
    assert [s.article_id for s in answer.sources] == ["ticket-prices"]
    assert answer.text.endswith("Vuoi che ti metta in contatto con un operatore?")
    assert answer.handoff_reason == HandoffReason.CUSTOMER_REQUEST
    assert answer.mode == AnswerMode.RETRIEVAL
    assert fake_llm.requests == []


async def test_history_sent_only_for_follow_ups(knowledge, fake_llm) -> None:
    fake_llm.reply = lambda body: '{"answer": "La navetta passa nel fine settimana.", "answerable": true}'
    history = [(Sender.CUSTOMER, "C'è una navetta?"), (Sender.AI, "Sì, nel fine settimana.")]
    answer = await make(knowledge, fake_llm.base_url).answer(
        Question(tenant_id=TENANT, text="e dove si prende?", history=history)
    )
    assert answer.sources  # grounded on what the combined question found
    roles = [m["role"] for m in fake_llm.requests[0]["messages"]]
    assert roles == ["system", "user", "assistant", "user"]
    assert not answer.cacheable


async def test_timeout_falls_back_to_retrieval(knowledge, fake_llm, caplog) -> None:
    fake_llm.delay_s = 3.0
    responder = make(knowledge, fake_llm.base_url, timeout=0.5)
    question = Question(tenant_id=TENANT, text="Dove posso parcheggiare?")
    started = time.perf_counter()
    with caplog.at_level(logging.WARNING, logger="ai_responder.answering"):
        answer = await responder.answer(question)
    elapsed = time.perf_counter() - started

    assert elapsed < 2.5  # the configured timeout was honoured, not the server's delay
    assert len(fake_llm.requests) == 1  # it really reached the server
    expected = RetrievalResponder(knowledge).answer_now(question)
    assert answer.mode == AnswerMode.FALLBACK
    assert answer.text == expected.text
    assert answer.sources == expected.sources
    assert not answer.cacheable
    assert any("llm call failed" in r.getMessage() and r.error == "APITimeoutError" for r in caplog.records)


async def test_server_error_falls_back(knowledge, fake_llm) -> None:
    fake_llm.status = 500
    answer = await make(knowledge, fake_llm.base_url).answer(Question(tenant_id=TENANT, text="C'è una navetta?"))
    assert answer.mode == AnswerMode.FALLBACK
    assert answer.sources  # grounded on what the combined question found


async def test_unreachable_endpoint_falls_back(knowledge) -> None:
    answer = await make(knowledge, "http://127.0.0.1:9/v1", timeout=1.0).answer(
        Question(tenant_id=TENANT, text="C'è una navetta?")
    )
    assert answer.mode == AnswerMode.FALLBACK
    assert answer.sources  # grounded on what the combined question found


def test_batches_are_small_only_when_an_llm_answers() -> None:
    from ai_responder.config import Settings
    from servicekit.settings import ServiceSettings

    assert Settings(llm_api_key="sk-test").consumer_batch_size == 20
    assert Settings(llm_api_key=None).consumer_batch_size == ServiceSettings.model_fields["consumer_batch_size"].default
    assert Settings(llm_api_key=None, consumer_batch_size=7).consumer_batch_size == 7
