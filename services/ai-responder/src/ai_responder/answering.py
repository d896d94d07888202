"""The assistant: turns a customer question into an answer, from the KB alone or grounded by an LLM.

`Responder` is the one interface the service's handlers use. Both implementations share the same
analysis (language, handoff policy, retrieval, smart actions) through `TenantKnowledge`, so the
LLM mode differs only in how the text of a confident answer is written, and it falls back to the
retrieval answer whenever the model is slow or failing.

The LLM is called inside the consumer's transaction, which is safe because the call has no
effect outside: a redelivered message is simply asked again, and the reply it produces has an id
derived from the message id, which the conversation service deduplicates. Each call carries the
question's `Idempotency-Key` (derived from the message's event id), so a provider that honours it
answers a retry from its cache instead of generating (and billing) the answer twice.
"""

from __future__ import annotations

import json
import logging
import re
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import openai
from openai import AsyncOpenAI
from pydantic import BaseModel, ConfigDict, Field

from ai_responder.dates import DayQuestion, day_question, yes_no
from ai_responder.kb import TenantKB, load_tenant
from ai_responder.language import detect_language
from ai_responder.policy import EMERGENCY, HandoffPolicy, PhraseMatcher, PolicyHit
from ai_responder.retrieval import MIN_UNKNOWN_LENGTH, Passage, RetrievalIndex
from ai_responder.text import tokenize
from contracts.common import HandoffReason, Sender, SmartAction, SmartActionType, Source

logger = logging.getLogger(__name__)

__all__ = [
    "Answer",
    "AnswerMode",
    "HandoffReason",
    "KnowledgeBase",
    "LlmResponder",
    "Question",
    "Responder",
    "ResponderSettings",
    "RetrievalResponder",
    "TenantKnowledge",
    "UnknownTenantError",
    "build_responder",
]


class AnswerMode(StrEnum):
    RETRIEVAL = "retrieval"
    LLM = "llm"
    FALLBACK = "fallback"
    """LLM mode, but the model failed or timed out and the retrieval answer was used."""


class Question(BaseModel):
    """A customer message to answer."""

    model_config = ConfigDict(frozen=True)

    tenant_id: str
    text: str = Field(min_length=1, max_length=4000)
    language: str | None = None
    """A hint, e.g. the widget locale or the language of the conversation so far."""
    history: list[tuple[Sender, str]] = Field(default_factory=list)
    """Recent messages before this one, oldest first."""
    idempotency_key: uuid.UUID | None = None
    """Sent to the LLM as `Idempotency-Key`: the same for every delivery of one customer message."""


class Answer(BaseModel):
    """The assistant's reply. Maps one-to-one onto the `ai.reply_generated` event payload."""

    model_config = ConfigDict(frozen=True)

    text: str
    language: str
    confidence: float = Field(ge=0, le=1)
    sources: list[Source] = Field(default_factory=list)
    smart_actions: list[SmartAction] = Field(default_factory=list)
    handoff_reason: HandoffReason | None = None
    upset: bool = False
    urgent: bool = False
    """Someone may be in danger (the `emergency` topic)."""
    mode: AnswerMode = AnswerMode.RETRIEVAL
    cacheable: bool = False
    """True when the same question text always gets this answer, whatever the conversation."""


@runtime_checkable
class Responder(Protocol):
    async def answer(self, question: Question) -> Answer: ...


class UnknownTenantError(LookupError):
    """No knowledge base is loaded for this tenant."""


