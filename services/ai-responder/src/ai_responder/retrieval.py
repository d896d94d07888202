"""BM25 retrieval over knowledge-base passages, built for short bilingual customer questions.

Design choices, all aimed at well under a millisecond of work per question:

* Articles are cut into passages (paragraphs grouped to a few dozen words; a short article is one
  passage) so a long document answers with the part that matters. Each passage is indexed with its
  article's title, tags and keywords (keywords are optional: plain documents have none).
* Terms are language-tagged Snowball stems (`it:bigliett`, `en:ticket`); a question's words are
  stemmed both ways since its language is only a guess. Hyphenated words count whole and in parts.
* BM25 weights come from `bm25s` (Lucene's variant): its precomputed (term, passage) scores are read
  once, so scoring a question is a sum of dictionary look-ups.
* Words not in the index are corrected against its vocabulary with a symmetric-delete typo index
  (see `text.FuzzyVocabulary`), then expanded with the tenant's glossary and the generic one of
  `lexicon.py`; each resolution is memoised per token.
* Confidence in 0..1 is how much of the question the passage explains (share of the question's
  informative weight, idf-weighted, that it matches) times a saturating function of the BM25 score,
  lowered for every informative word the knowledge base has never seen ("password", "gluten"), and
  zero when the question names a place, event or product the knowledge base does not know (a
  capitalised unknown word: "Torino", "Picasso"). Qualifiers ("exact", "esattamente") are ignored.
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import bm25s

from ai_responder.kb import Article
from ai_responder.lexicon import GENERIC_SYNONYMS, PARTY_WORDS, QUALIFIERS
from ai_responder.text import STOPWORDS, SUPPORTED_LANGUAGES, FuzzyVocabulary, normalize, stem, tokenize

FIELD_REPEATS: dict[str, int] = {"title": 3, "keywords": 1, "tags": 1, "body": 1}
"""How many times a field's words count (BM25 term frequency), a title's more than the body's."""
FUZZY_PENALTY = 0.9
"""A typo-corrected word counts a little less than a correctly spelt one."""
SYNONYM_WEIGHT = 0.7
SCORE_SCALE = 0.7
"""BM25 score at which the saturation factor reaches 1 - 1/e."""
UNKNOWN_FACTOR = 0.45
"""Confidence kept for each informative question word the knowledge base has never seen..."""
UNKNOWN_WEIGHT = 0.0
"""...which also counts, at this share of a rare word's weight, as a part of the question left unexplained."""
OTHER_LANGUAGE = 0.6
"""Rank factor of a passage written only in another language than the customer's."""
SHORT_ARTICLE_WORDS = 120
"""An article up to this long is one passage: shown whole, it answers in full."""
PASSAGE_WORDS = 60
"""Paragraphs of a longer article are grouped into passages of about this many words."""
MIN_UNKNOWN_LENGTH = 4
QUESTION_WORDS = frozenset({"dove", "where", "quando", "when"})
"""They say what kind of answer is wanted more than what it is about: they count little in coverage."""
QUESTION_WORD_IMPORTANCE = 0.3
SHAPE_CREDIT = 0.8
"""BM25 credit, per unit of a word's importance, of a passage stating the kind of fact asked for."""
LIST_LENGTH = 4
"""This many amounts (times, prices...) in a passage make it a list of them: a price list, a timetable."""
TITLE_BONUS = 0.05
"""Rank bonus per question word found as such in a passage's title."""
"""Shorter unknown words are too often abbreviations or typos to veto an answer."""
_IGNORED = STOPWORDS | QUALIFIERS
# What kind of fact a question asks for, and how that fact looks in a text.
_PRICE_WORDS = frozenset(
    [
        "costa",
        "costano",
        "spendere",
        "spendiamo",
        "spend",
        "costo",
        "costi",
        "prezzo",
        "prezzi",
        "tariffa",
        "tariffe",
        "price",
        "prices",
        "cost",
        "costs",
        "fee",
        "fees",
    ]
)
_TIME_WORDS = frozenset(
    [
        "orario",
        "orari",
        "hours",
        "time",
        "times",
        "opening",
        "closing",
        "apre",
        "aprite",
        "aprono",
        "chiude",
        "chiudete",
        "chiudono",
        "apertura",
        "chiusura",
    ]
)
_PHONE_WORDS = frozenset(["telefono", "telefonare", "chiamare", "numero", "phone", "call", "telephone", "number"])
_EMAIL_WORDS = frozenset(["email", "mail"])
# The price of getting in is the price of a ticket: "quanto costa l'ingresso?" asks for the ticket
# prices, not for a text that names the entrance door and happens to state an amount (parking).
_ENTRY_WORDS = ("ingresso", "entrata", "entrare", "entry", "entrance", "enter", "admission", "admittance")
_TICKET_WORDS = ("biglietto", "biglietti", "ticket", "tickets")
_ANSWER_SHAPES: dict[str, re.Pattern[str]] = {
    "phone": re.compile(r"\+?\d[\d ]{7,}\d"),
    "email": re.compile(r"[\w.+-]+@[\w-]+\.[\w.]+"),
    "price": re.compile(r"€|\$|£|\beur(o|i|os)?\b|\bgratis\b|\bgratuit|\bfree\b|\d+[.,]\d\d", re.IGNORECASE),
    "time": re.compile(r"\b\d{1,2}[:.]\d{2}\b|\b\d{1,2}\s?(am|pm)\b", re.IGNORECASE),
    "when": re.compile(
        r"\b\d{1,2}[:.]\d{2}\b|\b\d{1,2}\s?(am|pm)\b|\b\d{1,2}°?\s+(gennaio|febbraio|marzo|aprile|maggio|giugno|luglio|"
        r"agosto|settembre|ottobre|novembre|dicembre|january|february|march|april|may|june|july|august|september|"
        r"october|november|december)\b",
        re.IGNORECASE,
    ),
}


