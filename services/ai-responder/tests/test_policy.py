import pytest

from ai_responder.answering import TenantKnowledge
from ai_responder.policy import EMERGENCY, HandoffPolicy, HandoffReason, PhraseMatcher, PolicyConfig
from ai_responder.text import tokenize

CUSTOMER = HandoffReason.CUSTOMER_REQUEST
SENSITIVE = HandoffReason.SENSITIVE_TOPIC
NEGATIVE = HandoffReason.NEGATIVE_SENTIMENT


@pytest.mark.parametrize(
    ("text", "reason", "topic"),
    [
        ("Voglio parlare con un operatore", CUSTOMER, None),
        ("mi passi un'operatrice?", CUSTOMER, None),
        ("voglio parlare con qualcuno", CUSTOMER, None),
        ("vorrei parlre con un opertore", CUSTOMER, None),  # typos
        ("posso parlare con una persona vera?", CUSTOMER, None),
        ("c'è un essere umano?", CUSTOMER, None),
        ("I want to talk to someone", CUSTOMER, None),
        ("Can I speak to a human please?", CUSTOMER, None),
        ("connect me to an agent", CUSTOMER, None),
        ("Voglio il rimborso", SENSITIVE, "refund"),
        ("Can I get a refund?", SENSITIVE, "refund"),
        ("devo annullare la prenotazione", SENSITIVE, "cancellation"),
        ("vorrei cambiare la data della prenotazione", SENSITIVE, "change_booking"),
        ("is a date change possible?", SENSITIVE, "change_booking"),  # any word order
        ("mia madre è in sedia a rotelle", SENSITIVE, "accessibility"),
        ("siamo un gruppo numeroso", SENSITIVE, "large_group"),
        ("siamo in 30 persone", SENSITIVE, "large_group"),
        ("We are 40 people", SENSITIVE, "large_group"),
        ("vorrei organizzare un evento privato", SENSITIVE, "private_event"),
        ("vorrei fare un reclamo", SENSITIVE, "complaint"),
        ("il sito non funziona", SENSITIVE, "not_working"),
        ("the payment page is not working", SENSITIVE, "not_working"),
        ("Sono molto deluso", NEGATIVE, None),
        ("sono arrabiato", NEGATIVE, None),  # typo
        ("Pessimo servizio, vergogna!", NEGATIVE, None),
        ("This is terrible", NEGATIVE, None),
        ("I'm angry", NEGATIVE, None),
        ("sono arrabbiatissima", NEGATIVE, None),  # a superlative is its base word
        ("sono stufo di aspettare", NEGATIVE, None),
        ("sono davvero esasperata", NEGATIVE, None),
        ("I'm so frustrated with this", NEGATIVE, None),
    ],
)
def test_detects(tenant: TenantKnowledge, text: str, reason: HandoffReason, topic: str | None) -> None:
    hit = tenant.policy.detect(text)
    assert hit is not None, text
    assert hit.reason == reason
    assert hit.topic == topic


@pytest.mark.parametrize(
    "text",
    [
        "Quanto costa il biglietto per persona?",  # "persona" alone is not a request for one
        "Dov'è il cancello d'ingresso?",  # cancello (gate) is not cancellare
        "Siamo una famiglia di 4 persone",  # below the large-group size
        "I'm hungry, is there food?",  # not "angry"
        "Non voglio parlare con un operatore, dimmi gli orari",  # negated
        "accesso prioritario con il saltafila",  # accesso is not accessibilità
        "A che ora aprite?",
        "Ci sono stufe per scaldarsi?",  # heaters, not fed up
        "Il percorso è bellissimo?",
    ],
)
def test_does_not_overreact(tenant: TenantKnowledge, text: str) -> None:
    assert tenant.policy.detect(text) is None, text