_SENTENCE_END = re.compile(r"[.!?…]\s*$")
# A message that asks something: a question mark, or an opening question word.
_QUESTION = re.compile(
    r"\?|^\W*(come|dove|quando|quanto|quanta|quanti|quante|perch[eé]|cosa|qual[ei]?|chi|posso|possiamo|potete|"
    r"avete|c'[eè]|ci sono|si pu[oò]|how|where|when|what|why|which|who|can|could|do|does|is|are)\b",
    re.IGNORECASE,
)
# The sentences of a message, each maybe a question of its own ("A che ora aprite? C'è un parcheggio?");
# a full stop inside a time or a number ("17.30") is no end. "and" before a question word starts
# another question too ("Quanto costa il biglietto e dove si compra?").
_SENTENCES = re.compile(
    r"[?!.…]+(?:\s+|$)|,?\s+(?:e|ed|and)\s+(?=(?:come|dove|quando|quanto|quanta|quanti|quante|perch[eé]|"
    r"how|where|when|what|why|which)\b)",
    re.IGNORECASE,
)
MAX_QUESTIONS = 3  # answered one by one in a message; a longer list is answered as a whole
# Links of the answering articles and triggers: with the two handoff buttons within the six
# smart actions a reply may carry.
MAX_LINKS = 4
# A question that goes on from the previous one, however long ("and how do I get one?").
_GOES_ON = re.compile(r"^\s*(e|ed|and|what about|how about|invece|e invece)\b", re.IGNORECASE)
# "And on Sundays?", "e per i ragazzi?", "what about children?": only the previous question gives the topic.
_FOLLOW_UP = re.compile(_GOES_ON.pattern + r"\W*(\w+\W*){0,4}$", re.IGNORECASE)


def _then(text: str, more: str) -> str:
    """`more` as a paragraph after `text`, which ends a sentence first."""
    return f"{text}\n\n{more}" if _SENTENCE_END.search(text) else f"{text}.\n\n{more}"


@dataclass(frozen=True, slots=True)
class Analysis:
    """What the KB and the policy say about a question, before any text is written."""

    language: str
    hit: PolicyHit | None
    smalltalk: str | None
    passages: list[Passage]
    confidence: float
    used_history: bool
    day: DayQuestion | None = None
    """The day of an "are you open on ...?" question: the answer starts with yes or no."""
    upset: bool = False
    """The question vents (negative sentiment), whatever the handoff reason found."""
    answered: tuple[Passage, ...] = ()
    """For a message asking several things, each answered from its own article: their passages,
    in the order asked (the answer joins them). Empty otherwise."""

    @property
    def urgent(self) -> bool:
        """Someone may be in danger: the customer who says YES is wanted first in the queue."""
        return self.hit is not None and self.hit.urgent


