"""When the assistant should offer a person instead of (or on top of) its answer.

Phrase lists are data: generic defaults live here, each tenant adds its own in `policy.yaml`
(sensitive topics are tenant-specific, except `emergency`: someone may be in danger, whatever the
business). A phrase is a few words matched in order, each word
tolerating inflection (Snowball stems), typos (edit distance) and up to `max_gap` words in between,
so "voglio parlare con qualcuno" matches "vorrei parlare subito con qualcunoo". A word written
`=word` must match exactly: use it where a stem collides with an innocent word ("cancello", the
gate, shares its stem with "cancellare").
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field

from ai_responder.text import STOPWORDS, SUPPORTED_LANGUAGES, FuzzyVocabulary, normalize, stem, tokenize
from contracts.common import HandoffReason

__all__ = [
    "DEFAULT_CUSTOMER_REQUEST",
    "DEFAULT_EMERGENCY",
    "DEFAULT_FAREWELLS",
    "DEFAULT_NEGATIVE",
    "EMERGENCY",
    "HandoffPolicy",
    "HandoffReason",
    "PhraseMatch",
    "PhraseMatcher",
    "PolicyConfig",
    "PolicyHit",
    "PolicyScan",
]

DEFAULT_CUSTOMER_REQUEST: tuple[str, ...] = (
    # Italian
    "operatore",
    "operatrice",
    "umano",
    "umana",
    "essere umano",
    "persona reale",
    "persona vera",
    "parlare persona",
    "parlare qualcuno",
    "parlare umano",
    "parlare responsabile",
    "assistenza umana",
    "passami qualcuno",
    "chiamare qualcuno",
    "chiamami qualcuno",
    # English
    "human",
    "real person",
    "agent",
    "operator",
    "representative",
    "talk someone",
    "talk somebody",
    "talk person",
    "talk human",
    "speak someone",
    "speak somebody",
    "speak person",
    "speak human",
    "talk manager",
    "speak manager",
)

DEFAULT_NEGATIVE: tuple[str, ...] = (
    # Italian
    "deluso",
    "delusa",
    "delusione",
    "arrabbiato",
    "arrabbiata",
    "furioso",
    "furiosa",
    "furibondo",
    "furibonda",
    "infuriato",
    "infuriata",
    "incazzato",
    "incazzata",
    "esasperato",
    "esasperata",
    "indignato",
    "indignata",
    "=stufo",  # not "stufa", a heater
    "pessimo",
    "pessima",
    "vergogna",
    "vergognoso",
    "vergognatevi",
    "schifo",
    "schifoso",
    "inaccettabile",
    "scandaloso",
    "scandalo",
    "terribile",
    "orribile",
    "disgustoso",
    "indecente",
    "truffa",
    "ladri",
    "mai piu",
    "incompetenti",
    # English
    "angry",
    "furious",
    "terrible",
    "awful",
    "horrible",
    "disappointed",
    "disappointing",
    "disgusting",
    "unacceptable",
    "ridiculous",
    "worst",
    "disgrace",
    "shameful",
    "outrageous",
    "scam",
    "rubbish",
    "fed up",
    "frustrated",
    "fuming",
    "pathetic",
    "upset",
    "never again",
)

EMERGENCY = "emergency"
"""The sensitive topic of a message saying someone may be in danger: it goes before any other
reason, and no article answers it unless one handles the topic (`topics: [emergency]`)."""

DEFAULT_EMERGENCY: tuple[str, ...] = (
    # Italian: a lost child, an injury or illness, an emergency
    "bambino perso",
    "bambina persa",
    "bimbo perso",
    "bimba persa",
    "figlio perso",
    "figlia persa",
    "perso mio figlio",
    "persa mia figlia",
    "non trovo mio figlio",
    "non trovo mia figlia",
    "non trovo bambino",
    "non trovo bambina",
    "non trovo bimbo",
    "non trovo bimba",
    "si fatto male",
    "=ferito",
    "=ferita",
    "=feriti",
    "=malore",
    "=svenuto",
    "=svenuta",
    "=ambulanza",
    "emergenza medica",
    # English
    "lost child",
    "lost my child",
    "lost my son",
    "lost my daughter",
    "lost my kid",
    "lost our child",
    "lost our son",
    "lost our daughter",
    "can't find my child",
    "can't find my son",
    "can't find my daughter",
    "can't find my kid",
    "cannot find my child",
    "=injured",
    "is hurt",
    "got hurt",
    "=fainted",
    "=ambulance",
    "medical emergency",
)

# Phrases starting with one of these keep their word order ("non funziona" is not "funziona? non...").
_ORDERED_STARTS = frozenset({"non", "no", "not", "don", "doesn", "didn", "isn", "can", "cannot", "haven", "never"})

DEFAULT_NEGATIONS: tuple[str, ...] = ("non", "no", "not", "don", "dont", "never", "senza", "without", "nessun")

DEFAULT_GREETINGS: tuple[str, ...] = (
    "ciao",
    "salve",
    "buongiorno",
    "buonasera",
    "hello",
    "hi",
    "hey",
    "good morning",
    "good evening",
)
DEFAULT_THANKS: tuple[str, ...] = (
    "grazie",
    "grazie mille",
    "grazie tante",
    "molte grazie",
    "ti ringrazio",
    "vi ringrazio",
    "thanks",
    "thank you",
    "many thanks",
    "thanks a lot",
    "thank you so much",
    "cheers",
)
DEFAULT_FAREWELLS: tuple[str, ...] = (
    "arrivederci",
    "a presto",
    "alla prossima",
    "buona serata",
    "buona giornata",
    "buona notte",
    "buonanotte",
    "bye",
    "goodbye",
    "bye bye",
    "see you",
    "good night",
    "have a nice evening",
    "have a nice day",
)


class PolicyConfig(BaseModel):
    """policy.yaml. Lists extend the generic defaults unless `replace_defaults` is true."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    replace_defaults: bool = False
    customer_request: list[str] = Field(default_factory=list)
    negative: list[str] = Field(default_factory=list)
    sensitive_topics: dict[str, list[str]] = Field(default_factory=dict)
    """Topic name (e.g. `refund`) -> phrases; the name travels with the hit for routing skills."""
    large_group_min: int | None = Field(default=None, ge=2)
    """A number at least this big next to a people word ("siamo in 30 persone") is a large group."""
    people_words: list[str] = Field(default_factory=list)
    negations: list[str] = Field(default_factory=list)
    greetings: list[str] = Field(default_factory=list)
    thanks: list[str] = Field(default_factory=list)
    farewells: list[str] = Field(default_factory=list)
    max_gap: int = Field(default=2, ge=0, le=5)