_CREDITED_WORDS: dict[str, frozenset[str]] = {
    "price": _PRICE_WORDS,
    "phone": _PHONE_WORDS,
    "email": _EMAIL_WORDS | {"address", "indirizzo"},  # "email address": not a place
}


def asked_for(tokens: Sequence[str]) -> str | None:
    """ "price" for "quanto costa", "how much"; "time" for "a che ora", "opening hours"; else None."""
    pairs = set(itertools.pairwise(tokens))
    if _PRICE_WORDS & set(tokens) or ("how", "much") in pairs or ("quanto", "si") in pairs:
        return "price"
    if _EMAIL_WORDS & set(tokens):
        return "email"
    if _PHONE_WORDS & set(tokens):
        return "phone"
    if _TIME_WORDS & set(tokens) or ("che", "ora") in pairs or ("what", "time") in pairs:
        return "time"
    if {"quando", "when"} & set(tokens):
        return "when"
    return None


_HYPHENATED = re.compile(r"\b(\w+)-(\w+)\b")
_CAPITALISED_WORD = re.compile(r"^[\"'(«“]?[A-ZÀ-Ý]")
_ORIGIN_WORDS = frozenset({"da", "dal", "dalla", "from", "via"})
"""An unknown place after these is where the customer starts from, not what they ask about."""


@dataclass(frozen=True, slots=True)
class Passage:
    """A ranked piece of the knowledge base, in the language it should be shown in."""

    article: Article
    language: str
    title: str
    text: str
    score: float
    """Raw BM25 score (unbounded; only for ranking and debugging)."""
    confidence: float
    """0..1: how well this passage answers the question."""
    index: int = 0
    """Which passage of the article (0 for a short article, shown whole)."""


@dataclass(frozen=True, slots=True)
class _Term:
    candidates: tuple[tuple[str, float], ...]
    """Index terms this question word may stand for, with a weight in (0, 1]."""
    importance: float
    """How much this word matters when judging coverage (idf-like)."""


@dataclass(frozen=True, slots=True)
class _Unit:
    """An indexed passage: its article, language and text."""

    doc: int
    language: str
    index: int
    text: str


def _keys(token: str, languages: Iterable[str] = SUPPORTED_LANGUAGES) -> set[str]:
    return {f"{lang}:{stem(token, lang)}" for lang in languages}