class TenantKnowledge:
    """One tenant's loaded knowledge base with everything precomputed for answering."""

    def __init__(self, kb: TenantKB, llm_enabled: bool = True) -> None:
        self.kb = kb
        self.llm_enabled = llm_enabled
        """False: the tenant's settings ask for retrieval answers even where an LLM is configured."""
        self.config = kb.config
        self.index = RetrievalIndex(kb.articles, kb.synonyms, default_language=kb.config.default_language)
        self.policy = HandoffPolicy(kb.policy)
        self._topic_articles = {topic: article for article in kb.articles for topic in article.topics}
        self._subject_words = frozenset(token for word in kb.config.subject_words for token in tokenize(word))
        # In their own order: "get tickets" is a wish to buy, "my tickets! Can I get a refund?" is not.
        self._triggers = PhraseMatcher(
            ((action_id, phrase) for action_id, spec in kb.config.actions.items() for phrase in spec.triggers),
            max_gap=2,
            in_order=True,
        )

    @classmethod
    def load(cls, path: str | Path, tenant_id: str | None = None) -> TenantKnowledge:
        return cls(load_tenant(path, tenant_id))

    def detect_language(self, text: str, hint: str | None = None) -> str:
        guess = detect_language(text, default=self.config.default_language, hint=hint, lexicon=self.index.lexicon)
        return guess.language if guess.language in self.config.languages else self.config.default_language

    def language_of(self, question: Question) -> str:
        """The reply language: the text's own evidence, else the hint, else the conversation so far."""
        hint = question.language
        if hint is None:
            # The customer's previous messages are good evidence for a terse follow-up ("e i bambini?").
            previous = " ".join(text for sender, text in question.history[-4:] if sender == Sender.CUSTOMER)
            if previous:
                hint = self.detect_language(previous)
        return self.detect_language(question.text, hint)

    def analyse(self, question: Question, also_ignore: frozenset[str] = frozenset()) -> Analysis:
        """`also_ignore`: more words that say nothing about the topic (those asking for a person)."""
        language = self.language_of(question)
        scan = self.policy.scan(question.text)
        hit = scan.hit
        smalltalk = self.policy.smalltalk(question.text) if hit is None else None
        if hit is not None and hit.reason == HandoffReason.CUSTOMER_REQUEST:
            # What a request for a person also asks is answered before the offer (`compose`): its
            # request words, wherever they stand ("chiamate un operatore"), are no topic.
            also_ignore |= self.policy.request_words(question.text)
        day = day_question(question.text)
        # The day asked about is not the topic ("Christmas" is not in an opening-hours text).
        ignore = self._subject_words | scan.noise | also_ignore | (day.words if day is not None else frozenset())
        passages = self._search(question.text, language, ignore)
        if hit is not None and hit.reason == HandoffReason.NEGATIVE_SENTIMENT and not _QUESTION.search(question.text):
            # "I'm really disappointed with the visit" asks nothing: an apology and a person, not an article.
            passages = []
        if hit is not None and hit.urgent and EMERGENCY not in self._topic_articles:
            # "I lost my child in the park": never the ticket prices because they mention children.
            passages = []
        if hit is not None and hit.topic is not None:
            passages = self._topic_first(hit.topic, passages, question.text, language)
        confidence = passages[0].confidence if passages else 0.0
        used_history = False
        follow_up = _FOLLOW_UP.match(question.text) is not None
        if (
            (confidence < self.config.answer_threshold or follow_up)
            and hit is None
            and smalltalk is None
            # One that goes on from the previous question ("and how do I get one?") carries its
            # topic over, so only words long enough to be a topic of their own count.
            and not self._mentions_unknown(
                question.text, ignore, MIN_UNKNOWN_LENGTH if _GOES_ON.match(question.text) else 1
            )
        ):
            # A follow-up often only makes sense with the previous question ("and for children?");
            # one about something the articles never mention ("can I bring my dog?" after a
            # question on parking) is not made answerable by the previous question's words.
            previous_question = next((t for s, t in reversed(question.history) if s == Sender.CUSTOMER), None)
            if previous_question:
                combined = self._search(f"{previous_question} {question.text}", language, ignore)
                if combined and combined[0].confidence >= self.config.answer_threshold:
                    passages, confidence, used_history = combined, combined[0].confidence, True
        answered: tuple[Passage, ...] = ()
        # Several questions asked together with a request for a person, or in an upset message,
        # are each answered too (before the offer, or the apology and the offer: `compose`), as
        # they would be without it. A sensitive topic keeps its own article first.
        split_too = hit is not None and (
            hit.reason == HandoffReason.CUSTOMER_REQUEST
            or (hit.reason == HandoffReason.NEGATIVE_SENTIMENT and hit.topic is None and bool(passages))
        )
        if (hit is None or split_too) and smalltalk is None and not used_history:
            answered = self._each_question(question.text, language, ignore)
            if answered:
                chosen = {p.article.id for p in answered}
                passages = [*answered, *(p for p in passages if p.article.id not in chosen)]
                confidence = min(p.confidence for p in answered)
        return Analysis(language, hit, smalltalk, passages, confidence, used_history, day, scan.upset, answered)

    def wanted_from_a_person(self, question: Question) -> Answer | None:
        """What a customer who asked for a person wanted, answered from the knowledge base for the
        person who took over: the rest of the request ("un operatore per il parcheggio"), else the
        latest earlier message that asked something, with its sources and no offer of a person.
        None when what they wanted is not something the knowledge base answers, or they asked
        nothing: the operator then has to ask, and no reply is worth suggesting."""
        asked = [question]
        for position in range(len(question.history) - 1, -1, -1):
            sender, text = question.history[position]
            if sender == Sender.CUSTOMER:
                asked.append(question.model_copy(update={"text": text, "history": question.history[:position]}))
        for message in asked:
            analysis = self.analyse(message, also_ignore=self.policy.request_words(message.text))
            if analysis.passages and analysis.confidence >= self.config.answer_threshold:
                return self.compose(message, replace(analysis, hit=None))
            # A request's other words are mostly how it is said ("subito", "preferisco", "this bot is
            # useless"), and "grazie" or "sì" ask nothing: what the customer wanted is further back.
            requested = analysis.hit is not None and analysis.hit.reason == HandoffReason.CUSTOMER_REQUEST
            mood = self.policy.scan(message.text).noise
            asks = bool(analysis.passages) or self._mentions_unknown(message.text, self._subject_words | mood)
            if requested or analysis.smalltalk is not None or not asks:
                continue
            return None  # a question the knowledge base does not answer: never an older topic instead
        return None

    def without_the_offer(self, question: Question) -> Answer | None:
        """The knowledge base's answer to a message the assistant answers with an offer of a person
        (upset, sensitive, unsure), for the person already there: the articles' passages without
        the apology and the offer. None when the knowledge base does not answer it confidently,
        or it asks nothing."""
        analysis = self.analyse(question)
        if analysis.passages and analysis.confidence >= self.config.answer_threshold:
            return self.compose(question, replace(analysis, hit=None))
        return None

    def _each_question(self, text: str, language: str, ignore: frozenset[str]) -> tuple[Passage, ...]:
        """For a message of several sentences that ask about different articles ("A che ora
        aprite? C'è un parcheggio?"), the best passage of each, in the order asked. Only when every
        sentence that asks something is answered: else () and the message is answered as a whole,
        which says "I don't know" rather than leave a question out."""
        sentences = [s for s in _SENTENCES.split(text) if s.strip()]
        if len(sentences) < 2:
            return ()
        best: list[Passage] = []
        for sentence in sentences:
            found = self._search(sentence, language, ignore)
            if not found:
                if self._mentions_unknown(sentence, ignore):
                    return ()  # it asks about something the articles never mention
                continue  # nothing asked: "Ciao!", "Grazie."
            if found[0].confidence < self.config.answer_threshold:
                return ()
            if all(p.article.id != found[0].article.id for p in best):
                best.append(found[0])
        return tuple(best) if 1 < len(best) <= MAX_QUESTIONS else ()

    def _mentions_unknown(self, text: str, ignore: frozenset[str], min_length: int = 1) -> bool:
        """Whether the text names something no article mentions (typos and synonyms forgiven);
        words shorter than `min_length` do not count."""
        return any(
            len(token) >= min_length and not self.index.known(token) for token in tokenize(text) if token not in ignore
        )

    def _search(self, text: str, language: str, ignore: frozenset[str]) -> list[Passage]:
        return self.index.search(text, language, k=3, ignore=ignore)

    def _topic_first(self, topic: str, passages: list[Passage], text: str, language: str) -> list[Passage]:
        """Put the article that handles a detected sensitive topic first.

        A policy phrase ("scolaresca", "rimborso") is more precise evidence than word overlap, so the
        topic's article answers even when another article shares more words with the question.
        """
        article = self._topic_articles.get(topic)
        if article is None:
            return passages
        found = next((p for p in passages if p.article.id == article.id), None)
        lang = article.pick_language(language, self.config.default_language)
        floor = (1 + self.config.answer_threshold) / 2
        score, confidence = (found.score, found.confidence) if found else (0.0, 0.0)
        first = Passage(article, lang, article.title[lang], article.body[lang], score, max(confidence, floor))
        return [first, *(p for p in passages if p.article.id != article.id)]

    def actions_for(self, question_text: str, passages: Sequence[Passage], language: str) -> list[SmartAction]:
        """Smart actions of the answering articles plus those whose triggers the question contains."""
        ids: list[str] = list(dict.fromkeys(action for passage in passages for action in passage.article.actions))
        for match in self._triggers.find(tokenize(question_text)):
            if match.label not in ids:
                ids.append(match.label)
        actions = []
        for action_id in ids[:MAX_LINKS]:
            spec = self.config.actions[action_id]
            label = spec.label.get(language) or spec.label.get(self.config.default_language) or action_id
            actions.append(SmartAction(type=spec.type, label=label, url=spec.url))
        return actions

    @staticmethod
    def _with_verdict(passage: Passage, day: DayQuestion | None) -> str:
        """The passage, after "Yes, ..." or "No, ..." when it answers an "are you open on ...?"
        (only a passage that states dates has a verdict)."""
        verdict = yes_no(day, passage.text, passage.language) if day is not None else None
        return f"{verdict}\n\n{passage.text}" if verdict else passage.text

    def handoff_buttons(self, language: str) -> list[SmartAction]:
        messages = self.config.messages_for(language)
        return [
            SmartAction(type=SmartActionType.REQUEST_OPERATOR, label=messages.operator_button),
            SmartAction(type=SmartActionType.CONTINUE_AI, label=messages.continue_button),
        ]

    def compose(self, question: Question, analysis: Analysis, body: str | None = None) -> Answer:
        """The final answer. `body` replaces the article text (the LLM's wording of it)."""
        language = analysis.language
        messages = self.config.messages_for(language)
        hit = analysis.hit
        top = analysis.passages[0] if analysis.passages else None
        confident = top is not None and analysis.confidence >= self.config.answer_threshold
        cacheable = not analysis.used_history and (confident or hit is not None or analysis.smalltalk is not None)

        if hit is not None and hit.reason == HandoffReason.CUSTOMER_REQUEST:
            # "Quanto costano i biglietti? Vorrei un operatore": the knowledge base's answer first, as
            # any answer, so the customer need not wait for a person to learn it; the offer stays,
            # last, before its buttons. An upset message that asks nothing gets no article, as with
            # negative sentiment.
            if confident and (not analysis.upset or _QUESTION.search(question.text)):
                answer = self.compose(question, replace(analysis, hit=None), body)
                links = [a for a in answer.smart_actions if a.type == SmartActionType.OPEN_URL]
                return answer.model_copy(
                    update={
                        "text": _then(answer.text, messages.handoff_offer),
                        "smart_actions": links + self.handoff_buttons(language),
                        "handoff_reason": hit.reason,
                    }
                )
            return Answer(
                text=messages.handoff_offer,
                language=language,
                confidence=1.0,
                smart_actions=self.handoff_buttons(language),
                handoff_reason=hit.reason,
                upset=analysis.upset,
                cacheable=cacheable,
            )
        if analysis.smalltalk is not None:
            text = {
                "thanks": messages.thanks,
                "farewell": messages.farewell or messages.thanks,
            }.get(analysis.smalltalk, messages.greeting)
            return Answer(text=text, language=language, confidence=1.0, upset=analysis.upset, cacheable=cacheable)

        if confident and top is not None:
            answering = analysis.answered or (top,)
            text = body if body is not None else "\n\n".join(self._with_verdict(p, analysis.day) for p in answering)
            actions = self.actions_for(question.text, answering, language)
            reason = hit.reason if hit is not None else None
            if reason is not None:
                extra = messages.sensitive if reason == HandoffReason.SENSITIVE_TOPIC else messages.negative
                text = _then(text, extra)
                actions = [a for a in actions if a.type == SmartActionType.OPEN_URL] + self.handoff_buttons(language)
            return Answer(
                text=text,
                language=language,
                confidence=round(analysis.confidence, 4),
                sources=[
                    Source(article_id=p.article.id, title=p.title, score=round(p.confidence, 4)) for p in answering
                ],
                smart_actions=actions,
                handoff_reason=reason,
                upset=analysis.upset,
                urgent=analysis.urgent,
                cacheable=cacheable,
            )

        # Nothing answers well enough: never guess, say so and offer a person.
        if hit is not None and hit.urgent:
            reason, text = hit.reason, messages.emergency or messages.sensitive
        elif hit is not None:
            reason = hit.reason
            text = messages.sensitive if reason == HandoffReason.SENSITIVE_TOPIC else messages.negative
        elif top is None or analysis.confidence < self.config.unknown_threshold:
            reason, text = HandoffReason.UNKNOWN_ANSWER, messages.unknown
        else:
            reason, text = HandoffReason.LOW_CONFIDENCE, messages.unknown
        links = [a for a in self.actions_for(question.text, (), language) if a.type == SmartActionType.OPEN_URL]
        return Answer(
            text=text,
            language=language,
            confidence=round(analysis.confidence, 4),
            smart_actions=links + self.handoff_buttons(language),
            handoff_reason=reason,
            upset=analysis.upset,
            urgent=analysis.urgent,
            cacheable=cacheable,
        )