@pytest.mark.parametrize(
    "text",
    [
        "Mio figlio si è perso nel parco!",
        "Non trovo più mia figlia",
        "I lost my child in the park, help!",
        "I can't find my son anywhere",
        "Mia madre ha avuto un malore",
        "My dad got hurt on the path",
        "Serve un'ambulanza",
        # Before a request for a person, and before the mood: someone may be in danger.
        "Ho perso mio figlio, voglio parlare con un operatore",
        "Sono arrabbiato, non trovo mio figlio!",
    ],
)
def test_someone_in_danger_goes_before_any_other_reason(text: str) -> None:
    hit = HandoffPolicy().detect(text)  # a platform default: every tenant has it
    assert hit is not None, text
    assert hit.reason == SENSITIVE, text
    assert hit.topic == EMERGENCY, text


@pytest.mark.parametrize(
    "text",
    [
        "Ho perso il biglietto del bambino",
        "Il bambino paga il biglietto?",
        "Where is the emergency exit?",
        "I lost my ticket",
        "Non è un malore, solo stanchezza",  # negated
    ],
)
def test_no_danger_is_read_into_ordinary_questions(text: str) -> None:
    hit = HandoffPolicy().detect(text)
    assert hit is None or hit.topic != EMERGENCY, text


def test_request_beats_topic_beats_mood(tenant: TenantKnowledge) -> None:
    assert tenant.policy.assess("sono arrabbiato, voglio un rimborso") == SENSITIVE
    assert tenant.policy.assess("sono arrabbiato, voglio un rimborso, passami un operatore") == CUSTOMER


@pytest.mark.parametrize(
    ("text", "upset"),
    [
        ("Sono arrabbiato, voglio parlare con un operatore!", True),
        ("I'm furious, get me a human", True),
        ("sono arrabbiato, voglio un rimborso", True),
        ("voglio parlare con un operatore", False),
        ("non sono arrabbiato, voglio solo un operatore", False),
        ("A che ora aprite?", False),
    ],
)
def test_the_mood_is_reported_whatever_the_handoff_reason(tenant: TenantKnowledge, text: str, upset: bool) -> None:
    assert tenant.policy.scan(text).upset is upset


def test_confidence_reasons() -> None:
    policy = HandoffPolicy()
    assert policy.assess("orari", confidence=0.9) is None
    assert policy.assess("orari", confidence=0.3) == HandoffReason.LOW_CONFIDENCE
    assert policy.assess("orari", confidence=0.1) == HandoffReason.UNKNOWN_ANSWER
    assert policy.assess("orari") is None


def test_generic_defaults_without_tenant_lists() -> None:
    policy = HandoffPolicy()
    assert policy.assess("operatore!") == CUSTOMER
    assert policy.assess("terrible") == NEGATIVE
    assert policy.assess("voglio un rimborso") is None  # topics are tenant data


def test_replace_defaults() -> None:
    policy = HandoffPolicy(PolicyConfig(replace_defaults=True, customer_request=["persona"]))
    assert policy.assess("operatore") is None
    assert policy.assess("persona") == CUSTOMER


def test_noise_words_are_reported(tenant: TenantKnowledge) -> None:
    scan = tenant.policy.scan("I'm really angry about the parking")
    assert scan.hit is not None
    assert scan.hit.reason == NEGATIVE
    assert "angry" in scan.noise
    assert "parking" not in scan.noise


def test_smalltalk(tenant: TenantKnowledge) -> None:
    assert tenant.policy.smalltalk("Ciao!") == "greeting"
    assert tenant.policy.smalltalk("grazie mille") == "thanks"
    assert tenant.policy.smalltalk("thanks a lot") == "thanks"
    assert tenant.policy.smalltalk("ciao, quanto costa il biglietto?") is None


def test_phrase_matcher_exact_words_and_gaps() -> None:
    matcher = PhraseMatcher([("x", "=cancellare"), ("y", "parlare qualcuno"), ("z", "non funziona")], max_gap=2)
    assert [m.label for m in matcher.find(tokenize("devo cancellare"))] == ["x"]
    assert matcher.find(tokenize("devo cancelare")) == []  # exact: no typo tolerance
    assert [m.label for m in matcher.find(tokenize("parlare subito con qualcuno"))] == ["y"]
    assert matcher.find(tokenize("parlare di molte cose con qualcuno")) == []  # gap too wide
    assert [m.label for m in matcher.find(tokenize("il sito non funziona"))] == ["z"]
    assert matcher.find(tokenize("funziona? non lo so")) == []  # negation phrases keep their order
