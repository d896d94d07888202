from pathlib import Path

import pytest

from ai_responder.answering import (
    Answer,
    AnswerMode,
    KnowledgeBase,
    LlmResponder,
    Question,
    Responder,
    ResponderSettings,
    RetrievalResponder,
    UnknownTenantError,
    build_responder,
)
from contracts.common import HandoffReason, Sender, SmartActionType

TENANT = "lucine-di-natale"
BUY_URL = "https://lucinedinatale.it/products/biglietto-parco-lucine-di-natale-2025"
WHATSAPP_URL = "https://wa.me/393123456789"


async def ask(responder: Responder, text: str, **kwargs: object) -> Answer:
    return await responder.answer(Question(tenant_id=TENANT, text=text, **kwargs))  # type: ignore[arg-type]


def buttons(answer: Answer) -> list[tuple[str, str]]:
    return [(a.type.value, a.label) for a in answer.smart_actions if a.type != SmartActionType.OPEN_URL]


def links(answer: Answer) -> list[tuple[str, str]]:
    return [(a.label, str(a.url)) for a in answer.smart_actions if a.type == SmartActionType.OPEN_URL]


async def test_answers_from_the_kb_in_italian(responder: RetrievalResponder) -> None:
    answer = await ask(responder, "Quanto costa il biglietto ridotto?")
    assert answer.language == "it"
    assert "7 €" in answer.text
    assert "9 €" in answer.text
    assert [s.article_id for s in answer.sources] == ["ticket-prices"]
    assert answer.sources[0].title == "Prezzi e tipi di biglietto"
    assert answer.handoff_reason is None
    assert 0.45 <= answer.confidence <= 1.0
    assert links(answer) == [("Acquista biglietti", BUY_URL)]
    assert answer.mode == AnswerMode.RETRIEVAL
    assert answer.cacheable


async def test_same_fact_in_english(responder: RetrievalResponder) -> None:
    answer = await ask(responder, "How much is the reduced ticket?")
    assert answer.language == "en"
    assert "€7" in answer.text
    assert answer.sources[0].title == "Ticket prices and types"
    assert links(answer) == [("Buy tickets", BUY_URL)]


async def test_buy_link_from_triggers_even_on_another_article(responder: RetrievalResponder) -> None:
    answer = await ask(responder, "voglio comprare i biglietti, a che ora aprite?")
    assert ("Acquista biglietti", BUY_URL) in links(answer)


async def test_a_trigger_counts_only_with_its_words_in_order(responder: RetrievalResponder) -> None:
    # "get tickets" is a wish to buy; "my tickets! Can I get a refund?" is not: no buy link on a
    # refund complaint.
    refund = await ask(responder, "This is ridiculous, I paid twice for my tickets! Can I get a refund?")
    assert refund.sources[0].article_id == "refunds-changes"
    assert links(refund) == []
    buy = await ask(responder, "Where can I get tickets for tonight?")
    assert links(buy) == [("Buy tickets", BUY_URL)]


async def test_whatsapp_link_to_contact_staff(responder: RetrievalResponder) -> None:
    answer = await ask(responder, "Come posso contattarvi?")
    assert answer.sources[0].article_id == "contacts"
    assert links(answer) == [("WhatsApp", WHATSAPP_URL)]
    english = await ask(responder, "How can I contact you?")
    assert links(english) == [("WhatsApp", WHATSAPP_URL)]


async def test_customer_request_offers_the_two_buttons(responder: RetrievalResponder) -> None:
    answer = await ask(responder, "voglio parlare con un operatore")
    assert answer.handoff_reason == HandoffReason.CUSTOMER_REQUEST
    assert answer.sources == []
    assert buttons(answer) == [
        ("request_operator", "Sì, chiama un operatore"),
        ("continue_ai", "No, continua con l'assistente"),
    ]
    english = await ask(responder, "I want to talk to a human")
    assert english.language == "en"
    assert buttons(english) == [
        ("request_operator", "Yes, call an operator"),
        ("continue_ai", "No, continue with the assistant"),
    ]