class KnowledgeBase:
    """The knowledge of every tenant, by tenant id."""

    def __init__(self, tenants: Mapping[str, TenantKnowledge]) -> None:
        self._tenants = dict(tenants)

    @classmethod
    def load(cls, root: str | Path) -> KnowledgeBase:
        """Load every tenant directory under `root` (the directory name is the tenant id)."""
        root = Path(root)
        dirs = sorted(p for p in root.iterdir() if p.is_dir() and (p / "tenant.yaml").exists()) if root.is_dir() else []
        if not dirs:
            raise FileNotFoundError(f"{root}: no tenant knowledge base found (expected <tenant_id>/tenant.yaml)")
        return cls({d.name: TenantKnowledge.load(d) for d in dirs})

    @property
    def tenant_ids(self) -> list[str]:
        return sorted(self._tenants)

    def tenant(self, tenant_id: str) -> TenantKnowledge:
        try:
            return self._tenants[tenant_id]
        except KeyError:
            raise UnknownTenantError(f"no knowledge base for tenant {tenant_id!r}") from None


class RetrievalResponder:
    """Answers with the best-matching article, in the customer's language; never invents."""

    def __init__(self, knowledge: KnowledgeBase) -> None:
        self.knowledge = knowledge

    def answer_now(self, question: Question) -> Answer:
        """Synchronous core (pure CPU, a fraction of a millisecond)."""
        tenant = self.knowledge.tenant(question.tenant_id)
        return tenant.compose(question, tenant.analyse(question))

    async def answer(self, question: Question) -> Answer:
        return self.answer_now(question)


