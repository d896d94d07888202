"""The conversation's side of the operator handoff, through the real handlers and PostgreSQL:
queueing, what the customer is told, ownership, operators' commands, inactivity, notes, rating."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from prometheus_client import REGISTRY

from contracts import Envelope
from contracts.common import (
    CloseOutcome,
    HandoffChoice,
    HandoffReason,
    SmartAction,
    SmartActionType,
    Source,
)
from contracts.common import ConversationStatus as S
from contracts.envelope import utc_now
from contracts.events import (
    AddInternalNote,
    AiReplyGenerated,
    AnswerFeedbackGiven,
    CheckInactivity,
    ChooseHandoff,
    CloseConversation,
    CommandRejected,
    ConversationQueued,
    ConversationRated,
    GiveAnswerFeedback,
    HandoffRequested,
    NoOperatorAvailable,
    NoteAdded,
    OfferMade,
    OperatorAssigned,
    OperatorReleased,
    PostCustomerMessage,
    PostOperatorMessage,
    QueuePositionChanged,
    QueuePositionUpdated,
    RateConversation,
    ReleaseConversation,
    StartConversation,
    TransferConversation,
)

if TYPE_CHECKING:
    from conftest import HandlerHarness

HANDOFF_BUTTONS = [
    SmartAction(type=SmartActionType.REQUEST_OPERATOR, label="Sì, chiama un operatore"),
    SmartAction(type=SmartActionType.CONTINUE_AI, label="No, continua con l'assistente"),
]


class Conversation:
    """One conversation driven through the handlers, as the widget, the AI, routing and the
    dashboard would drive it."""

    def __init__(self, service: HandlerHarness, locale: str = "it") -> None:
        self.service = service
        self.id = uuid.uuid4()
        self.locale = locale

    async def send(self, payload: Any) -> Envelope[Any]:
        envelope = self.service.command(payload, self.id)
        await self.service.apply(envelope)
        return envelope

    async def start(self) -> Conversation:
        await self.send(StartConversation(locale=self.locale))
        return self

    async def customer_says(self, text: str) -> uuid.UUID:
        message_id = uuid.uuid4()
        await self.send(PostCustomerMessage(message_id=message_id, client_message_id=message_id.hex, text=text))
        return message_id

    def ai_reply(self, in_reply_to: uuid.UUID, handoff: HandoffReason | None = None, **fields: Any) -> AiReplyGenerated:
        return AiReplyGenerated(
            in_reply_to=in_reply_to,
            reply_id=uuid.uuid4(),
            text=fields.pop("text", "Vuoi parlare con un operatore?" if handoff else "Apriamo alle 17:30."),
            language=fields.pop("language", self.locale),
            confidence=fields.pop("confidence", 0.9),
            mode="retrieval",
            handoff_reason=handoff,
            smart_actions=HANDOFF_BUTTONS if handoff else [],
            **fields,
        )

    async def answered_the_ticket_prices(self) -> None:
        """The customer asks the prices; the AI answers from the "Prezzi dei biglietti" article."""
        prices = await self.customer_says("Quanto costano i biglietti?")
        sources = [Source(article_id="ticket-prices", title="Prezzi dei biglietti", score=0.9)]
        await self.send(self.ai_reply(prices, sources=sources, text="Intero 13 euro."))

    async def offered_a_person(self, reason: HandoffReason = HandoffReason.CUSTOMER_REQUEST) -> None:
        question = await self.customer_says("Voglio parlare con qualcuno")
        await self.send(self.ai_reply(question, reason))

    async def assigned(self, operator_id: str = "op-marco", name: str = "Marco", via: str = "offer") -> None:
        await self.send(OperatorAssigned(operator_id=operator_id, display_name=name, via=via))  # type: ignore[arg-type]

    async def with_operator(self, operator_id: str = "op-marco") -> Conversation:
        await self.start()
        await self.send(ChooseHandoff(choice=HandoffChoice.REQUEST_OPERATOR))
        await self.assigned(operator_id)
        return self

    async def status(self) -> S:
        return (await self.service.conversation(self.id)).state

    async def texts(self, sender: str | None = None) -> list[str]:
        return [m.text for m in await self.service.messages(self.id) if sender in (None, m.sender)]

    async def emitted(self, payload_cls: type[Any]) -> list[Any]:
        return [e.payload for e in await self.service.emitted(payload_cls) if e.conversation_id == self.id]

    async def rejections(self) -> list[CommandRejected]:
        return await self.emitted(CommandRejected)

    def inactivity_timer(self) -> str:
        return f"inactivity:{self.id}"


def dropped_replies(status: S) -> float:
    return REGISTRY.get_sample_value("conversation_ai_replies_dropped_total", {"status": status.value}) or 0.0


async def test_yes_queues_with_a_structured_request_and_tells_the_customer(
    conversation_handlers: HandlerHarness,
) -> None:
    conversation = await Conversation(conversation_handlers).start()
    question = await conversation.customer_says("Siete dei ladri, il biglietto non funziona!")
    sources = [Source(article_id="refunds", title="Rimborsi", score=0.4)]
    await conversation.send(
        conversation.ai_reply(question, HandoffReason.NEGATIVE_SENTIMENT, confidence=0.35, sources=sources)
    )
    assert await conversation.status() == S.HANDOFF_OFFERED

    await conversation.send(ChooseHandoff(choice=HandoffChoice.REQUEST_OPERATOR))
    await conversation.send(ChooseHandoff(choice=HandoffChoice.REQUEST_OPERATOR))  # a second click

    assert await conversation.status() == S.QUEUED
    (request,) = await conversation.emitted(HandoffRequested)
    assert request.reason == HandoffReason.NEGATIVE_SENTIMENT
    assert (request.confidence, request.intent, request.priority) == (0.35, "refunds", "high")
    assert request.language == "it"
    assert (await conversation.texts("system"))[-1].startswith("Ti sto mettendo in contatto con un operatore")
    assert not await conversation.rejections()


async def test_handoffs_of_one_batch_carry_each_conversations_latest_ai_reply(
    conversation_handlers: HandlerHarness,
) -> None:
    # Three conversations: one whose AI reply is already stored, one whose AI reply arrives in the
    # same batch as the YES (a newer one than the stored), one the AI never answered.
    stored = await Conversation(conversation_handlers).start()
    in_batch = await Conversation(conversation_handlers).start()
    unanswered = await Conversation(conversation_handlers).start()
    refunds = [Source(article_id="refunds", title="Rimborsi", score=0.4)]
    opening = [Source(article_id="Orari di apertura", title="Orari", score=0.7)]
    await stored.send(stored.ai_reply(await stored.customer_says("Rimborso?"), confidence=0.3, sources=refunds))
    first = await in_batch.customer_says("Rimborso?")
    await in_batch.send(in_batch.ai_reply(first, confidence=0.3, sources=refunds))
    second = await in_batch.customer_says("E gli orari?")
    await unanswered.customer_says("Pronto?")

    yes = ChooseHandoff(choice=HandoffChoice.REQUEST_OPERATOR)
    service = conversation_handlers
    await service.apply(
        service.command(yes, stored.id),
        service.command(in_batch.ai_reply(second, confidence=0.55, sources=opening), in_batch.id),
        service.command(yes, in_batch.id),
        service.command(yes, unanswered.id),
    )

    requests = {c.id: (await c.emitted(HandoffRequested))[0] for c in (stored, in_batch, unanswered)}
    assert (requests[stored.id].confidence, requests[stored.id].intent) == (0.3, "refunds")
    assert (requests[in_batch.id].confidence, requests[in_batch.id].intent) == (0.55, "orari-di-apertura")
    assert (requests[unanswered.id].confidence, requests[unanswered.id].intent) == (None, None)


async def test_a_customer_can_ask_for_a_person_at_any_time(conversation_handlers: HandlerHarness) -> None:
    conversation = await Conversation(conversation_handlers, locale="en").start()
    question = await conversation.customer_says("When do you open?")
    await conversation.send(conversation.ai_reply(question, confidence=0.8))
    assert await conversation.status() == S.AI

    await conversation.send(ChooseHandoff(choice=HandoffChoice.REQUEST_OPERATOR))  # from the widget's menu

    assert await conversation.status() == S.QUEUED
    (request,) = await conversation.emitted(HandoffRequested)
    assert (request.reason, request.priority, request.confidence) == (HandoffReason.CUSTOMER_REQUEST, "normal", 0.8)
    assert (await conversation.texts("system"))[-1].startswith("I'm connecting you with an operator")


async def test_the_notices_follow_the_language_the_customer_writes_in(conversation_handlers: HandlerHarness) -> None:
    conversation = await Conversation(conversation_handlers, locale="it").start()  # an Italian browser
    question = await conversation.customer_says("Hello, I need to talk to a human please")
    english = conversation.ai_reply(question, HandoffReason.CUSTOMER_REQUEST, language="en", text="Shall I?")
    await conversation.send(english)
    await conversation.send(ChooseHandoff(choice=HandoffChoice.REQUEST_OPERATOR))

    assert await conversation.status() == S.QUEUED
    (request,) = await conversation.emitted(HandoffRequested)
    assert request.language == "en"
    assert (await conversation.texts("system"))[-1].startswith("I'm connecting you with an operator")


async def test_the_history_tells_each_messages_language(conversation_handlers: HandlerHarness) -> None:
    conversation = await Conversation(conversation_handlers, locale="it").start()  # an Italian browser
    english = await conversation.customer_says("Hello, when do you open?")
    await conversation.send(conversation.ai_reply(english, language="en", text="We open at 5:30 pm."))
    italian = await conversation.customer_says("E quanto costa?")
    await conversation.send(conversation.ai_reply(italian, language="it", text="Il biglietto costa 9 euro."))

    async with conversation_handlers.read_api() as api:
        history = (await api.get(f"/internal/conversations/{conversation.id}/messages")).json()
    # The widget speaks the language of the assistant's latest answer; a customer's message has none.
    assert [(m["sender"], m["language"]) for m in history["messages"]] == [
        ("customer", None),
        ("ai", "en"),
        ("customer", None),
        ("ai", "it"),
    ]


async def test_no_returns_to_the_ai_which_offers_again_only_after_a_new_customer_message(
    conversation_handlers: HandlerHarness,
) -> None:
    conversation = await Conversation(conversation_handlers).start()
    first = await conversation.customer_says("Voglio un operatore")
    second = await conversation.customer_says("Subito")  # answered after the customer said no
    await conversation.send(conversation.ai_reply(first, HandoffReason.CUSTOMER_REQUEST))
    await conversation.send(ChooseHandoff(choice=HandoffChoice.CONTINUE_AI))
    assert await conversation.status() == S.AI

    late_offer = conversation.ai_reply(second, HandoffReason.CUSTOMER_REQUEST)
    await conversation.send(late_offer)
    assert await conversation.status() == S.AI, "the old context does not offer a person again"
    (stored,) = [m for m in await conversation_handlers.messages(conversation.id) if m.id == late_offer.reply_id]
    assert stored.smart_actions == [], "no YES/NO buttons on it"

    again = await conversation.customer_says("Per favore, una persona")
    await conversation.send(conversation.ai_reply(again, HandoffReason.CUSTOMER_REQUEST))
    assert await conversation.status() == S.HANDOFF_OFFERED


async def test_the_customer_sees_the_queue_position_once_as_a_message_then_as_a_status(
    conversation_handlers: HandlerHarness,
) -> None:
    conversation = await Conversation(conversation_handlers).start()
    await conversation.send(ChooseHandoff(choice=HandoffChoice.REQUEST_OPERATOR))

    await conversation.send(ConversationQueued(position=3, estimated_wait_seconds=200))
    await conversation.send(QueuePositionChanged(position=2, estimated_wait_seconds=120))
    await conversation.send(QueuePositionChanged(position=1))

    system = await conversation.texts("system")
    assert system[-1] == "Tutti gli operatori sono occupati: sei 3° in coda, attesa stimata circa 4 min."
    assert sum("in coda" in text for text in system) == 1, "position changes post no message"
    updates = await conversation.emitted(QueuePositionUpdated)
    assert [(u.position, u.estimated_wait_seconds) for u in updates] == [(3, 200), (2, 120), (1, None)]


def offer(operator_id: str = "op-marco") -> OfferMade:
    return OfferMade(offer_id=uuid.uuid4(), operator_id=operator_id, expires_at=utc_now() + timedelta(seconds=30))


async def test_the_customer_is_told_once_per_wait_that_an_operator_is_about_to_answer(
    conversation_handlers: HandlerHarness,
) -> None:
    conversation = await Conversation(conversation_handlers).start()
    await conversation.send(ChooseHandoff(choice=HandoffChoice.REQUEST_OPERATOR))
    first = offer("op-marco")
    delivered = await conversation.send(first)
    await conversation.send(offer("op-lia"))  # Marco let it expire: offered to the next operator

    told = [t for t in await conversation.texts("system") if t.startswith("Un operatore sta per risponderti")]
    assert len(told) == 1, "a re-offer tells the customer nothing new"
    (notice,) = [m for m in await conversation_handlers.messages(conversation.id) if m.text == told[0]]
    assert notice.id == uuid.uuid5(first.offer_id, "operator-offered"), "derived from the offer"
    assert await conversation.status() == S.QUEUED, "an offer is not an assignment"

    # Back in the queue after an operator had it: a new wait, whose first offer is told again;
    # the first offer delivered again (another envelope of the same offer) posts nothing twice.
    await conversation.assigned("op-lia", "Lia")
    await conversation.send(TransferConversation(operator_id="op-lia"))
    assert await conversation.status() == S.QUEUED
    await conversation_handlers.apply(conversation_handlers.command(delivered.payload, conversation.id))
    assert sum(t.startswith("Un operatore sta per") for t in await conversation.texts("system")) == 1
    await conversation.send(offer("op-sara"))
    assert sum(t.startswith("Un operatore sta per") for t in await conversation.texts("system")) == 2


async def test_an_offer_after_the_customer_left_the_queue_tells_nothing(conversation_handlers: HandlerHarness) -> None:
    conversation = await Conversation(conversation_handlers, locale="en").start()
    await conversation.send(ChooseHandoff(choice=HandoffChoice.REQUEST_OPERATOR))
    await conversation.send(ChooseHandoff(choice=HandoffChoice.CONTINUE_AI))  # leaves the queue
    await conversation.send(offer())  # routing's offer crossed the customer's choice

    assert await conversation.status() == S.AI
    assert not any("about to answer" in t for t in await conversation.texts("system"))

    await conversation.send(ChooseHandoff(choice=HandoffChoice.REQUEST_OPERATOR))  # asks again
    await conversation.send(offer())
    assert (await conversation.texts("system"))[-1] == "An operator is about to answer you, please stay here."


async def test_an_ai_reply_arriving_after_the_operator_was_assigned_is_dropped_and_counted(
    conversation_handlers: HandlerHarness,
) -> None:
    conversation = await Conversation(conversation_handlers).start()
    question = await conversation.customer_says("Quanto costa il parcheggio?")
    await conversation.send(ChooseHandoff(choice=HandoffChoice.REQUEST_OPERATOR))
    await conversation.assigned("op-marco", "Marco")
    assert await conversation.status() == S.WITH_OPERATOR
    assert (await conversation_handlers.conversation(conversation.id)).operator_id == "op-marco"
    assert (await conversation.texts("system"))[-1] == "Ora sei in contatto con Marco."
    dropped_before = dropped_replies(S.WITH_OPERATOR)

    await conversation.send(conversation.ai_reply(question))  # was in flight at takeover

    assert await conversation.texts("ai") == []
    assert dropped_replies(S.WITH_OPERATOR) == dropped_before + 1


async def test_operator_messages_come_from_the_assigned_operator_or_a_supervisor(
    conversation_handlers: HandlerHarness,
) -> None:
    conversation = await Conversation(conversation_handlers).with_operator("op-marco")
    mine = PostOperatorMessage(operator_id="op-marco", message_id=uuid.uuid4(), text="Ciao, sono Marco")
    await conversation.send(mine)
    await conversation.send(mine)  # a retry
    await conversation.send(
        PostOperatorMessage(operator_id="op-lia", message_id=uuid.uuid4(), text="Ciao", role="supervisor")
    )
    await conversation.send(PostOperatorMessage(operator_id="op-intruder", message_id=uuid.uuid4(), text="Ciao"))

    messages = [m for m in await conversation_handlers.messages(conversation.id) if m.sender == "operator"]
    assert [(m.operator_id, m.text) for m in messages] == [("op-marco", "Ciao, sono Marco"), ("op-lia", "Ciao")]
    (rejected,) = await conversation.rejections()
    assert (rejected.code, rejected.command_type) == ("not_assigned", "operator.post_message")

    other_tenant = conversation_handlers.command(
        PostOperatorMessage(operator_id="op-marco", message_id=uuid.uuid4(), text="x", role="admin"),
        conversation.id,
        tenant_id="another-tenant",
    )
    await conversation_handlers.apply(other_tenant)
    assert len([m for m in await conversation_handlers.messages(conversation.id) if m.sender == "operator"]) == 2


async def test_customer_silence_leads_to_waiting_customer_on_a_timer_and_a_message_reactivates(
    conversation_handlers: HandlerHarness,
) -> None:
    conversation = await Conversation(conversation_handlers).with_operator()
    assert conversation.inactivity_timer() in await conversation_handlers.timer_names()

    fired = await conversation_handlers.fire_timer(conversation.inactivity_timer())
    assert [type(e.payload) for e in fired] == [CheckInactivity]
    await conversation_handlers.apply(*fired)
    assert await conversation.status() == S.WAITING_CUSTOMER
    assert (await conversation.texts("system"))[-1].startswith("Sei ancora lì?")

    await conversation.customer_says("Eccomi, scusate")
    assert await conversation.status() == S.WITH_OPERATOR
    await conversation_handlers.apply(*fired)  # a check from before the customer wrote changes nothing
    assert await conversation.status() == S.WITH_OPERATOR

    # Silent again: waiting, and after the longer window abandoned.
    await conversation_handlers.apply(*await conversation_handlers.fire_timer(conversation.inactivity_timer()))
    assert await conversation.status() == S.WAITING_CUSTOMER
    await conversation_handlers.apply(*await conversation_handlers.fire_timer(conversation.inactivity_timer()))
    assert await conversation.status() == S.ABANDONED


async def test_internal_notes_never_reach_the_widget_history(conversation_handlers: HandlerHarness) -> None:
    conversation = await Conversation(conversation_handlers).with_operator("op-marco")
    await conversation.customer_says("Ho perso il biglietto")
    note = AddInternalNote(operator_id="op-marco", note_id=uuid.uuid4(), text="Cliente VIP, rimborso ok")
    await conversation.send(note)
    await conversation.send(AddInternalNote(operator_id="op-other", note_id=uuid.uuid4(), text="non mio"))

    (added,) = await conversation.emitted(NoteAdded)
    assert added.text == "Cliente VIP, rimborso ok"
    assert [r.code for r in await conversation.rejections()] == ["not_assigned"]
    async with conversation_handlers.read_api() as api:
        history = (await api.get(f"/internal/conversations/{conversation.id}/messages")).json()
        notes = (await api.get(f"/internal/conversations/{conversation.id}/notes")).json()
    assert history["messages"], "the customer's and the system's messages are there"
    assert all("VIP" not in m["text"] for m in history["messages"])
    assert [(n["note_id"], n["operator_id"], n["text"]) for n in notes["notes"]] == [
        (str(note.note_id), "op-marco", "Cliente VIP, rimborso ok")
    ]


async def test_a_conversation_is_rated_once_after_it_is_closed(conversation_handlers: HandlerHarness) -> None:
    conversation = await Conversation(conversation_handlers).with_operator("op-marco")
    await conversation.send(RateConversation(score=5))  # too early

    await conversation.send(CloseConversation(operator_id="op-marco", outcome=CloseOutcome.RESOLVED))
    assert await conversation.status() == S.RESOLVED
    assert conversation.inactivity_timer() not in await conversation_handlers.timer_names()
    assert (await conversation.texts("system"))[-1].startswith("La conversazione è stata chiusa")

    await conversation.send(RateConversation(score=4, comment="Gentilissimi"))
    await conversation.send(RateConversation(score=1, comment="ripensandoci"))

    (rating,) = await conversation.emitted(ConversationRated)
    assert (rating.score, rating.comment) == (4, "Gentilissimi")
    stored = await conversation_handlers.conversation(conversation.id)
    assert (stored.rating_score, stored.rating_comment) == (4, "Gentilissimi")
    assert [r.code for r in await conversation.rejections()] == ["not_closed", "already_rated"]


async def test_no_operator_available_invites_the_customer_to_leave_contact_details(
    conversation_handlers: HandlerHarness,
) -> None:
    conversation = await Conversation(conversation_handlers, locale="en").start()
    await conversation.send(ChooseHandoff(choice=HandoffChoice.REQUEST_OPERATOR))
    await conversation.send(NoOperatorAvailable())

    assert await conversation.status() == S.TICKET_PENDING
    assert (await conversation.texts("system"))[-1].startswith("No operator is available right now. Leave us")


async def test_release_hands_back_to_the_ai_without_an_offer_on_the_old_context(
    conversation_handlers: HandlerHarness,
) -> None:
    conversation = await Conversation(conversation_handlers).with_operator("op-marco")
    question = await conversation.customer_says("Voglio un operatore")  # while with the operator
    await conversation.send(ReleaseConversation(operator_id="op-marco"))

    assert await conversation.status() == S.AI
    stored = await conversation_handlers.conversation(conversation.id)
    assert stored.operator_id is None
    assert conversation.inactivity_timer() not in await conversation_handlers.timer_names()
    assert (await conversation.texts("system"))[-1].startswith("L'operatore ti ha passato")
    await conversation.send(conversation.ai_reply(question, HandoffReason.CUSTOMER_REQUEST))
    assert await conversation.status() == S.AI


async def test_transfers_to_the_queue_and_to_another_operator(conversation_handlers: HandlerHarness) -> None:
    conversation = await Conversation(conversation_handlers).with_operator("op-marco")
    await conversation.send(TransferConversation(operator_id="op-marco"))
    assert await conversation.status() == S.QUEUED
    assert (await conversation_handlers.conversation(conversation.id)).operator_id is None
    await conversation.send(OperatorReleased(operator_id="op-marco", reason="requeued"))  # routing agrees
    assert sum("altro operatore" in t for t in await conversation.texts("system")) == 1

    await conversation.assigned("op-lia", "Lia")
    await conversation.send(TransferConversation(operator_id="op-lia", to_operator_id="op-sara"))
    assert (await conversation_handlers.conversation(conversation.id)).operator_id == "op-lia", "routing decides"
    await conversation.assigned("op-sara", "Sara", via="transfer")
    assert (await conversation_handlers.conversation(conversation.id)).operator_id == "op-sara"
    assert (await conversation.texts("system"))[-1] == "Ora sei in contatto con Sara."
    assert await conversation.status() == S.WITH_OPERATOR


async def test_an_assignment_after_the_customer_left_the_queue_is_answered_for_routing(
    conversation_handlers: HandlerHarness,
) -> None:
    conversation = await Conversation(conversation_handlers).start()
    await conversation.send(ChooseHandoff(choice=HandoffChoice.REQUEST_OPERATOR))
    await conversation.send(ChooseHandoff(choice=HandoffChoice.CONTINUE_AI))  # leaves the queue
    assert await conversation.status() == S.AI
    assert (await conversation.texts("system"))[-1].startswith("Hai lasciato la coda")

    await conversation.assigned("op-marco")

    assert await conversation.status() == S.AI
    (rejected,) = await conversation.rejections()
    assert (rejected.code, rejected.command_type) == ("not_waiting", "routing.operator_assigned")


async def test_an_upset_customer_asking_for_a_person_waits_first_and_the_summary_says_upset(
    conversation_handlers: HandlerHarness,
) -> None:
    upset = await Conversation(conversation_handlers).start()
    question = await upset.customer_says("Sono arrabbiato, voglio parlare con un operatore!")
    await upset.send(upset.ai_reply(question, HandoffReason.CUSTOMER_REQUEST, upset=True))
    later = await upset.customer_says("Allora?")  # a calm reply later does not undo it
    await upset.send(upset.ai_reply(later, HandoffReason.CUSTOMER_REQUEST))
    await upset.send(ChooseHandoff(choice=HandoffChoice.REQUEST_OPERATOR))
    calm = await Conversation(conversation_handlers).start()
    await calm.offered_a_person()
    await calm.send(ChooseHandoff(choice=HandoffChoice.REQUEST_OPERATOR))

    (request,) = await upset.emitted(HandoffRequested)
    assert (request.reason, request.priority) == (HandoffReason.CUSTOMER_REQUEST, "high")
    (calm_request,) = await calm.emitted(HandoffRequested)
    assert (calm_request.reason, calm_request.priority) == (HandoffReason.CUSTOMER_REQUEST, "normal")
    async with conversation_handlers.read_api() as api:
        summaries = [(await api.get(f"/internal/conversations/{c.id}/summary")).json() for c in (upset, calm)]
    assert [(s["mood"], s["handoff_reason"]) for s in summaries] == [
        ("upset", "customer_request"),
        ("neutral", "customer_request"),
    ]


async def test_someone_who_may_be_in_danger_waits_first(conversation_handlers: HandlerHarness) -> None:
    lost_child = await Conversation(conversation_handlers).start()
    question = await lost_child.customer_says("Mio figlio si è perso nel parco!")
    await lost_child.send(lost_child.ai_reply(question, HandoffReason.SENSITIVE_TOPIC, urgent=True))
    await lost_child.send(ChooseHandoff(choice=HandoffChoice.REQUEST_OPERATOR))
    refund = await Conversation(conversation_handlers).start()  # another sensitive topic: no hurry
    await refund.offered_a_person(HandoffReason.SENSITIVE_TOPIC)
    await refund.send(ChooseHandoff(choice=HandoffChoice.REQUEST_OPERATOR))

    (request,) = await lost_child.emitted(HandoffRequested)
    assert (request.reason, request.priority) == (HandoffReason.SENSITIVE_TOPIC, "high")
    (refund_request,) = await refund.emitted(HandoffRequested)
    assert (refund_request.reason, refund_request.priority) == (HandoffReason.SENSITIVE_TOPIC, "normal")
    assert (await conversation_handlers.conversation(lost_child.id)).customer_in_danger


async def test_the_handover_summary_tells_what_the_customer_wants_and_what_is_open(
    conversation_handlers: HandlerHarness,
) -> None:
    conversation = await Conversation(conversation_handlers).start()
    await conversation.answered_the_ticket_prices()
    refund = await conversation.customer_says("Il pagamento è fallito due volte, sono furioso")
    await conversation.send(conversation.ai_reply(refund, HandoffReason.NEGATIVE_SENTIMENT, confidence=0.2))
    await conversation.send(ChooseHandoff(choice=HandoffChoice.REQUEST_OPERATOR))

    async with conversation_handlers.read_api() as api:
        summary = (await api.get(f"/internal/conversations/{conversation.id}/summary")).json()

    assert summary["customer_wants"] == "Quanto costano i biglietti?"
    assert summary["ai_answered"] == ["Prezzi dei biglietti"]
    assert summary["still_open"] == ["Il pagamento è fallito due volte, sono furioso"]
    assert (summary["mood"], summary["handoff_reason"], summary["last_ai_confidence"]) == (
        "upset",
        "negative_sentiment",
        0.2,
    )


async def test_a_message_that_only_asked_for_a_person_is_neither_the_topic_nor_open(
    conversation_handlers: HandlerHarness,
) -> None:
    only_asked = await Conversation(conversation_handlers).start()
    request = await only_asked.customer_says("Voglio parlare con un operatore")
    await only_asked.send(only_asked.ai_reply(request, HandoffReason.CUSTOMER_REQUEST))
    await only_asked.send(ChooseHandoff(choice=HandoffChoice.REQUEST_OPERATOR))

    asked_later = await Conversation(conversation_handlers).start()
    await asked_later.answered_the_ticket_prices()
    payment = await asked_later.customer_says("Il pagamento non è andato a buon fine")
    await asked_later.send(asked_later.ai_reply(payment, HandoffReason.LOW_CONFIDENCE, confidence=0.3))
    await asked_later.send(ChooseHandoff(choice=HandoffChoice.CONTINUE_AI))
    request = await asked_later.customer_says("Allora mi passi una persona")
    await asked_later.send(asked_later.ai_reply(request, HandoffReason.CUSTOMER_REQUEST))
    await asked_later.send(ChooseHandoff(choice=HandoffChoice.REQUEST_OPERATOR))

    async with conversation_handlers.read_api() as api:
        first, second = [
            (await api.get(f"/internal/conversations/{c.id}/summary")).json() for c in (only_asked, asked_later)
        ]
    # Nothing else was said: the request is what the customer wants, and nothing is left open.
    assert (first["customer_wants"], first["still_open"]) == ("Voglio parlare con un operatore", [])
    assert second["customer_wants"] == "Quanto costano i biglietti?"
    assert second["still_open"] == ["Il pagamento non è andato a buon fine"]  # not the request for a person
    assert second["handoff_reason"] == "customer_request"


async def test_the_list_of_a_tenants_conversations_is_narrowed_by_status_and_operator(
    conversation_handlers: HandlerHarness,
) -> None:
    tenant = f"tenant-{uuid.uuid4().hex[:8]}"  # the database is shared by the module's tests

    async def started(*payloads: Any) -> Conversation:
        conversation = Conversation(conversation_handlers)
        for payload in (StartConversation(locale="it"), *payloads):
            await conversation_handlers.apply(conversation_handlers.command(payload, conversation.id, tenant))
        return conversation

    queued = await started(ChooseHandoff(choice=HandoffChoice.REQUEST_OPERATOR))
    marcos = await started(
        ChooseHandoff(choice=HandoffChoice.REQUEST_OPERATOR),
        OperatorAssigned(operator_id="op-marco", display_name="Marco", via="take"),
    )
    with_ai = await started()
    foreign = Conversation(conversation_handlers)
    await foreign.start()  # another tenant's

    async with conversation_handlers.read_api() as api:

        async def listed(**params: Any) -> list[tuple[str, str | None]]:
            response = await api.get("/internal/conversations", params={"tenant_id": tenant, **params})
            assert response.status_code == 200, response.text
            assert response.json()["tenant_id"] == tenant
            return [(c["conversation_id"], c["operator_id"]) for c in response.json()["conversations"]]

        everything = await listed()
        assert everything == [(str(with_ai.id), None), (str(marcos.id), "op-marco"), (str(queued.id), None)]
        assert await listed(status="QUEUED") == [(str(queued.id), None)]
        assert await listed(operator_id="op-marco") == [(str(marcos.id), "op-marco")]
        assert await listed(operator_id="op-marco", status="QUEUED") == []
        assert await listed(limit=1) == [(str(with_ai.id), None)]
        assert (
            await api.get("/internal/conversations", params={"tenant_id": tenant, "status": "NOPE"})
        ).status_code == 422
        assert (await api.get("/internal/conversations")).status_code == 422


# ------------------------------------------------------------------ feedback on the answers


async def test_helpful_is_recorded_once_with_the_question_it_answered(conversation_handlers: HandlerHarness) -> None:
    conversation = await Conversation(conversation_handlers).start()
    question = await conversation.customer_says("A che ora aprite?")
    reply = conversation.ai_reply(question)
    await conversation.send(reply)

    await conversation.send(GiveAnswerFeedback(message_id=reply.reply_id, helpful=True))
    await conversation.send(GiveAnswerFeedback(message_id=reply.reply_id, helpful=False))  # changes nothing

    (given,) = await conversation.emitted(AnswerFeedbackGiven)
    assert (given.message_id, given.helpful) == (reply.reply_id, True)
    assert (given.question_message_id, given.question) == (question, "A che ora aprite?")
    assert [r.code for r in await conversation.rejections()] == ["already_given"]
    assert await conversation.status() == S.AI, "a second click offers nobody"


async def test_not_helpful_offers_a_person_with_the_yes_no_buttons(conversation_handlers: HandlerHarness) -> None:
    conversation = await Conversation(conversation_handlers, locale="en").start()
    question = await conversation.customer_says("Can I bring my dog?")
    reply = conversation.ai_reply(question, text="Tickets cost 12 €.")
    await conversation.send(reply)

    await conversation.send(GiveAnswerFeedback(message_id=reply.reply_id, helpful=False))

    assert await conversation.status() == S.HANDOFF_OFFERED
    offer = (await conversation_handlers.messages(conversation.id))[-1]
    assert offer.sender == "system"
    assert offer.text == "I'm sorry the answer did not help. Would you like to talk to an operator?"
    assert [a["type"] for a in offer.smart_actions] == [SmartActionType.REQUEST_OPERATOR, SmartActionType.CONTINUE_AI]
    assert offer.smart_actions[0]["label"] == "Yes, call an operator"

    await conversation.send(ChooseHandoff(choice=HandoffChoice.REQUEST_OPERATOR))
    (request,) = await conversation.emitted(HandoffRequested)
    assert request.reason == HandoffReason.ANSWER_NOT_HELPFUL
    assert await conversation.status() == S.QUEUED


async def test_feedback_only_on_the_conversations_own_ai_answers(conversation_handlers: HandlerHarness) -> None:
    conversation = await Conversation(conversation_handlers).start()
    question = await conversation.customer_says("Quanto costa?")
    other = await Conversation(conversation_handlers).start()
    others_question = await other.customer_says("Dove siete?")
    others_reply = other.ai_reply(others_question)
    await other.send(others_reply)

    await conversation.send(GiveAnswerFeedback(message_id=question, helpful=True))  # the customer's own message
    await conversation.send(GiveAnswerFeedback(message_id=others_reply.reply_id, helpful=False))

    assert [r.code for r in await conversation.rejections()] == ["not_an_ai_answer", "not_an_ai_answer"]
    assert await conversation.emitted(AnswerFeedbackGiven) == []
    assert await other.emitted(AnswerFeedbackGiven) == []
    assert await conversation.status() == S.AI


async def test_a_supervisor_closes_a_conversation_the_assistant_has_an_operator_may_not(
    conversation_handlers: HandlerHarness,
) -> None:
    conversation = await Conversation(conversation_handlers).start()
    question = await conversation.customer_says("Grazie, tutto chiaro")
    await conversation.send(conversation.ai_reply(question))

    await conversation.send(CloseConversation(operator_id="op-giulia", outcome=CloseOutcome.RESOLVED))
    assert await conversation.status() == S.AI
    assert [r.code for r in await conversation.rejections()] == ["not_assigned"]

    await conversation.send(CloseConversation(operator_id="op-sofia", outcome=CloseOutcome.RESOLVED, role="supervisor"))
    assert await conversation.status() == S.RESOLVED