async def test_an_upset_request_for_a_person_is_a_request_from_an_upset_customer(
    responder: RetrievalResponder,
) -> None:
    upset = await ask(responder, "Sono arrabbiato, voglio parlare con un operatore!")
    assert upset.handoff_reason == HandoffReason.CUSTOMER_REQUEST
    assert upset.upset is True
    calm = await ask(responder, "voglio parlare con un operatore")
    assert calm.handoff_reason == HandoffReason.CUSTOMER_REQUEST
    assert calm.upset is False
    venting = await ask(responder, "Sono molto arrabbiato, a che ora aprite?")
    assert venting.upset is True
    assert venting.sources[0].article_id == "dates-hours"


IT_OFFER = "Certo! Vuoi che ti metta in contatto con un operatore?"
EN_OFFER = "Of course! Would you like me to connect you with an operator?"
IT_BUTTONS = [("request_operator", "Sì, chiama un operatore"), ("continue_ai", "No, continua con l'assistente")]
EN_BUTTONS = [("request_operator", "Yes, call an operator"), ("continue_ai", "No, continue with the assistant")]


async def test_a_question_asked_with_a_request_for_a_person_is_answered_before_the_offer(
    responder: RetrievalResponder,
) -> None:
    italian = await ask(responder, "Quanto costano i biglietti? Vorrei parlare con un operatore")
    assert [s.article_id for s in italian.sources] == ["ticket-prices"]
    assert "9 €" in italian.text
    assert italian.text.endswith(f"\n\n{IT_OFFER}")  # the offer last, right above its buttons
    assert italian.handoff_reason == HandoffReason.CUSTOMER_REQUEST
    assert 0.45 <= italian.confidence < 1.0  # the answer's own confidence
    assert links(italian) == [("Acquista biglietti", BUY_URL)]
    assert buttons(italian) == IT_BUTTONS
    last_two = [a.type for a in italian.smart_actions][-2:]
    assert last_two == [SmartActionType.REQUEST_OPERATOR, SmartActionType.CONTINUE_AI]
    assert italian.cacheable
    english = await ask(responder, "How much are the tickets? I'd like to talk to a person please")
    assert english.language == "en"
    assert [s.article_id for s in english.sources] == ["ticket-prices"]
    assert "€9" in english.text
    assert english.text.endswith(f"\n\n{EN_OFFER}")
    assert english.handoff_reason == HandoffReason.CUSTOMER_REQUEST
    assert links(english) == [("Buy tickets", BUY_URL)]
    assert buttons(english) == EN_BUTTONS
    # A request word outside the request's phrase ("chiamate") is no topic: not the contacts' phone.
    parking = await ask(responder, "Quanto costa il parcheggio? Chiamate un operatore")
    assert [s.article_id for s in parking.sources] == ["parking"]
    assert parking.text.endswith(IT_OFFER)
    # An "are you open on ...?" keeps its yes or no.
    christmas = await ask(responder, "Siete aperti il 25 dicembre? Chiamatemi un operatore")
    assert [s.article_id for s in christmas.sources] == ["dates-hours"]
    assert christmas.text.startswith("Sì")
    assert christmas.text.endswith(IT_OFFER)


async def test_several_questions_asked_with_a_request_for_a_person_are_each_answered_before_the_offer(
    responder: RetrievalResponder,
) -> None:
    for text, language, hours, parking, offer, expected_buttons in (
        (
            "A che ora aprite? E c'è un parcheggio? Vorrei parlare con un operatore",
            "it",
            "17:30",
            "parcheggio è gratuito",
            IT_OFFER,
            IT_BUTTONS,
        ),
        (
            "What time do you open? Is there parking? I'd like to talk to a person please",
            "en",
            "17:30",
            "Parking is free",
            EN_OFFER,
            EN_BUTTONS,
        ),
    ):
        answer = await ask(responder, text)
        assert answer.language == language, text
        assert [s.article_id for s in answer.sources] == ["dates-hours", "parking"], text  # in the order asked
        assert hours in answer.text, text
        assert parking in answer.text, text
        assert answer.text.index(hours) < answer.text.index(parking), text
        assert answer.text.endswith(f"\n\n{offer}"), text  # the offer last, right above its buttons
        assert answer.handoff_reason == HandoffReason.CUSTOMER_REQUEST, text
        assert answer.confidence == min(s.score for s in answer.sources), text  # the answers' own confidence
        assert buttons(answer) == expected_buttons, text
        last_two = [a.type for a in answer.smart_actions][-2:]
        assert last_two == [SmartActionType.REQUEST_OPERATOR, SmartActionType.CONTINUE_AI], text
    # The request first, and two questions joined by "e" in one sentence: the same.
    first = await ask(responder, "Voglio un operatore. Quanto costa il biglietto e dove si compra?")
    assert [s.article_id for s in first.sources] == ["ticket-prices", "buy-tickets"]
    assert first.text.endswith(IT_OFFER)
    assert links(first) == [("Acquista biglietti", BUY_URL)]
    assert buttons(first) == IT_BUTTONS
    # One question the knowledge base cannot answer: no half answer, the offer only.
    half = await ask(responder, "Quanto costa il biglietto? Posso portare il cane? Voglio un operatore")
    assert half.text == IT_OFFER
    assert half.sources == []
    assert half.handoff_reason == HandoffReason.CUSTOMER_REQUEST