SYSTEM_PROMPT = """You are the customer-support assistant of {tenant}. Answer the customer's last message \
using ONLY the facts in the knowledge-base passages below. Never invent prices, dates, times, addresses, \
links, phone numbers or policies. If the passages do not contain the answer, say so: set "answerable" \
to false. Write the answer in {language_name}, briefly and kindly, in plain text.
Reply with a JSON object only: {{"answer": "<text>", "answerable": true|false, "confidence": <0..1>}}

Knowledge-base passages:
{passages}"""


def _parse_model_reply(content: str) -> tuple[str, bool, float]:
    """Read the model's JSON reply; tolerate prose around it (some servers ignore the format)."""
    start, end = content.find("{"), content.rfind("}")
    if start != -1 and end > start:
        try:
            data: Any = json.loads(content[start : end + 1])
        except json.JSONDecodeError:
            data = None
        if isinstance(data, dict) and isinstance(data.get("answer"), str):
            raw_conf = data.get("confidence", 0.7)
            conf = float(raw_conf) if isinstance(raw_conf, int | float) else 0.7
            answerable = bool(data.get("answerable", True))
            return data["answer"].strip(), answerable, max(0.0, min(1.0, conf))
    text = content.strip()
    return text, bool(text), 0.6  # free text: usable, but trust it less


