"""A small BM25 index over knowledge-base articles, built for short bilingual customer questions.

Design choices, all aimed at a few microseconds of work per question:

* An article is one document whose fields (titles, keywords, tags, bodies) in every language are
  indexed together, so an English question finds an article through its English keywords and the
  answer is then shown in whichever language the customer writes.
* Terms are language-tagged Snowball stems (`it:bigliett`, `en:ticket`); a question's words are
  stemmed both ways since its language is only a guess.
* Words not in the index are corrected against the index's vocabulary with a symmetric-delete
  typo index (see `text.FuzzyVocabulary`), then expanded with the tenant's synonym groups; each
  resolution is memoised per token.
* BM25 contributions are precomputed per (term, article), so scoring is a sum of look-ups.
* Confidence in 0..1 is how much of the question the article explains (share of the question's
  informative weight, idf-weighted, that the article matches) times a saturating function of the
  BM25 score, so one common word ("parco") cannot make a confident answer and unknown words
  ("benzina") pull the confidence down.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from ai_responder.kb import Article
from ai_responder.text import STOPWORDS, SUPPORTED_LANGUAGES, FuzzyVocabulary, stem, tokenize

FIELD_WEIGHTS: dict[str, float] = {"title": 2.0, "keywords": 2.0, "tags": 1.5, "body": 1.0}
FUZZY_PENALTY = 0.9
"""A typo-corrected word counts a little less than a correctly spelt one."""
SYNONYM_WEIGHT = 0.7
SCORE_SCALE = 1.5
"""BM25 score at which the saturation factor reaches 1 - 1/e."""


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


@dataclass(frozen=True, slots=True)
class _Term:
    candidates: tuple[tuple[str, float], ...]
    """Index terms this question word may stand for, with a weight in (0, 1]."""
    importance: float
    """How much this word matters when judging coverage (idf-like)."""


def _keys(token: str, languages: Iterable[str] = SUPPORTED_LANGUAGES) -> set[str]:
    return {f"{lang}:{stem(token, lang)}" for lang in languages}


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
        if not articles:
            raise ValueError("cannot index an empty knowledge base")
        self.articles: tuple[Article, ...] = tuple(articles)
        self.default_language = default_language
        n_docs = len(self.articles)
        tf: list[dict[str, float]] = [{} for _ in self.articles]
        lengths: list[float] = []
        surface_keys: dict[str, set[str]] = {}
        surface_langs: dict[str, set[str]] = {}

        for doc, article in enumerate(self.articles):
            fields: list[tuple[str, str, Iterable[str]]] = []
            for lang, title in article.title.items():
                fields.append(("title", lang, [title]))
            for lang, words in article.keywords.items():
                fields.append(("keywords", lang, words))
            for lang, body in article.body.items():
                fields.append(("body", lang, [body]))
            fields.append(("tags", "*", article.tags))
            length = 0.0
            for field, lang, texts in fields:
                weight = FIELD_WEIGHTS[field]
                languages = SUPPORTED_LANGUAGES if lang == "*" or lang not in SUPPORTED_LANGUAGES else (lang,)
                seen: set[str] = set()
                for text in texts:
                    tokens = [t for t in tokenize(text) if t not in STOPWORDS and len(t) > 1 and not t.isdigit()]
                    if field == "keywords":
                        # Listing "where", "where is it", "where are you" must not count "where" three times.
                        tokens = [t for t in dict.fromkeys(tokens) if t not in seen]
                        seen.update(tokens)
                    # A keyword phrase's words share its weight: "servizio navetta" is about the shuttle,
                    # "servizio" alone is not.
                    token_weight = weight / len(tokens) if field == "keywords" and tokens else weight
                    for token in tokens:
                        keys = _keys(token, languages)
                        surface_keys.setdefault(token, set()).update(keys)
                        if lang != "*":
                            surface_langs.setdefault(token, set()).add(lang)
                        for key in keys:
                            tf[doc][key] = tf[doc].get(key, 0.0) + token_weight
                        length += token_weight
            lengths.append(length)

        avg_length = sum(lengths) / n_docs
        df: dict[str, int] = {}
        for doc_tf in tf:
            for key in doc_tf:
                df[key] = df.get(key, 0) + 1
        self._idf = {key: math.log(1 + (n_docs - d + 0.5) / (d + 0.5)) for key, d in df.items()}
        # A word the knowledge base has never seen weighs like a word found in a single article.
        self._unknown_importance = math.log(1 + (n_docs - 1 + 0.5) / 1.5)
        self._contrib: dict[str, dict[int, float]] = {}
        self._synonym_only: dict[str, set[str]] = {}
        for doc, doc_tf in enumerate(tf):
            norm = k1 * (1 - b + b * lengths[doc] / avg_length)
            for key, freq in doc_tf.items():
                self._contrib.setdefault(key, {})[doc] = self._idf[key] * freq * (k1 + 1) / (freq + norm)

        self._synonyms: dict[str, set[str]] = {}
        synonym_words: set[str] = set()
        for group in synonyms:
            group_tokens = [t for phrase in group for t in tokenize(phrase) if t not in STOPWORDS and len(t) > 1]
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
        self._vocabulary = FuzzyVocabulary([*surface_keys, *synonym_words, *STOPWORDS])
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
        if token in STOPWORDS or len(token) < 2:
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
                if word in STOPWORDS:
                    return None  # a misspelt function word ("qunto")
                for key in self._surface_keys.get(word, ()):
                    weights[key] = max(weights.get(key, 0.0), similarity * FUZZY_PENALTY)
                for key in self._synonym_keys(word):
                    weights[key] = max(weights.get(key, 0.0), similarity * FUZZY_PENALTY * SYNONYM_WEIGHT)
        importance = max((self._idf[k] for k in weights), default=self._unknown_importance)
        for key, weight in list(weights.items()):
            for synonym in self._synonyms.get(key, ()):
                if weights.get(synonym, 0.0) < weight * SYNONYM_WEIGHT:
                    weights[synonym] = weight * SYNONYM_WEIGHT
        return _Term(tuple(sorted(weights.items())), importance)

    def search(
        self, text: str, language: str | None = None, k: int = 3, ignore: frozenset[str] = frozenset()
    ) -> list[Passage]:
        """The best `k` passages for a question, best first, shown in `language` when available.

        `ignore`: words to leave out, e.g. the ones that only express the customer's mood.
        """
        terms: dict[str, _Term] = {}
        for token in tokenize(text):
            if token not in terms and token not in ignore:
                term = self._resolve(token)
                if term is not None:
                    terms[token] = term
        if not terms:
            return []
        scores: dict[int, float] = {}
        matched: dict[int, float] = {}
        total_importance = 0.0
        for term in terms.values():
            total_importance += term.importance
            best: dict[int, tuple[float, float]] = {}
            for key, weight in term.candidates:
                for doc, contribution in self._contrib.get(key, {}).items():
                    value = weight * contribution
                    if value > best.get(doc, (0.0, 0.0))[0]:
                        best[doc] = (value, weight)
            for doc, (value, weight) in best.items():
                scores[doc] = scores.get(doc, 0.0) + value
                matched[doc] = matched.get(doc, 0.0) + term.importance * weight
        ranked = sorted(scores.items(), key=lambda item: (-item[1], item[0]))[:k]
        language = language or self.default_language
        passages = []
        for doc, score in ranked:
            coverage = matched[doc] / total_importance if total_importance else 0.0
            confidence = max(0.0, min(1.0, coverage * (1.0 - math.exp(-score / SCORE_SCALE))))
            article = self.articles[doc]
            lang = article.pick_language(language, self.default_language)
            passages.append(Passage(article, lang, article.title[lang], article.body[lang], score, confidence))
        return passages