async def test_a_request_for_a_person_alone_or_with_what_the_kb_cannot_answer_gets_the_offer_only(
    responder: RetrievalResponder,
) -> None:
    for text, offer, expected_buttons in (
        ("Voglio parlare con un operatore", IT_OFFER, IT_BUTTONS),
        ("Sì, chiama un operatore", IT_OFFER, IT_BUTTONS),  # "chiama" asks for the person, not the phone
        ("I want to talk to a human", EN_OFFER, EN_BUTTONS),
        # Not something the knowledge base answers: no guess, the person.
        ("Quanto costa il parcheggio a Torino? Vorrei parlare con un operatore", IT_OFFER, IT_BUTTONS),
        ("Can I bring my dog? I want to speak to a human", EN_OFFER, EN_BUTTONS),
        # Upset and asking nothing: no article, as for any upset message.
        ("Sono arrabbiato per il parcheggio, voglio un operatore", IT_OFFER, IT_BUTTONS),
    ):
        answer = await ask(responder, text)
        assert answer.text == offer, text
        assert answer.sources == [], text
        assert answer.handoff_reason == HandoffReason.CUSTOMER_REQUEST, text
        assert answer.confidence == 1.0, text
        assert buttons(answer) == expected_buttons, text
        assert links(answer) == [], text


async def test_each_question_of_a_message_is_answered_from_its_own_article(responder: RetrievalResponder) -> None:
    answer = await ask(responder, "A che ora aprite? C'è un parcheggio?")
    assert [s.article_id for s in answer.sources] == ["dates-hours", "parking"]
    assert "17:30" in answer.text
    assert "parcheggio è gratuito" in answer.text
    assert answer.handoff_reason is None
    assert answer.confidence == min(s.score for s in answer.sources)
    christmas = await ask(responder, "C'è un parcheggio? Siete aperti il 25 dicembre?")
    assert [s.article_id for s in christmas.sources] == ["parking", "dates-hours"]
    parking, dates = christmas.text.split("\n\n", 1)
    assert parking.startswith("Il parcheggio è gratuito")
    assert dates.startswith("Sì"), "the yes or no goes with the passage that states the dates"
    shuttle_first = await ask(responder, "Is there a shuttle? How much is the ticket?")
    assert [s.article_id for s in shuttle_first.sources] == ["shuttle-bus", "ticket-prices"], "in the order asked"
    assert links(shuttle_first) == [("Buy tickets", BUY_URL)], "the links of every answering article"
    # "and" before a question word starts another question, in one sentence.
    joined = await ask(responder, "Quanto costa il biglietto e dove si compra?")
    assert [s.article_id for s in joined.sources] == ["ticket-prices", "buy-tickets"]
    english = await ask(responder, "How much is the ticket and where do I buy it?")
    assert [s.article_id for s in english.sources] == ["ticket-prices", "buy-tickets"]


async def test_a_message_of_several_questions_is_answered_whole_unless_each_is_answered(
    responder: RetrievalResponder,
) -> None:
    # One article answers both: one answer.
    same = await ask(responder, "Quanto costa il biglietto? E per i bambini?")
    assert [s.article_id for s in same.sources] == ["ticket-prices"]
    # A greeting asks nothing.
    greeted = await ask(responder, "Ciao! Quanto costa il biglietto?")
    assert [s.article_id for s in greeted.sources] == ["ticket-prices"]
    # A question the articles never answer: the honest "I don't know", not half an answer.
    half = await ask(responder, "Quanto costa il biglietto? Posso portare il cane?")
    assert half.sources == []
    assert half.handoff_reason in (HandoffReason.UNKNOWN_ANSWER, HandoffReason.LOW_CONFIDENCE)