def idempotency_header(question: Question) -> dict[str, str] | None:
    if question.idempotency_key is None:
        return None
    return {"Idempotency-Key": str(question.idempotency_key)}


class LlmResponder:
    """Grounded generation: retrieval picks passages, the model writes the answer from them only."""

    def __init__(
        self,
        knowledge: KnowledgeBase,
        client: AsyncOpenAI,
        model: str,
        *,
        top_k: int = 3,
        temperature: float = 0.1,
        max_tokens: int = 400,
    ) -> None:
        self.knowledge = knowledge
        self.client = client
        self.model = model
        self.top_k = top_k
        self.temperature = temperature
        self.max_tokens = max_tokens
        self.fallback = RetrievalResponder(knowledge)

    def _messages(
        self, tenant: TenantKnowledge, question: Question, analysis: Analysis, passages: Sequence[Passage]
    ) -> list[dict[str, str]]:
        language_name = tenant.config.messages_for(analysis.language).llm_language_name or analysis.language
        context = "\n\n".join(f"[{p.article.id}] {p.title}\n{p.text}" for p in passages)
        messages = [
            {
                "role": "system",
                "content": SYSTEM_PROMPT.format(
                    tenant=tenant.kb.tenant_id, language_name=language_name, passages=context
                ),
            }
        ]
        if analysis.used_history:
            # Only follow-ups need the conversation; sending it otherwise would make answers uncacheable.
            for sender, text in question.history[-6:]:
                role = "user" if sender == Sender.CUSTOMER else "assistant"
                messages.append({"role": role, "content": text})
        messages.append({"role": "user", "content": question.text})
        return messages

    async def answer(self, question: Question) -> Answer:
        tenant = self.knowledge.tenant(question.tenant_id)
        analysis = tenant.analyse(question)
        baseline = tenant.compose(question, analysis)
        floor = tenant.config.unknown_threshold
        passages = [p for p in analysis.passages[: self.top_k] if p.confidence >= floor]
        # The model adds nothing when a person is requested, for small talk, or with no evidence at all.
        if (
            not tenant.llm_enabled
            or not passages
            or baseline.handoff_reason == HandoffReason.CUSTOMER_REQUEST
            or analysis.smalltalk
        ):
            return baseline
        started = time.perf_counter()
        try:
            completion = await self.client.chat.completions.create(
                model=self.model,
                messages=self._messages(tenant, question, analysis, passages),  # type: ignore[arg-type]
                temperature=self.temperature,
                max_tokens=self.max_tokens,
                extra_headers=idempotency_header(question),
            )
            content = completion.choices[0].message.content or ""
        except (TimeoutError, openai.APIError, IndexError, ValueError) as exc:
            logger.warning(
                "llm call failed, answering from retrieval",
                extra={
                    "tenant_id": question.tenant_id,
                    "error": type(exc).__name__,
                    "elapsed_ms": round((time.perf_counter() - started) * 1000),
                },
            )
            return baseline.model_copy(update={"mode": AnswerMode.FALLBACK, "cacheable": False})

        text, answerable, model_confidence = _parse_model_reply(content)
        # Combined: retrieval says whether the KB covers the topic, the model whether it answers it.
        confidence = (analysis.confidence + model_confidence) / 2 if answerable and text else 0.0
        grounded = Analysis(
            analysis.language,
            analysis.hit,
            analysis.smalltalk,
            passages,
            confidence,
            analysis.used_history,
            upset=analysis.upset,
            answered=analysis.answered,
        )
        answer = tenant.compose(question, grounded, body=text if answerable and text else None)
        return answer.model_copy(update={"mode": AnswerMode.LLM})


