"""Italian or English? A cheap evidence count for the short texts customers type in a chat widget.

Statistical detectors are unreliable on five words; here each token votes through lists of words
that belong to one language only, plus a few spelling habits (accented vowels, "-zione", "-ing").
A tenant's own vocabulary (words that occur only in its Italian or only in its English articles)
can be added as extra evidence, which settles texts like "ticket price?" or "orari parcheggio".
When the evidence is thin or balanced, the answer is the hint (e.g. the conversation's language
so far) or the tenant's default language.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass

from ai_responder.text import tokenize, word_set

# Words that are frequent in one language and (practically) absent from the other.
_IT_MARKERS = word_set(
    """
    il lo la gli le un una uno di del dello della dei degli delle al allo alla ai agli alle dal dalla
    dai nel nella nei nelle sul sulla con per che chi non ci sono siete sei e ed ma anche come dove
    quando quanto quanta quanti quante quale quali perche cosa posso potete vorrei voglio volevo mi ti
    si vi questo questa quello quella ciao buongiorno buonasera salve grazie prego biglietto biglietti
    orari orario aperto aperti chiuso parcheggio prezzo prezzi costa costano bambini bambino ingresso
    oggi domani sera giorno fino dopo prima ancora gia molto tutto tutti nostro vostro mio suo ho hai ha
    abbiamo avete hanno fare sapere serve bisogno qualcuno aiuto favore scusate scusa dov quanto c l
    """
)
_EN_MARKERS = word_set(
    """
    the an of to on at by for with from is are was were be been do does did have has had will would can
    could should may might must what which who when where why how much many this that these those there
    here i you your my we our they their it its he she not yes please thanks thank hello hi hey ticket
    tickets price prices cost opening hours parking kids children free buy book booking want need get
    know tell talk speak someone somebody anyone time today tomorrow evening about any s t don doesn isn
    aren phone number address
    """
)
_ACCENTED_IT = re.compile(r"[àèéìíòóù]")
_IT_SUFFIX = re.compile(r"(zione|zioni|mente|ggio|ggi|cch|gli|tti|tto|ssi|sso|ette|etti)$")
_EN_SUFFIX = re.compile(r"(ing|tion|ould|ght|th|ly|ness|ed)$")


@dataclass(frozen=True, slots=True)
class LanguageGuess:
    language: str
    confident: bool
    scores: tuple[tuple[str, float], ...]


def detect_language(
    text: str,
    default: str = "it",
    hint: str | None = None,
    lexicon: Mapping[str, str] | None = None,
    margin: float = 1.0,
) -> LanguageGuess:
    """Guess "it" or "en" for a short text.

    `hint` (e.g. the language of the conversation so far) wins when the text is not conclusive;
    `default` (the tenant's default language) is used when there is no hint either.
    """
    scores = {"it": 0.0, "en": 0.0}
    if _ACCENTED_IT.search(unicodedata.normalize("NFC", text.lower())):
        scores["it"] += 1.0
    if re.search(r"\b\w+'s\b|n't\b|\bi'm\b|\bi've\b", text.lower()):
        scores["en"] += 1.5
    for token in tokenize(text):
        in_it = token in _IT_MARKERS
        in_en = token in _EN_MARKERS
        if in_it and not in_en:
            scores["it"] += 1.0
        elif in_en and not in_it:
            scores["en"] += 1.0
        elif lexicon is not None and token in lexicon and lexicon[token] in scores:
            scores[lexicon[token]] += 0.75
        elif len(token) > 4:
            if _IT_SUFFIX.search(token):
                scores["it"] += 0.25
            elif _EN_SUFFIX.search(token):
                scores["en"] += 0.25
            elif token[-1] in "aeiou":
                scores["it"] += 0.1
    ranked = sorted(scores.items(), key=lambda item: -item[1])
    (best, best_score), (_, second_score) = ranked[0], ranked[1]
    confident = best_score - second_score >= margin
    if not confident:
        fallback = hint if hint in scores else default
        # Without a hint, half a word's worth of evidence still counts: short texts rarely give more.
        language = best if best_score - second_score >= margin / 2 and hint not in scores else fallback
    else:
        language = best
    return LanguageGuess(language=language, confident=confident, scores=tuple(ranked))