async def test_the_events_own_name_is_no_topic(responder: RetrievalResponder) -> None:
    # "luci" is in tenant.yaml's subject_words: not a subject the articles fail to mention.
    lights = await ask(responder, "A che ora aprono le luci?")
    assert [s.article_id for s in lights.sources] == ["dates-hours"]
    english = await ask(responder, "When are the lights on?")
    assert [s.article_id for s in english.sources] == ["dates-hours"]


async def test_unknown_says_so_and_offers_a_person(responder: RetrievalResponder) -> None:
    answer = await ask(responder, "Posso portare il cane?")
    assert answer.sources == []
    assert answer.handoff_reason in (HandoffReason.UNKNOWN_ANSWER, HandoffReason.LOW_CONFIDENCE)
    assert "non ho questa informazione" in answer.text
    assert not any(ch.isdigit() for ch in answer.text)  # nothing invented
    assert [b[0] for b in buttons(answer)] == ["request_operator", "continue_ai"]
    english = await ask(responder, "Do you sell hot chocolate?")
    assert english.language == "en"
    assert "I don't have that information" in english.text
    assert english.handoff_reason is not None
    assert english.sources == []


async def test_off_topic_is_unknown_answer(responder: RetrievalResponder) -> None:
    answer = await ask(responder, "Qual è la capitale della Francia?")
    assert answer.handoff_reason == HandoffReason.UNKNOWN_ANSWER
    assert answer.confidence < 0.2


async def test_sensitive_topic_answers_and_offers_a_person(responder: RetrievalResponder) -> None:
    answer = await ask(responder, "Voglio il rimborso del biglietto")
    assert answer.sources[0].article_id == "refunds-changes"
    assert answer.handoff_reason == HandoffReason.SENSITIVE_TOPIC
    assert "staff" in answer.text
    assert "operatore" in answer.text
    assert [b[0] for b in buttons(answer)] == ["request_operator", "continue_ai"]


async def test_upset_customer_gets_the_answer_and_the_offer(responder: RetrievalResponder) -> None:
    answer = await ask(responder, "sono arrabbiato, a che ora aprite???")
    assert answer.sources[0].article_id == "dates-hours"
    assert "17:30" in answer.text
    assert "Mi dispiace" in answer.text
    assert answer.handoff_reason == HandoffReason.NEGATIVE_SENTIMENT
    assert [b[0] for b in buttons(answer)] == ["request_operator", "continue_ai"]


async def test_several_questions_in_an_upset_message_are_each_answered_before_the_apology(
    responder: RetrievalResponder,
) -> None:
    for text, language, prices, hours, sorry in (
        ("Sono furioso! Quanto costano i biglietti? E a che ora chiudete?", "it", "9 €", "17:30", "Mi dispiace"),
        ("I'm really angry. How much are the tickets? And when do you open?", "en", "€9", "17:30", "sorry"),
    ):
        answer = await ask(responder, text)
        assert answer.language == language, text
        assert [s.article_id for s in answer.sources] == ["ticket-prices", "dates-hours"], text  # in the order asked
        assert answer.text.index(prices) < answer.text.index(hours) < answer.text.index(sorry), text
        assert answer.handoff_reason == HandoffReason.NEGATIVE_SENTIMENT, text
        assert answer.upset, text
        assert [b[0] for b in buttons(answer)][-2:] == ["request_operator", "continue_ai"], text
    # Venting that asks nothing still gets no article, however many sentences it has.
    venting = await ask(responder, "Sono arrabbiatissimo. Il parcheggio era pieno. Che vergogna.")
    assert venting.sources == []
    assert venting.handoff_reason == HandoffReason.NEGATIVE_SENTIMENT