class ResponderSettingsLike(Protocol):
    """What `build_responder` reads; the service's pydantic Settings satisfies it."""

    @property
    def kb_dir(self) -> Path | str: ...
    @property
    def llm_api_key(self) -> str | None: ...
    @property
    def llm_base_url(self) -> str | None: ...
    @property
    def llm_model(self) -> str: ...
    @property
    def llm_timeout_s(self) -> float: ...
    @property
    def llm_max_retries(self) -> int: ...


@dataclass(frozen=True)
class ResponderSettings:
    kb_dir: Path | str
    llm_api_key: str | None = None
    llm_base_url: str | None = None
    llm_model: str = "gpt-4o-mini"
    llm_timeout_s: float = 8.0
    llm_max_retries: int = 1


def build_responder(
    settings: ResponderSettingsLike, knowledge: KnowledgeBase | None = None
) -> RetrievalResponder | LlmResponder:
    """LLM mode when an API key is configured, else retrieval only (the system runs with no account)."""
    knowledge = knowledge or KnowledgeBase.load(settings.kb_dir)
    if not settings.llm_api_key:
        logger.info("no LLM API key configured: answering by retrieval only")
        return RetrievalResponder(knowledge)
    client = AsyncOpenAI(
        api_key=settings.llm_api_key,
        base_url=settings.llm_base_url or None,
        timeout=settings.llm_timeout_s,
        max_retries=settings.llm_max_retries,
    )
    logger.info("LLM mode", extra={"model": settings.llm_model, "base_url": settings.llm_base_url})
    return LlmResponder(knowledge, client, settings.llm_model)
