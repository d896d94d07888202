"""What the customer is told, as system messages, when the conversation changes hands.

Each text exists in Italian and English; the conversation's locale picks one (Italian when unknown,
the platform's first tenant being Italian).
"""

from __future__ import annotations

import math
from enum import StrEnum

DEFAULT_LOCALE = "it"


class Notice(StrEnum):
    CONNECTING = "connecting"
    QUEUED = "queued"
    QUEUED_WITH_WAIT = "queued_with_wait"
    OPERATOR_OFFERED = "operator_offered"
    OPERATOR_JOINED = "operator_joined"
    TRANSFERRED_TO_QUEUE = "transferred_to_queue"
    NO_OPERATOR = "no_operator"
    BACK_TO_AI = "back_to_ai"
    LEFT_QUEUE = "left_queue"
    WAITING_CUSTOMER = "waiting_customer"
    ABANDONED = "abandoned"
    CLOSED = "closed"
    TICKET_CREATED = "ticket_created"
    TICKET_CREATED_WITH_PROMISE = "ticket_created_with_promise"
    ANSWER_NOT_HELPFUL = "answer_not_helpful"
    OPERATOR_BUTTON = "operator_button"
    CONTINUE_BUTTON = "continue_button"


TEXTS: dict[Notice, dict[str, str]] = {
    Notice.CONNECTING: {
        "it": "Ti sto mettendo in contatto con un operatore, attendi un momento.",
        "en": "I'm connecting you with an operator, please wait a moment.",
    },
    Notice.QUEUED: {
        "it": "Tutti gli operatori sono occupati: sei {position}° in coda.",
        "en": "All our operators are busy: you are number {position} in the queue.",
    },
    Notice.QUEUED_WITH_WAIT: {
        "it": "Tutti gli operatori sono occupati: sei {position}° in coda, attesa stimata circa {minutes} min.",
        "en": "All our operators are busy: you are number {position} in the queue, estimated wait about {minutes} min.",
    },
    Notice.OPERATOR_OFFERED: {
        "it": "Un operatore sta per risponderti, resta in linea.",
        "en": "An operator is about to answer you, please stay here.",
    },
    Notice.OPERATOR_JOINED: {
        "it": "Ora sei in contatto con {name}.",
        "en": "You are now chatting with {name}.",
    },
    Notice.TRANSFERRED_TO_QUEUE: {
        "it": "Ti sto passando a un altro operatore, attendi un momento.",
        "en": "I'm passing you to another operator, please wait a moment.",
    },
    Notice.NO_OPERATOR: {
        "it": "Al momento non ci sono operatori disponibili. Lasciaci nome, email o telefono"
        " e ti ricontatteremo al più presto.",
        "en": "No operator is available right now. Leave us your name, email or phone"
        " and we will get back to you as soon as possible.",
    },
    Notice.BACK_TO_AI: {
        "it": "L'operatore ti ha passato di nuovo all'assistente virtuale. Come posso aiutarti?",
        "en": "The operator handed you back to the virtual assistant. How can I help?",
    },
    Notice.LEFT_QUEUE: {
        "it": "Hai lasciato la coda: continui con l'assistente virtuale.",
        "en": "You left the queue: you are back with the virtual assistant.",
    },
    Notice.WAITING_CUSTOMER: {
        "it": "Sei ancora lì? Scrivici quando vuoi: l'operatore ti risponderà.",
        "en": "Are you still there? Write whenever you like: the operator will answer.",
    },
    Notice.ABANDONED: {
        "it": "La conversazione è stata chiusa per inattività.",
        "en": "The conversation was closed for inactivity.",
    },
    Notice.CLOSED: {
        "it": "La conversazione è stata chiusa. Com'è andata? Lascia una valutazione da 1 a 5.",
        "en": "The conversation was closed. How did it go? Leave a rating from 1 to 5.",
    },
    Notice.TICKET_CREATED: {
        "it": "Abbiamo aperto la richiesta {number}. Ti contatteremo al più presto.",
        "en": "We opened request {number}. We will get back to you as soon as possible.",
    },
    Notice.TICKET_CREATED_WITH_PROMISE: {
        "it": "Abbiamo aperto la richiesta {number}. Ti risponderemo entro {promise}.",
        "en": "We opened request {number}. We will answer you within {promise}.",
    },
    # The handoff offer made when the customer marks an answer not helpful, with the AI's YES/NO buttons.
    Notice.ANSWER_NOT_HELPFUL: {
        "it": "Mi dispiace che la risposta non ti sia stata utile. Vuoi parlare con un operatore?",
        "en": "I'm sorry the answer did not help. Would you like to talk to an operator?",
    },
    Notice.OPERATOR_BUTTON: {"it": "Sì, chiama un operatore", "en": "Yes, call an operator"},
    Notice.CONTINUE_BUTTON: {"it": "No, continua con l'assistente", "en": "No, continue with the assistant"},
}

# "within 2 hours" / "entro 2 ore", in the largest unit that keeps the promise honest (rounded up).
_UNITS: dict[str, tuple[tuple[int, str, str], ...]] = {
    "it": ((86400, "giorno", "giorni"), (3600, "ora", "ore"), (60, "minuto", "minuti")),
    "en": ((86400, "day", "days"), (3600, "hour", "hours"), (60, "minute", "minutes")),
}


def notice_text(notice: Notice, locale: str | None, **fields: object) -> str:
    texts = TEXTS[notice]
    return texts.get(locale or DEFAULT_LOCALE, texts[DEFAULT_LOCALE]).format(**fields)


def duration_text(locale: str | None, seconds: float) -> str:
    """`seconds` as "3 hours" / "3 ore": whole days from two days on, whole hours from two hours
    on, else minutes; always rounded up, so the customer is never promised less than the SLA."""
    units = _UNITS.get(locale or DEFAULT_LOCALE, _UNITS[DEFAULT_LOCALE])
    for size, one, many in units:
        if seconds >= 2 * size or size == 60:
            count = max(1, math.ceil(seconds / size))
            return f"{count} {one if count == 1 else many}"
    raise AssertionError("unreachable: minutes always match")


def ticket_created_text(locale: str | None, number: str, first_response_seconds: float | None) -> str:
    """The notice of a new ticket: its number, and when the first answer is due when the ticket
    has a first-response SLA (the tickets service's deadline, business hours included)."""
    if first_response_seconds is None or first_response_seconds <= 0:
        return notice_text(Notice.TICKET_CREATED, locale, number=number)
    promise = duration_text(locale, first_response_seconds)
    return notice_text(Notice.TICKET_CREATED_WITH_PROMISE, locale, number=number, promise=promise)


def queued_text(locale: str | None, position: int, estimated_wait_seconds: int | None) -> str:
    if estimated_wait_seconds is None:
        return notice_text(Notice.QUEUED, locale, position=position)
    minutes = max(1, math.ceil(estimated_wait_seconds / 60))
    return notice_text(Notice.QUEUED_WITH_WAIT, locale, position=position, minutes=minutes)
