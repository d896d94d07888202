"""Text primitives shared by retrieval, language detection and the handoff policy.

Everything here is pure and precomputed at import or load time, so that a query costs a handful of
dictionary look-ups rather than scans over the vocabulary.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from functools import lru_cache

import snowballstemmer
from rapidfuzz.distance import OSA

SUPPORTED_LANGUAGES: tuple[str, ...] = ("it", "en")

_TOKEN_RE = re.compile(r"[a-z0-9]+")
_STEMMERS = {"it": snowballstemmer.stemmer("italian"), "en": snowballstemmer.stemmer("english")}


def word_set(text: str) -> frozenset[str]:
    return frozenset(text.split())


# Function words and conversational filler: they carry no topic, so they are neither indexed nor
# counted when measuring how much of a question the knowledge base explains.
STOPWORDS_IT: frozenset[str] = word_set(
    """
    a ad al allo ai agli all alla alle con col coi da dal dallo dai dagli dall dalla dalle di del dello
    dei degli dell della delle in nel nello nei negli nell nella nelle su sul sullo sui sugli sull sulla
    sulle per tra fra il lo la i gli le l un uno una e ed o od ma se che chi cui non ne ci vi si mi ti
    me te lui lei noi voi loro mio mia miei mie tuo tua tuoi tue suo sua suoi sue nostro nostra nostri
    nostre vostro vostra vostri vostre questo questa questi queste quello quella quelli quelle quel quei
    qui qua li la gia ancora anche pure solo come quale quali perche cosa cos qual sono sei e siamo
    siete era erano sara essere stato stata c ce ho hai ha abbiamo avete hanno avere avrei posso puoi
    puo possiamo potete possono potrei potreste vorrei vorremmo voglio vuoi vogliamo volevo devo devi
    deve dobbiamo dovete serve servono bisogna sapere sapete sai so dire dite dici dirmi sapreste fare
    fa faccio fai facciamo fanno fate dimmi dammi ditemi parlare parlo servizio info informazione
    informazioni domanda chiedere chiedo grazie prego ciao salve buongiorno buonasera buon per favore
    favore cortesia gentilmente scusate scusa ok okay si no ecco allora poi quindi tipo molto poco tutto
    tutti tutte tutta piu meno bene ogni altro altra altri altre mai sempre gia adesso oggi domani ieri
    essere nostro qualche qualcosa cio
    """
)
STOPWORDS_EN: frozenset[str] = word_set(
    """
    a an the and or but if of to in on at by for with from into about as than then so too very i me my
    mine we us our ours you your yours he him his she her hers it its they them their theirs this that
    these those there here what which who whom whose why how is are was were be been being am do does
    did doing done have has had having will would shall should can could may might must need needs want
    wants wanted like s t don doesn didn isn aren wasn please thanks thank hello hi hey ok okay yes no
    not any some all each every more most many tell know let get got also just still again ever only
    really quite talk speak service hi dear sir madam question info information ask asking wondering
    today tomorrow now
    """
)
STOPWORDS: frozenset[str] = STOPWORDS_IT | STOPWORDS_EN


def normalize(text: str) -> str:
    """Lower-case and strip accents ("Perché" -> "perche"), so that typing without accents still matches."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


def tokenize(text: str) -> list[str]:
    """Accent-free lower-case word tokens; apostrophes split ("l'ingresso" -> "l", "ingresso")."""
    return _TOKEN_RE.findall(normalize(text))


# An Italian superlative ("arrabbiatissimo", "bellissime") means what its base word means, and
# Snowball's Italian stemmer leaves the suffix on: the base form is stemmed instead.
_ITALIAN_SUPERLATIVE = re.compile(r"^(\w{3,}?)issim[oaie]$")


@lru_cache(maxsize=65536)
def stem(token: str, language: str) -> str:
    """Snowball stem of an already normalised token (cached: the same words recur constantly)."""
    stemmer = _STEMMERS.get(language)
    if stemmer is None:
        return token
    if language == "it":
        token = _ITALIAN_SUPERLATIVE.sub(r"\1o", token)
    stemmed: str = stemmer.stemWord(token)
    return stemmed


def stems(token: str) -> frozenset[str]:
    """The token's stems in every supported language: a question's language is a guess, so try both."""
    return frozenset(stem(token, lang) for lang in SUPPORTED_LANGUAGES)


def max_edits(length: int) -> int:
    """How many typos a word of this length may carry and still be recognised."""
    if length < 4:
        return 0  # short words collide too easily ("va", "ma", "la")
    if length < 8:
        return 1
    return 2


def _deletes(word: str, depth: int) -> set[str]:
    """All strings reachable from `word` by deleting up to `depth` characters (SymSpell)."""
    result = {word}
    frontier = {word}
    for _ in range(depth):
        frontier = {w[:i] + w[i + 1 :] for w in frontier for i in range(len(w)) if len(w) > 1}
        result |= frontier
    return result


class FuzzyVocabulary:
    """Typo-tolerant look-up of a token in a fixed vocabulary.

    Uses the symmetric-delete scheme: every word's deletion variants are indexed once at load, so a
    look-up generates the token's own variants (a few dozen) and only verifies the few words that
    share one, with rapidfuzz's optimal-string-alignment distance (a swap of two letters is one typo).
    Results are memoised in a bounded cache because customers repeat the same misspellings.
    """

    def __init__(self, words: Iterable[str], cache_size: int = 50_000) -> None:
        self.word_set: frozenset[str] = frozenset(words)
        index: dict[str, set[str]] = {}
        for word in self.word_set:
            for variant in _deletes(word, max_edits(len(word))):
                index.setdefault(variant, set()).add(word)
        self._index: dict[str, tuple[str, ...]] = {k: tuple(sorted(v)) for k, v in index.items()}
        self._cache: dict[str, tuple[tuple[str, float], ...]] = {}
        self._cache_size = cache_size

    def __contains__(self, word: object) -> bool:
        return word in self.word_set

    def __len__(self) -> int:
        return len(self.word_set)

    def lookup(self, token: str) -> tuple[tuple[str, float], ...]:
        """Vocabulary words within the allowed edit distance, with a similarity in (0, 1], best first.

        An exact hit returns only itself. Fuzzy hits must share the first letter: real typos rarely
        touch it, and requiring it keeps "angry" from matching "hungry".
        """
        if token in self.word_set:
            return ((token, 1.0),)
        cached = self._cache.get(token)
        if cached is not None:
            return cached
        allowed = max_edits(len(token))
        found: dict[str, float] = {}
        if allowed:
            for variant in _deletes(token, allowed):
                for word in self._index.get(variant, ()):
                    if word in found or word[0] != token[0]:
                        continue
                    distance = OSA.distance(token, word, score_cutoff=allowed)
                    if distance <= allowed and distance <= max_edits(len(word)):
                        found[word] = 1.0 - distance / max(len(token), len(word))
        result = tuple(sorted(found.items(), key=lambda item: (-item[1], item[0])))
        if len(self._cache) >= self._cache_size:
            self._cache.clear()  # crude but bounded; a hot cache refills within seconds
        self._cache[token] = result
        return result
