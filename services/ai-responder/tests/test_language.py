import pytest

from ai_responder.language import detect_language


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Quanto costa il biglietto?", "it"),
        ("A che ora aprite?", "it"),
        ("c'è la navetta sabato?", "it"),
        ("perché è chiuso", "it"),
        ("How much is a ticket?", "en"),
        ("What time do you open?", "en"),
        ("I'm really angry about the parking", "en"),
        ("Where can I park my car?", "en"),
        ("Is there a shuttle bus?", "en"),
    ],
)
def test_detects(text: str, expected: str) -> None:
    assert detect_language(text).language == expected


def test_unsure_falls_back_to_hint_then_default() -> None:
    assert detect_language("ok", default="it").language == "it"
    assert detect_language("ok", default="it", hint="en").language == "en"
    assert detect_language("Leggiuno?", default="en").language == "en"
    assert not detect_language("ok").confident


def test_lexicon_settles_terse_texts() -> None:
    assert detect_language("navetta", default="en", lexicon={"navetta": "it"}).language == "it"
    assert detect_language("shuttle", default="it", lexicon={"shuttle": "en"}).language == "en"


def test_strong_evidence_beats_hint() -> None:
    assert detect_language("Where is the park and how much is it?", hint="it").language == "en"
    assert detect_language("Dove si trova il parco e quanto costa?", hint="en").language == "it"