async def test_someone_in_danger_gets_the_emergency_advice_and_the_offer_never_an_article(
    responder: RetrievalResponder,
) -> None:
    for text, language, says in (
        ("I lost my child in the park, help!", "en", "call 112"),  # the ticket prices mention children
        ("Mio figlio si è perso nel parco!", "it", "chiama subito il 112"),
        ("Ho perso mio figlio, voglio parlare con un operatore", "it", "chiama subito il 112"),
    ):
        answer = await ask(responder, text)
        assert answer.language == language, text
        assert says in answer.text, text
        assert answer.sources == [], text
        assert answer.handoff_reason == HandoffReason.SENSITIVE_TOPIC, text
        assert answer.urgent, text  # the customer who says YES is wanted first in the queue
        assert [b[0] for b in buttons(answer)] == ["request_operator", "continue_ai"], text
        assert links(answer) == [], text  # no "Buy tickets"
    # Another sensitive topic, or an upset customer, is not an emergency.
    for text in ("Voglio il rimborso del biglietto", "Sono furioso! Quanto costano i biglietti?"):
        assert not (await ask(responder, text)).urgent, text


async def test_a_price_question_for_a_family_gets_the_price_list(responder: RetrievalResponder) -> None:
    # The knowledge base has no family ticket: who is coming does not stop the price list answering.
    for text in (
        "Siamo una famiglia di 4 persone, quanto spendiamo?",
        "Il biglietto costa a persona o a famiglia?",
        "Siamo una coppia, quanto costa?",
    ):
        answer = await ask(responder, text)
        assert [s.article_id for s in answer.sources][:1] == ["ticket-prices"], text
        assert answer.handoff_reason is None, text
    # Anything else about families that the knowledge base never mentions is still not guessed.
    for text in ("Ci sono attività per famiglie?", "Do you have family activities?"):
        answer = await ask(responder, text)
        assert answer.sources == [], text
        assert answer.handoff_reason in (HandoffReason.UNKNOWN_ANSWER, HandoffReason.LOW_CONFIDENCE), text


async def test_a_goodbye_gets_a_goodbye_not_an_offer_of_a_person(responder: RetrievalResponder) -> None:
    # "Thanks, bye!" ended many a good conversation with "I don't have that information".
    thanks_bye = await ask(responder, "Thanks, bye!")
    assert thanks_bye.handoff_reason is None
    assert thanks_bye.language == "en"
    assert thanks_bye.text.startswith("You're welcome")
    for text in ("Arrivederci!", "Buona serata!", "A presto"):
        goodbye = await ask(responder, text)
        assert goodbye.handoff_reason is None, text
        assert goodbye.sources == [], text
        assert goodbye.text.startswith("A presto!"), text
        assert buttons(goodbye) == [], text


async def test_small_talk(responder: RetrievalResponder) -> None:
    hello = await ask(responder, "Ciao!")
    assert hello.handoff_reason is None
    assert hello.sources == []
    assert "Lucine di Natale" in hello.text
    thanks = await ask(responder, "thank you!")
    assert thanks.language == "en"
    assert thanks.handoff_reason is None


async def test_follow_up_uses_history_and_is_not_cacheable(responder: RetrievalResponder) -> None:
    alone = await ask(responder, "and how do I get one?")
    assert alone.sources == []
    assert alone.handoff_reason is not None
    assert not alone.cacheable
    history = [(Sender.CUSTOMER, "How much is a ticket?"), (Sender.AI, "A standard ticket costs €9.")]
    followed = await ask(responder, "and how do I get one?", history=history)
    assert followed.sources[0].article_id in ("ticket-prices", "buy-tickets")
    assert followed.handoff_reason is None
    assert not followed.cacheable


async def test_a_question_about_something_unknown_is_not_answered_from_the_previous_one(
    responder: RetrievalResponder,
) -> None:
    history = [(Sender.CUSTOMER, "Is there parking?"), (Sender.AI, "Parking is free in the centre of Leggiuno.")]
    dog = await ask(responder, "can i bring my dog", history=history)
    assert dog.sources == [], "no article mentions dogs: not the parking answer again"
    assert dog.handoff_reason in (HandoffReason.UNKNOWN_ANSWER, HandoffReason.LOW_CONFIDENCE)


async def test_language_hint_and_history(responder: RetrievalResponder) -> None:
    assert (await ask(responder, "Leggiuno?", language="en")).language == "en"
    history = [(Sender.CUSTOMER, "Hello, how much are the tickets?")]
    assert (await ask(responder, "ok, Leggiuno?", history=history)).language == "en"


async def test_unknown_tenant(responder: RetrievalResponder) -> None:
    with pytest.raises(UnknownTenantError):
        await responder.answer(Question(tenant_id="nope", text="ciao"))