@dataclass(frozen=True, slots=True)
class PhraseMatch:
    label: str
    phrase: str
    start: int
    """Index of the first matched token."""
    end: int
    """Index just after the last matched token."""


@dataclass(frozen=True, slots=True)
class _Phrase:
    label: str
    text: str
    words: tuple[str, ...]


def _keys(token: str) -> frozenset[str]:
    """Language-tagged stems, so an Italian stem never equals an unrelated English one by accident."""
    return frozenset(f"{lang}:{stem(token, lang)}" for lang in SUPPORTED_LANGUAGES)


class PhraseMatcher:
    """Finds labelled phrases in a text, tolerant to inflection, typos and small gaps."""

    def __init__(self, phrases: Iterable[tuple[str, str]], max_gap: int = 2, in_order: bool = False) -> None:
        self._max_gap = max_gap
        self._in_order_only = in_order  # every phrase's words in its own order, not only a negation's
        self._phrases: list[_Phrase] = []
        exact: set[str] = set()
        fuzzy_words: set[str] = set()
        for label, text in phrases:
            words: list[str] = []
            for raw in text.split():
                if raw.startswith("="):
                    for token in tokenize(raw[1:]):
                        words.append("=" + token)
                        exact.add(token)
                else:
                    for token in tokenize(raw):
                        words.append(token)
                        fuzzy_words.add(token)
            if words:
                self._phrases.append(_Phrase(label, text, tuple(words)))
        self._exact = frozenset(exact)
        self._vocabulary = FuzzyVocabulary(fuzzy_words)
        self._by_key: dict[str, set[str]] = {}
        for word in fuzzy_words:
            for key in _keys(word):
                self._by_key.setdefault(key, set()).add(word)

    def _canonical(self, token: str) -> set[str]:
        """The phrase words this text token may stand for."""
        found: set[str] = set()
        if token in self._exact:
            found.add("=" + token)
        for key in _keys(token):
            found |= self._by_key.get(key, set())
        found.update(word for word, _ in self._vocabulary.lookup(token))
        return found

    def find(self, tokens: Sequence[str]) -> list[PhraseMatch]:
        """Every phrase occurrence (one per phrase), in text order.

        Words may come in any order within a window of the phrase's length plus `max_gap`
        ("change the booking" and "the booking date, can I change it"), except phrases that start
        with a negation, whose order carries the meaning ("non funziona"), and every phrase of a
        matcher made `in_order`.
        """
        canon = [self._canonical(t) for t in tokens]
        present: set[str] = set().union(*canon) if canon else set()
        matches: list[PhraseMatch] = []
        for phrase in self._phrases:
            if not all(word in present for word in phrase.words):
                continue
            span = self._span(canon, phrase)
            if span is not None:
                matches.append(PhraseMatch(phrase.label, phrase.text, span[0], span[1]))
        matches.sort(key=lambda m: (m.start, m.end))
        return matches

    def _span(self, canon: list[set[str]], phrase: _Phrase) -> tuple[int, int] | None:
        words = phrase.words
        if len(words) == 1:
            start = next(i for i, c in enumerate(canon) if words[0] in c)
            return start, start + 1
        width = len(words) + self._max_gap
        ordered = self._in_order_only or words[0].lstrip("=") in _ORDERED_STARTS
        for start, first in enumerate(canon):
            if not any(w in first for w in words):
                continue
            window = canon[start : start + width]
            if ordered:
                end = self._in_order(window, words)
                if end is not None:
                    return start, start + end
            elif self._all_in(window, words):
                last = max(i for i, c in enumerate(window) if any(w in c for w in words))
                return start, start + last + 1
        return None

    @staticmethod
    def _in_order(window: list[set[str]], words: tuple[str, ...]) -> int | None:
        pos = 0
        for word in words:
            while pos < len(window) and word not in window[pos]:
                pos += 1
            if pos == len(window):
                return None
            pos += 1
        return pos

    @staticmethod
    def _all_in(window: list[set[str]], words: tuple[str, ...]) -> bool:
        """Each word at a distinct position of the window (greedy is enough for 2-4 word phrases)."""
        used: set[int] = set()
        for word in words:
            slot = next((i for i, c in enumerate(window) if word in c and i not in used), None)
            if slot is None:
                return False
            used.add(slot)
        return True


