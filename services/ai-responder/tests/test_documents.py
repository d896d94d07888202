"""Plain documents to articles: Markdown, plain text, a saved web page and a PDF, parsed for real."""

from __future__ import annotations

from pathlib import Path

import pytest

from ai_responder.documents import DocumentError, document_articles, html_to_markdown, sections_of

DOCUMENTS = Path(__file__).resolve().parents[1] / "kb" / "museo-del-vetro" / "documents"


def test_markdown_faq_becomes_one_article_per_question() -> None:
    articles = document_articles("faq.it.md", (DOCUMENTS / "faq.it.md").read_bytes())
    by_id = {a.id: a for a in articles}
    hours = by_id["faq-it-quando-e-aperto-il-museo"]
    assert hours.title == {"it": "Quando è aperto il museo?"}
    assert "dalle 10:00 alle 18:00" in hours.body["it"]
    assert hours.tags == ["Domande frequenti"]  # the heading above it
    assert hours.source == "documents/faq.it.md"
    assert not hours.keywords
    assert all(a.languages == ("it",) for a in articles)


def test_the_language_is_detected_per_section_when_the_name_does_not_say() -> None:
    text = "# Orari\nIl museo è aperto dal martedì alla domenica.\n\n# Opening hours\nThe museum is open every day.\n"
    articles = document_articles("pagina.md", text.encode())
    assert [(a.id, a.languages) for a in articles] == [("pagina-orari", ("it",)), ("pagina-opening-hours", ("en",))]


def test_plain_text_headings_are_guessed() -> None:
    text = (
        "Parcheggio\nIl parcheggio pubblico è a 200 metri e costa 1,50 € l'ora, mentre la domenica\n"
        "è gratuito per tutti.\n\nPosso portare il cane?\nSolo i cani guida.\n"
    )
    sections = sections_of("info.txt", text.encode())
    assert [s.title for s in sections] == ["Parcheggio", "Posso portare il cane?"]
    assert "domenica\nè gratuito" in sections[0].text  # a wrapped line is not a heading


def test_a_saved_web_page_loses_navigation_scripts_and_banners() -> None:
    markdown, title = html_to_markdown((DOCUMENTS / "mostre-e-visite.html").read_text(encoding="utf-8"))
    assert title == "Mostre, visite guidate e laboratori | Museo del Vetro"
    assert "## Visite guidate" in markdown
    assert "Trasparenze. Vetro di Murano del Novecento" in markdown
    for boilerplate in ("cookie", "dataLayer", "Newsletter", "P.IVA", "Contatti", "Home"):
        assert boilerplate not in markdown, boilerplate


def test_a_pdf_is_read_with_its_sections_in_both_languages() -> None:
    articles = document_articles("tariffe-e-regolamento.pdf", (DOCUMENTS / "tariffe-e-regolamento.pdf").read_bytes())
    by_id = {a.id: a for a in articles}
    assert "Intero: 10 €." in by_id["tariffe-e-regolamento-biglietti"].body["it"]
    assert "Full price: €10." in by_id["tariffe-e-regolamento-tickets"].body["en"]
    assert by_id["tariffe-e-regolamento-rimborsi"].languages == ("it",)
    assert by_id["tariffe-e-regolamento-refunds"].languages == ("en",)


@pytest.mark.parametrize(
    ("filename", "data", "message"),
    [
        ("a.docx", b"PK..", "unsupported document type"),
        ("a.pdf", b"hello", "not a PDF"),
        ("a.pdf", b"%PDF-1.4\n1 0 obj garbage", "PDF"),
        ("a.md", b"", "empty"),
        ("a.html", b"just text, no markup", "not an HTML page"),
        ("a.en.md", b"# Hi\ntext", None),
    ],
)
def test_bad_documents_are_refused_with_a_reason(filename: str, data: bytes, message: str | None) -> None:
    if message is None:
        assert document_articles(filename, data)[0].languages == ("en",)
        return
    with pytest.raises(DocumentError, match=message):
        document_articles(filename, data)