def test_build_responder_picks_the_mode(knowledge: KnowledgeBase) -> None:
    kb_dir = Path(__file__).resolve().parents[1] / "kb"
    assert isinstance(build_responder(ResponderSettings(kb_dir=kb_dir)), RetrievalResponder)
    llm = build_responder(ResponderSettings(kb_dir=kb_dir, llm_api_key="k", llm_base_url="http://127.0.0.1:9/v1"))
    assert isinstance(llm, LlmResponder)
    assert isinstance(llm, Responder)
    assert isinstance(build_responder(ResponderSettings(kb_dir=kb_dir), knowledge), RetrievalResponder)


def test_knowledge_base_needs_tenants(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        KnowledgeBase.load(tmp_path)


async def test_a_price_list_about_what_is_asked_answers_how_much_it_costs(responder: RetrievalResponder) -> None:
    # The museum's price list never says "costa"; a guided tour's passage says it once, with one
    # amount. The list, which names the ticket, answers.
    answer = await responder.answer(Question(tenant_id="museo-del-vetro", text="Quanto costa il biglietto?"))
    assert [s.article_id for s in answer.sources] == ["tariffe-e-regolamento-biglietti"]
    # A list about something else does not win on its amounts: the parking passage answers.
    parking = await ask(responder, "A che ora aprite e quanto costa il parcheggio?")
    assert [s.article_id for s in parking.sources] == ["dates-hours", "parking"]


def wanted(knowledge: KnowledgeBase, text: str, *history: tuple[Sender, str]) -> Answer | None:
    """What the operator who took over is offered for a customer's request for a person."""
    question = Question(tenant_id=TENANT, text=text, language="it", history=list(history))
    return knowledge.tenant(TENANT).wanted_from_a_person(question)


def test_a_person_takes_up_the_question_asked_before_the_request(knowledge: KnowledgeBase) -> None:
    offer = "Certo! Vuoi che ti metta in contatto con un operatore?"
    earlier = wanted(
        knowledge,
        "Sì, chiama un operatore",  # "chiama" is a request word here, not a question about the phone
        (Sender.CUSTOMER, "dove posso parcheggiare?"),
        (Sender.AI, "Il parcheggio è gratuito nel centro di Leggiuno."),
        (Sender.CUSTOMER, "grazie"),  # says nothing of what they want: looked past
        (Sender.AI, "Prego!"),
        (Sender.CUSTOMER, "posso parlare con una persona?"),
        (Sender.AI, offer),
    )
    assert earlier is not None
    assert [s.article_id for s in earlier.sources] == ["parking"]
    assert earlier.language == "it"
    assert earlier.handoff_reason is None
    assert buttons(earlier) == []  # no YES/NO offer of a person to the person
    # How a request is said ("preferisco", "this bot is useless") is not what the customer wants.
    for request in ("preferisco parlare con un operatore, subito", "let me talk to a human, this bot is useless"):
        filler = wanted(knowledge, request, (Sender.CUSTOMER, "Quanto costano i biglietti?"), (Sender.AI, "9 €"))
        assert filler is not None
        assert [s.article_id for s in filler.sources] == ["ticket-prices"]
    # What the request itself names comes first.
    own = wanted(knowledge, "vorrei parlare con un operatore per il parcheggio", (Sender.CUSTOMER, "quanto costa?"))
    assert own is not None
    assert [s.article_id for s in own.sources] == ["parking"]
    # Several questions with the request: each answered, as for the customer.
    both = wanted(knowledge, "A che ora aprite? C'è un parcheggio? Vorrei parlare con un operatore")
    assert both is not None
    assert [s.article_id for s in both.sources] == ["dates-hours", "parking"]


def test_no_answer_for_the_person_when_the_kb_does_not_have_what_was_wanted(knowledge: KnowledgeBase) -> None:
    assert wanted(knowledge, "voglio parlare con un operatore") is None  # nothing asked
    # The question before the request is one the KB cannot answer: an older, answered one is not
    # what the customer wants now.
    unanswered = wanted(
        knowledge,
        "voglio un operatore",
        (Sender.CUSTOMER, "Quanto costano i biglietti?"),
        (Sender.AI, "Intero: 9 €"),
        (Sender.CUSTOMER, "posso portare il mio drone?"),
        (Sender.AI, "Mi dispiace, non ho questa informazione."),
    )
    assert unanswered is None