@dataclass(frozen=True, slots=True)
class PolicyHit:
    """Why a message calls for a person, and what in it said so."""

    reason: HandoffReason
    topic: str | None
    """The sensitive topic's name, or None."""
    evidence: str

    @property
    def urgent(self) -> bool:
        """Someone may be in danger (the `emergency` topic)."""
        return self.topic == EMERGENCY


@dataclass(frozen=True, slots=True)
class PolicyScan:
    hit: PolicyHit | None
    noise: frozenset[str]
    """Words of person requests and mood phrases, which retrieval should ignore."""
    upset: bool = False
    """The text vents, whatever `hit` is: an upset customer asking for a person is still upset."""


_CLAUSE_SPLIT = re.compile(r"[,.;:!?\n]+")
_NEGATION_REACH = 5


def _clauses(text: str) -> tuple[list[str], list[int]]:
    """Tokens, and the index of the clause (text between punctuation) each one belongs to."""
    tokens: list[str] = []
    clauses: list[int] = []
    for number, clause in enumerate(_CLAUSE_SPLIT.split(text)):
        for token in tokenize(clause):
            tokens.append(token)
            clauses.append(number)
    return tokens, clauses


_CUSTOMER = "__customer_request__"
_NEGATIVE = "__negative__"
_NEGATION = "__negation__"
_PEOPLE = "__people__"
_GREETING = "__greeting__"
_THANKS = "__thanks__"
_FAREWELL = "__farewell__"
_NUMBER_RE = re.compile(r"^\d{1,5}$")