_ENTRY_KEYS = frozenset(key for word in _ENTRY_WORDS for key in _keys(word))


def _index_tokens(text: str) -> list[str]:
    """Tokens to index: hyphenated words whole ("wifi") as well as in parts ("wi", "fi")."""
    joined = [a + b for a, b in _HYPHENATED.findall(normalize(text))]
    return [t for t in [*tokenize(text), *tokenize(" ".join(joined))] if t not in STOPWORDS and len(t) > 1]


def split_passages(body: str) -> list[str]:
    """A short body is one passage; a longer one, its paragraphs grouped to about PASSAGE_WORDS words."""
    if len(body.split()) <= SHORT_ARTICLE_WORDS:
        return [body]
    passages: list[str] = []
    current: list[str] = []
    size = 0
    for paragraph in (p.strip() for p in re.split(r"\n\s*\n", body)):
        if not paragraph:
            continue
        words = len(paragraph.split())
        if current and size + words > PASSAGE_WORDS:
            passages.append("\n\n".join(current))
            current, size = [], 0
        current.append(paragraph)
        size += words
    if current:
        passages.append("\n\n".join(current))
    return passages


class RetrievalIndex:
    """Precomputed index over one tenant's articles."""

    def __init__(
        self,
        articles: Sequence[Article],
        synonyms: Iterable[Sequence[str]] = (),
        default_language: str = "it",
        k1: float = 1.2,
        b: float = 0.5,
        cache_size: int = 50_000,
    ) -> None:
        self.articles: tuple[Article, ...] = tuple(articles)
        self.default_language = default_language
        self.units: list[_Unit] = []
        self._title_keys: list[frozenset[str]] = []
        corpus: list[list[str]] = []
        surface_keys: dict[str, set[str]] = {}
        surface_langs: dict[str, set[str]] = {}

        def keys_of(texts: Iterable[str], lang: str, dedupe: bool = False) -> list[str]:
            languages = SUPPORTED_LANGUAGES if lang == "*" or lang not in SUPPORTED_LANGUAGES else (lang,)
            result: list[str] = []
            seen: set[str] = set()
            for text in texts:
                tokens = _index_tokens(text)
                if dedupe:
                    # Listing "where", "where is it", "where are you" must not count "where" three times.
                    tokens = [t for t in dict.fromkeys(tokens) if t not in seen]
                    seen.update(tokens)
                for token in tokens:
                    keys = _keys(token, languages)
                    surface_keys.setdefault(token, set()).update(keys)
                    if lang != "*":
                        surface_langs.setdefault(token, set()).add(lang)
                    result += sorted(keys)
            return result

        for doc, article in enumerate(self.articles):
            tags = keys_of(article.tags, "*")
            for lang, body in article.body.items():
                head = keys_of([article.title.get(lang, "")], lang) * FIELD_REPEATS["title"]
                head += keys_of(article.keywords.get(lang, []), lang, dedupe=True) + tags
                title_keys = frozenset(keys_of([article.title.get(lang, "")], lang))
                for number, passage in enumerate(split_passages(body)):
                    self.units.append(_Unit(doc, lang, number, passage))
                    self._title_keys.append(title_keys)
                    corpus.append(head + keys_of([passage], lang))

        # Which passages state an amount or a time: they answer "how much" and "what time".
        self._shapes: dict[str, dict[int, int]] = {
            name: {i: n for i, unit in enumerate(self.units) if (n := len(shape.findall(unit.text)))}
            for name, shape in _ANSWER_SHAPES.items()
        }
        n_units = len(self.units)
        self._contrib: dict[str, dict[int, float]] = {}
        self._idf: dict[str, float] = {}
        # A knowledge base with no article yet (a tenant just created) matches nothing: every question
        # gets the "I don't know" answer. bm25s cannot index an empty corpus.
        vocabulary: dict[str, int] = {}
        if corpus:
            # bm25s computes every (term, passage) BM25 weight once; scoring then only adds them up.
            model = bm25s.BM25(method="lucene", k1=k1, b=b)
            model.index(corpus, show_progress=False)
            data, indices, indptr = (model.scores[name] for name in ("data", "indices", "indptr"))
            vocabulary = model.vocab_dict
        for key, column in vocabulary.items():
            if not key or column + 1 >= len(indptr):
                continue  # bm25s's padding token
            start, stop = int(indptr[column]), int(indptr[column + 1])
            if start == stop:
                continue
            self._contrib[key] = {int(u): float(v) for u, v in zip(indices[start:stop], data[start:stop], strict=True)}
            df = stop - start
            self._idf[key] = math.log(1 + (n_units - df + 0.5) / (df + 0.5))
        # A word the knowledge base has never seen weighs like a word found in a single passage.
        self._unknown_importance = math.log(1 + (max(n_units, 1) - 1 + 0.5) / 1.5)
        self._synonym_only: dict[str, set[str]] = {}
        synonyms = [*synonyms, *GENERIC_SYNONYMS]

        self._synonyms: dict[str, set[str]] = {}
        synonym_words: set[str] = set()
        for group in synonyms:
            group_tokens = [t for phrase in group for t in _index_tokens(phrase)]
            group_keys: set[str] = set()
            for token in group_tokens:
                group_keys |= {k for k in _keys(token) if k in self._contrib}
            for key in group_keys:
                self._synonyms.setdefault(key, set()).update(group_keys - {key})
            # A synonym no article uses is still a known word: it stands for the group's terms.
            for token in group_tokens:
                if token not in surface_keys and not (_keys(token) & group_keys):
                    synonym_words.add(token)
                    for key in _keys(token):
                        self._synonym_only.setdefault(key, set()).update(group_keys)
        self._surface_keys = {t: frozenset(k) for t, k in surface_keys.items()}
        self._ticket_keys = frozenset(k for word in _TICKET_WORDS for k in _keys(word) if k in self._contrib)
        self._vocabulary = FuzzyVocabulary([*surface_keys, *synonym_words, *_IGNORED])
        self.lexicon: dict[str, str] = {t: next(iter(ls)) for t, ls in surface_langs.items() if len(ls) == 1}
        """Words found in only one language of the articles: evidence for language detection."""
        self._cache: dict[str, _Term | None] = {}
        self._cache_size = cache_size

    def _resolve(self, token: str) -> _Term | None:
        """What a question word means to the index; None for words that carry no topic."""
        if token in self._cache:
            return self._cache[token]
        term = self._resolve_uncached(token)
        if len(self._cache) >= self._cache_size:
            self._cache.clear()
        self._cache[token] = term
        return term

    def _synonym_keys(self, token: str) -> set[str]:
        found: set[str] = set()
        for key in _keys(token):
            found |= self._synonym_only.get(key, set())
        return found

    def _resolve_uncached(self, token: str) -> _Term | None:
        if token in _IGNORED or len(token) < 2:
            return None
        if token.isdigit():
            return None  # "30" would match "22:30"; numbers are read by the policy, not retrieval
        weights: dict[str, float] = {}
        for key in _keys(token) | self._surface_keys.get(token, frozenset()):
            if key in self._contrib:
                weights[key] = 1.0
        if not weights:
            for key in self._synonym_keys(token):
                weights[key] = SYNONYM_WEIGHT
        if not weights:
            for word, similarity in self._vocabulary.lookup(token):
                if word in _IGNORED:
                    return None  # a misspelt function word ("qunto")
                for key in self._surface_keys.get(word, ()):
                    weights[key] = max(weights.get(key, 0.0), similarity * FUZZY_PENALTY)
                for key in self._synonym_keys(word):
                    weights[key] = max(weights.get(key, 0.0), similarity * FUZZY_PENALTY * SYNONYM_WEIGHT)
        importance = max((self._idf[k] for k in weights), default=self._unknown_importance)
        if token in QUESTION_WORDS:
            importance *= QUESTION_WORD_IMPORTANCE
        for key, weight in list(weights.items()):
            for synonym in self._synonyms.get(key, ()):
                if weights.get(synonym, 0.0) < weight * SYNONYM_WEIGHT:
                    weights[synonym] = weight * SYNONYM_WEIGHT
        return _Term(tuple(sorted(weights.items())), importance)

    def known(self, token: str) -> bool:
        """Whether a question word means something to this knowledge base (typos and synonyms included)."""
        term = self._resolve(token)
        return term is None or bool(term.candidates)

    def _question_tokens(self, text: str) -> list[str]:
        tokens = tokenize(text)
        for first, second in _HYPHENATED.findall(normalize(text)):
            # "wi-fi": the whole word when the knowledge base knows it, else its parts.
            whole = first + second
            if whole in self._surface_keys:
                tokens = [t for t in tokens if t not in (first, second)] + [whole]
        return tokens

    def origins(self, text: str) -> frozenset[str]:
        """Unknown words after "da", "from" ("come ci arrivo da Varese?"): where the customer starts
        from says nothing about what they ask, so it is neither a topic nor an unknown word."""
        found: set[str] = set()
        for previous, word in itertools.pairwise(text.split()):
            if normalize(previous) in _ORIGIN_WORDS:
                found.update(t for t in tokenize(word) if not self.known(t))
        return frozenset(found)

    def unknown_names(self, text: str, ignore: frozenset[str] = frozenset()) -> list[str]:
        """Capitalised words inside a sentence that the knowledge base does not know: another place,
        event or product ("Torino", "Scala", "Picasso"), so the question is not about this business."""
        names = []
        words = text.split()
        for previous, word in itertools.pairwise(words):
            if not _CAPITALISED_WORD.match(word):
                continue
            if previous[-1] in ".!?" or normalize(previous) in _ORIGIN_WORDS:
                continue  # a sentence's first word, or where the customer comes from ("da Varese")
            for token in tokenize(word):
                if token not in ignore and len(token) >= MIN_UNKNOWN_LENGTH and not self.known(token):
                    names.append(token)
        return names

    def _as_ticket(self, token: str, term: _Term) -> _Term:
        """An entry word of a price question ("ingresso", "admission") means the ticket: a passage
        naming the ticket explains it fully, one naming only the entrance no more than a synonym."""
        if not _keys(token) & _ENTRY_KEYS:
            return term
        weights = {key: min(weight, SYNONYM_WEIGHT) for key, weight in term.candidates}
        weights.update(dict.fromkeys(self._ticket_keys, 1.0))
        return _Term(tuple(sorted(weights.items())), term.importance)

    def search(
        self, text: str, language: str | None = None, k: int = 3, ignore: frozenset[str] = frozenset()
    ) -> list[Passage]:
        """The best `k` passages for a question, best first, shown in `language` when available.

        `ignore`: words to leave out, e.g. the ones that only express the customer's mood.
        """
        terms: dict[str, _Term] = {}
        unknown = 0
        tokens = self._question_tokens(text)
        ignore = ignore | self.origins(text)
        wanted = asked_for(tokens)
        for token in tokens:
            if token not in terms and token not in ignore:
                term = self._resolve(token)
                if term is None:
                    continue
                if term.candidates:
                    terms[token] = term
                elif (
                    len(token) >= MIN_UNKNOWN_LENGTH
                    and not token.isdigit()
                    and token not in QUESTION_WORDS
                    # "How much for a family of four?": the price list answers it, family tickets or not.
                    and not (wanted == "price" and token in PARTY_WORDS)
                ):
                    unknown += 1  # the question asks about something the passages never mention
        if not terms:
            return []
        if wanted == "price" and self._ticket_keys:
            terms = {token: self._as_ticket(token, term) for token, term in terms.items()}
        scores: dict[int, float] = {}
        matched: dict[int, float] = {}
        # Words that only say which kind of fact is wanted ("costa", "phone"): a passage stating such a
        # fact explains them (as much as a synonym would: "chiude" still prefers a text saying "chiuso").
        type_words = _CREDITED_WORDS.get(wanted or "", frozenset())
        shaped = self._shapes.get(wanted or "", {})
        typed = [(token, term) for token, term in terms.items() if token in type_words]
        if wanted is not None and not typed:
            # "how much", "a che ora": the kind of answer asked for stands as a word of the question.
            typed = [("", _Term((), self._unknown_importance * QUESTION_WORD_IMPORTANCE))]
            terms[""] = typed[0][1]
        title_hits: dict[int, int] = {}
        shortfall: dict[int, float] = {}  # per list of amounts: how much less than fully it explains
        on_topic: set[int] = set()  # passages that say one of the question's other words as written
        total_importance = unknown * self._unknown_importance * UNKNOWN_WEIGHT
        for token, term in terms.items():
            total_importance += term.importance
            best: dict[int, tuple[float, float]] = {}
            for key, weight in term.candidates:
                for unit, contribution in self._contrib.get(key, {}).items():
                    value = weight * contribution
                    if value > best.get(unit, (0.0, 0.0))[0]:
                        best[unit] = (value, weight)
                    if key in self._title_keys[unit] and weight == 1.0:
                        title_hits[unit] = title_hits.get(unit, 0) + 1
            if wanted is not None and token in type_words | {""}:
                # A passage stating an amount answers "quanto costa" even if it never says "costa"; a
                # list of amounts (a price list) a little more than a passing one.
                for unit, count in shaped.items():
                    credit = term.importance * SHAPE_CREDIT * min(count, LIST_LENGTH) / LIST_LENGTH
                    value, weight = best.get(unit, (0.0, 0.0))
                    if credit > value:
                        # The credit raises the score; the word stays explained at least as well
                        # as the passage's own words explain it (a price list that says "cost").
                        best[unit] = (credit, max(weight, SYNONYM_WEIGHT))
                        if count >= LIST_LENGTH:
                            shortfall[unit] = term.importance * (1.0 - max(weight, SYNONYM_WEIGHT))
            else:
                on_topic.update(unit for unit, (_, weight) in best.items() if weight == 1.0)
            for unit, (value, weight) in best.items():
                scores[unit] = scores.get(unit, 0.0) + value
                matched[unit] = matched.get(unit, 0.0) + term.importance * weight
        # A list of amounts about what is asked (a price list that names the ticket) explains the
        # kind of fact wanted as fully as saying it would: "Quanto costa il biglietto?" prefers it
        # to a passage that says "costa" once, about a guided tour.
        for unit, missing in shortfall.items():
            if unit in on_topic:
                matched[unit] += missing
        if not scores:
            return []
        language = language or self.default_language
        foreign = 0.0 if self.unknown_names(text, ignore) else 1.0
        penalty = foreign * UNKNOWN_FACTOR**unknown

        def confidence_of(unit: int) -> float:
            coverage = matched[unit] / total_importance if total_importance else 0.0
            confidence = coverage * (1.0 - math.exp(-scores[unit] / SCORE_SCALE)) * penalty
            if wanted in _CREDITED_WORDS and unit not in shaped:
                confidence *= UNKNOWN_FACTOR  # "how much is the ferry?" and the text names no amount
            return max(0.0, min(1.0, confidence))

        confidences = {unit: confidence_of(unit) for unit in scores}

        def rank(unit: int) -> tuple[float, float]:
            # How much of the question a passage explains ranks first, its BM25 score breaks ties; a
            # passage in the customer's language (or of an article written in it) wins a near tie.
            factor = 1.0 if language in self.articles[self.units[unit].doc].body else OTHER_LANGUAGE
            # Question words in the title (a FAQ's question, a section's heading) count a little more.
            factor *= 1.0 + TITLE_BONUS * title_hits.get(unit, 0)
            return confidences[unit] * factor, scores[unit] * factor

        passages: list[Passage] = []
        seen: set[int] = set()
        for unit in sorted(scores, key=lambda u: (*(-x for x in rank(u)), u)):
            entry = self.units[unit]
            if entry.doc in seen:
                continue  # one passage per article: the best one
            seen.add(entry.doc)
            article = self.articles[entry.doc]
            lang = article.pick_language(language, self.default_language)
            body = article.body[lang]
            parts = split_passages(body)
            shown = parts[entry.index] if lang == entry.language and entry.index < len(parts) else body
            passages.append(
                Passage(article, lang, article.title[lang], shown, scores[unit], confidences[unit], entry.index)
            )
            if len(passages) == k:
                break
        return passages