class HandoffPolicy:
    """Decides whether a customer message (and the answer's confidence) warrants offering a person."""

    def __init__(self, config: PolicyConfig | None = None) -> None:
        config = config or PolicyConfig()
        self.config = config
        base = not config.replace_defaults
        phrases: list[tuple[str, str]] = []
        phrases += [(_CUSTOMER, p) for p in (*(DEFAULT_CUSTOMER_REQUEST if base else ()), *config.customer_request)]
        phrases += [(_NEGATIVE, p) for p in (*(DEFAULT_NEGATIVE if base else ()), *config.negative)]
        phrases += [(EMERGENCY, p) for p in (DEFAULT_EMERGENCY if base else ())]
        for topic, topic_phrases in config.sensitive_topics.items():
            phrases += [(topic, p) for p in topic_phrases]
        self._matcher = PhraseMatcher(phrases, max_gap=config.max_gap)
        self._negations = frozenset(normalize(w) for w in (*(DEFAULT_NEGATIONS if base else ()), *config.negations))
        people = [(_PEOPLE, w) for w in config.people_words]
        greetings = [(_GREETING, p) for p in (*(DEFAULT_GREETINGS if base else ()), *config.greetings)]
        thanks = [(_THANKS, p) for p in (*(DEFAULT_THANKS if base else ()), *config.thanks)]
        farewells = [(_FAREWELL, p) for p in (*(DEFAULT_FAREWELLS if base else ()), *config.farewells)]
        self._people = PhraseMatcher(people, max_gap=0)
        # Each word of a request for a person on its own ("chiama", "operatore", "talk"): what such a
        # request says besides them is what the customer wants to talk about.
        request_words = [word for label, phrase in phrases if label == _CUSTOMER for word in phrase.split()]
        self._request_words = PhraseMatcher(((_CUSTOMER, word) for word in request_words), max_gap=0)
        self._smalltalk = PhraseMatcher(greetings + thanks + farewells, max_gap=1)

    def _negated(self, tokens: Sequence[str], clauses: Sequence[int], match: PhraseMatch) -> bool:
        """A negation earlier in the same clause ("non voglio parlare con un operatore")."""
        if tokens[match.start] in self._negations:
            return False  # the phrase itself is negative ("non funziona")
        first = max(0, match.start - _NEGATION_REACH)
        return any(
            tokens[i] in self._negations and clauses[i] == clauses[match.start] for i in range(first, match.start)
        )

    def scan(self, text: str) -> PolicyScan:
        """The handoff reason found in the text, and the words that only express a wish or a mood."""
        tokens, clauses = _clauses(text)
        if not tokens:
            return PolicyScan(None, frozenset())
        found: dict[HandoffReason, PolicyHit] = {}
        emergency: PolicyHit | None = None
        noise: set[str] = set()
        for match in self._matcher.find(tokens):
            if match.label in (_CUSTOMER, _NEGATIVE):
                # Asking for a person or venting says nothing about the topic: keep it out of retrieval.
                noise.update(tokens[match.start : match.end])
                if self._negated(tokens, clauses, match):
                    continue
                reason = (
                    HandoffReason.CUSTOMER_REQUEST if match.label == _CUSTOMER else HandoffReason.NEGATIVE_SENTIMENT
                )
                found.setdefault(reason, PolicyHit(reason, None, match.phrase))
            elif match.label == EMERGENCY:
                if emergency is None and not self._negated(tokens, clauses, match):  # "nessuna emergenza"
                    emergency = PolicyHit(HandoffReason.SENSITIVE_TOPIC, EMERGENCY, match.phrase)
            else:
                found.setdefault(
                    HandoffReason.SENSITIVE_TOPIC, PolicyHit(HandoffReason.SENSITIVE_TOPIC, match.label, match.phrase)
                )
        if HandoffReason.SENSITIVE_TOPIC not in found:
            group = self._large_group(tokens)
            if group is not None:
                found[HandoffReason.SENSITIVE_TOPIC] = group
        upset = HandoffReason.NEGATIVE_SENTIMENT in found
        if emergency is not None:  # someone may be in danger: before anything else it says or asks
            return PolicyScan(emergency, frozenset(noise), upset)
        for reason in (HandoffReason.CUSTOMER_REQUEST, HandoffReason.SENSITIVE_TOPIC, HandoffReason.NEGATIVE_SENTIMENT):
            if reason in found:
                return PolicyScan(found[reason], frozenset(noise), upset)
        return PolicyScan(None, frozenset(noise))

    def request_words(self, text: str) -> frozenset[str]:
        """The words of the text that ask for a person, wherever they stand ("Sì, *chiama* un
        *operatore*"), inflected or misspelt: none of them says what the customer wants."""
        return frozenset(token for token in set(tokenize(text)) if self._request_words.find([token]))

    def detect(self, text: str) -> PolicyHit | None:
        """A reason found in the text alone: customer request > sensitive topic > negative sentiment."""
        return self.scan(text).hit

    def _large_group(self, tokens: Sequence[str]) -> PolicyHit | None:
        minimum = self.config.large_group_min
        if minimum is None:
            return None
        people_at = {m.start for m in self._people.find(tokens)}
        for i, token in enumerate(tokens):
            if _NUMBER_RE.match(token) and int(token) >= minimum and people_at & {i + 1, i + 2, i + 3}:
                return PolicyHit(
                    HandoffReason.SENSITIVE_TOPIC, "large_group", f"{token} {tokens[min(i + 1, len(tokens) - 1)]}"
                )
        return None

    def assess(
        self,
        text: str,
        confidence: float | None = None,
        answer_threshold: float = 0.45,
        unknown_threshold: float = 0.2,
    ) -> HandoffReason | None:
        """The handoff reason for a message given the answer's confidence (None: the AI just answers)."""
        hit = self.detect(text)
        if hit is not None:
            return hit.reason
        if confidence is None:
            return None
        if confidence < unknown_threshold:
            return HandoffReason.UNKNOWN_ANSWER
        if confidence < answer_threshold:
            return HandoffReason.LOW_CONFIDENCE
        return None

    def smalltalk(self, text: str) -> str | None:
        """`thanks`, `farewell` or `greeting` (in that order: "grazie, arrivederci" thanks) when
        that is all the message says, else None."""
        tokens = tokenize(text)
        if not tokens or len(tokens) > 6:
            return None
        matches = self._smalltalk.find(tokens)
        if not matches:
            return None
        covered: set[int] = set()
        for m in matches:
            covered.update(range(m.start, m.end))
        leftover = [t for i, t in enumerate(tokens) if i not in covered and t not in STOPWORDS]
        if leftover:
            return None
        labels = {m.label for m in matches}
        if _THANKS in labels:
            return "thanks"
        return "farewell" if _FAREWELL in labels else "greeting"
