"""Plain documents in, articles out: Markdown, plain text, HTML (a saved web page) and PDF.

A tenant does not have to write the article format of `kb.py`: it uploads its FAQ, a PDF or its
web pages, and each document becomes articles, one per section (a heading and the text under it).
The section's language is the document's when its name says it (`faq.en.md`) or the upload names
it, else it is detected from the section's text. An article id is the document's name and the
section's heading, slugged (`faq-en-opening-hours`), so uploading the same document again replaces
its articles instead of adding copies. Nothing here asks for keyword lists: retrieval reads the text.

Parsing is done by maintained libraries (pypdf for PDF, selectolax's lexbor parser for HTML);
what this module adds is turning their text into sections. Every problem is a `DocumentError`
(a `KBError`) with a message a tenant admin can act on.
"""

from __future__ import annotations

import io
import logging
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import PurePath

from pydantic import ValidationError
from pypdf import PdfReader
from pypdf.errors import PdfReadError
from selectolax.lexbor import LexborHTMLParser, LexborNode

from ai_responder.kb import Article, KBError, parse_article
from ai_responder.language import detect_language
from ai_responder.text import STOPWORDS, tokenize

__all__ = ["DOCUMENT_SUFFIXES", "MAX_DOCUMENT_BYTES", "DocumentError", "Section", "document_articles", "sections_of"]

logging.getLogger("pypdf").setLevel(logging.ERROR)  # its warnings about sloppy PDFs are not ours to log

DOCUMENT_SUFFIXES: frozenset[str] = frozenset({".md", ".markdown", ".txt", ".html", ".htm", ".pdf"})
MAX_DOCUMENT_BYTES = 10 * 1024 * 1024
MAX_ARTICLES_PER_DOCUMENT = 300
_LANG_SUFFIX_RE = re.compile(r"\.([a-z]{2})$")
_MD_HEADING_RE = re.compile(r"^(#{1,4})\s+(.+?)\s*#*\s*$")
_SLUG_RE = re.compile(r"[^a-z0-9]+")
# HTML that is never content: scripts, styles, navigation, page chrome, forms, cookie banners.
_BOILERPLATE = (
    "script, style, noscript, template, svg, iframe, nav, header, footer, aside, form, button, "
    "[role=navigation], [role=banner], [role=contentinfo], [aria-hidden=true], [hidden]"
)
_BOILERPLATE_HINT = re.compile(r"cookie|consent|breadcrumb|menu|navbar|sidebar|skip-link|share", re.IGNORECASE)
_HTML_BLOCKS = frozenset({"p", "li", "dt", "dd", "td", "th", "blockquote", "pre", "figcaption", "address"})
_HTML_HEADINGS = {"h1": 1, "h2": 2, "h3": 3, "h4": 4}


class DocumentError(KBError):
    """An uploaded document cannot be read or yields no article."""


@dataclass(frozen=True, slots=True)
class Section:
    """A heading and the text under it; `parents` are the headings above it (for context)."""

    title: str
    text: str
    parents: tuple[str, ...] = ()


def slug(text: str, limit: int = 60) -> str:
    ascii_text = unicodedata.normalize("NFKD", text.casefold()).encode("ascii", "ignore").decode()
    return _SLUG_RE.sub("-", ascii_text).strip("-")[:limit].strip("-")


def split_name(filename: str) -> tuple[str, str, str | None]:
    """(stem, suffix, language named in the file name): "faq.en.md" -> ("faq.en", ".md", "en")."""
    path = PurePath(filename)
    suffix = path.suffix.lower()
    stem = path.name[: -len(path.suffix)] if path.suffix else path.name
    match = _LANG_SUFFIX_RE.search(stem.lower())
    return stem, suffix, match.group(1) if match else None


# --------------------------------------------------------------------------- sections


def _markdown_sections(text: str, default_title: str) -> list[Section]:
    """Sections at every heading; a heading directly followed by a deeper one only gives context."""
    sections: list[Section] = []
    stack: list[tuple[int, str]] = []
    title, buffer = default_title, list[str]()
    parents: tuple[str, ...] = ()
    in_code = False

    def flush() -> None:
        body = "\n".join(buffer).strip()
        if body:
            sections.append(Section(title, body, parents))

    for line in text.splitlines():
        if line.strip().startswith("```"):
            in_code = not in_code
        match = None if in_code else _MD_HEADING_RE.match(line)
        if match is None:
            buffer.append(line)
            continue
        flush()
        level, heading = len(match.group(1)), _strip_markup(match.group(2))
        while stack and stack[-1][0] >= level:
            stack.pop()
        parents = tuple(h for _, h in stack)
        stack.append((level, heading))
        title, buffer = heading, []
    flush()
    return sections


def _strip_markup(text: str) -> str:
    return re.sub(r"[*_`]+", "", text).strip()


_SENTENCE_END = re.compile(r"[.;,:!…)\]»\"']$")


def _looks_like_heading(line: str, following: str | None) -> bool:
    """A short line that does not end a sentence and opens on a capital ("Orari di apertura"), or a
    question ("Posso portare il cane?") followed by text: the headings of a FAQ written as plain text
    or printed to PDF."""
    stripped = line.strip()
    if not stripped or following is None or not following.strip() or len(stripped) > 90:
        return False
    if stripped.endswith("?"):
        return True
    if len(stripped) > 60 or _SENTENCE_END.search(stripped) or stripped.startswith(("-", "•", "*")):
        return False
    words = tokenize(stripped)
    if len(words) > 8 or (words and words[-1] in STOPWORDS):
        return False  # a line of a wrapped paragraph ("... or online at"), not a heading
    first = stripped[0]
    return first.isupper() or (first.isdigit() and stripped.split(maxsplit=1)[0].rstrip(".").isdigit())


def _plain_sections(text: str, default_title: str) -> list[Section]:
    """Plain text (and PDF text): headings are guessed line by line, see `_looks_like_heading`."""
    lines = [line.rstrip() for line in text.splitlines()]
    sections: list[Section] = []
    title, buffer = default_title, list[str]()
    for i, line in enumerate(lines):
        following = next((candidate for candidate in lines[i + 1 :] if candidate.strip()), None)
        previous_blank_or_sentence = not buffer or not buffer[-1].strip() or bool(_SENTENCE_END.search(buffer[-1]))
        if previous_blank_or_sentence and _looks_like_heading(line, following):
            body = "\n".join(buffer).strip()
            if body:
                sections.append(Section(title, body))
            title, buffer = line.strip(), []
        else:
            buffer.append(line)
    body = "\n".join(buffer).strip()
    if body:
        sections.append(Section(title, body))
    return sections


def _node_text(node: LexborNode) -> str:
    return " ".join((node.text(deep=True, separator=" ") or "").split())


def html_to_markdown(html: str) -> tuple[str, str]:
    """The page's main text as Markdown headings and paragraphs, and its <title>; boilerplate dropped."""
    tree = LexborHTMLParser(html)
    title_node = tree.css_first("title")
    page_title = _node_text(title_node) if title_node is not None else ""
    for node in tree.css(_BOILERPLATE):
        node.decompose()
    for node in tree.css("[class], [id]"):
        marker = f"{node.attributes.get('class') or ''} {node.attributes.get('id') or ''}"
        if _BOILERPLATE_HINT.search(marker) and node.tag not in ("body", "main", "article", "html"):
            node.decompose()
    root = tree.css_first("main") or tree.css_first("article") or tree.css_first("[role=main]") or tree.body
    if root is None:
        return "", page_title
    lines: list[str] = []
    for node in root.traverse(include_text=False):
        tag = node.tag or ""
        if tag in _HTML_HEADINGS:
            text = _node_text(node)
            if text:
                lines += ["", "#" * _HTML_HEADINGS[tag] + " " + text, ""]
        elif tag in _HTML_BLOCKS:
            # A block nested in another block (a <p> inside an <li>) is read with its parent.
            parent = node.parent
            nested = False
            while parent is not None and parent is not root:
                if parent.tag in _HTML_BLOCKS:
                    nested = True
                    break
                parent = parent.parent
            text = _node_text(node)
            if text and not nested:
                lines.append(f"- {text}" if tag == "li" else text)
                if tag not in ("li", "td", "th", "dt"):
                    lines.append("")
    return "\n".join(lines), page_title


def pdf_text(data: bytes) -> str:
    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted:
            raise DocumentError("the PDF is password-protected: upload an unprotected copy")
        return "\n".join(page.extract_text() or "" for page in reader.pages)
    except DocumentError:
        raise
    except (PdfReadError, ValueError, KeyError, TypeError, OSError) as exc:
        raise DocumentError(f"not a readable PDF ({exc.__class__.__name__}: {exc})") from exc


def _decode(data: bytes, filename: str) -> str:
    for encoding in ("utf-8-sig", "cp1252"):
        try:
            text = data.decode(encoding)
        except UnicodeDecodeError:
            continue
        if "\x00" in text:
            break
        return text
    raise DocumentError(f"{filename}: not a text file (expected UTF-8 Markdown, text or HTML)")


def sections_of(filename: str, data: bytes) -> list[Section]:
    """The sections of a document, by its kind (the file name's extension)."""
    stem, suffix, _ = split_name(filename)
    if suffix not in DOCUMENT_SUFFIXES:
        raise DocumentError(
            f"{filename}: unsupported document type {suffix or '(none)'}; upload Markdown, text, HTML or PDF"
        )
    if not data.strip():
        raise DocumentError(f"{filename}: the document is empty")
    if len(data) > MAX_DOCUMENT_BYTES:
        raise DocumentError(f"{filename}: larger than {MAX_DOCUMENT_BYTES // (1024 * 1024)} MiB")
    default_title = stem.rsplit(".", 1)[0].replace("-", " ").replace("_", " ").strip().capitalize()
    if suffix == ".pdf":
        if not data.startswith(b"%PDF-"):
            raise DocumentError(f"{filename}: not a PDF file (it does not start with %PDF-)")
        return _plain_sections(pdf_text(data), default_title)
    text = _decode(data, filename)
    if suffix in (".html", ".htm"):
        if "<" not in text:
            raise DocumentError(f"{filename}: not an HTML page")
        markdown, page_title = html_to_markdown(text)
        return _markdown_sections(markdown, page_title or default_title)
    if suffix == ".txt":
        return _plain_sections(text, default_title)
    return _markdown_sections(text, default_title)


# --------------------------------------------------------------------------- articles


def document_articles(
    filename: str,
    data: bytes,
    languages: Sequence[str] = ("it", "en"),
    default_language: str = "it",
    language: str | None = None,
) -> list[Article]:
    """The articles of one uploaded document (see the module's docstring).

    A Markdown file in the article format of `kb.py` (front matter and `::: xx` blocks) is read as
    that one article, so a tenant can mix hand-written articles with plain documents.
    """
    stem, suffix, named_language = split_name(filename)
    if suffix in (".md", ".markdown") and data.lstrip().startswith(b"---"):
        text = _decode(data, filename)
        return [parse_article(text, f"documents/{PurePath(filename).name}")]
    fixed = language or (named_language if named_language in languages else None)
    if fixed is not None and fixed not in languages:
        raise DocumentError(f"{filename}: language {fixed!r} is not one of the tenant's {list(languages)}")
    sections = sections_of(filename, data)
    if not sections:
        raise DocumentError(f"{filename}: no text found (a scanned PDF needs OCR before it can be uploaded)")
    if len(sections) > MAX_ARTICLES_PER_DOCUMENT:
        raise DocumentError(f"{filename}: {len(sections)} sections; split it into documents of at most 300")
    source = f"documents/{PurePath(filename).name}"
    base = slug(stem) or "document"
    articles: list[Article] = []
    used: set[str] = set()
    for section in sections:
        lang = fixed or _section_language(section, languages, default_language)
        article_id = f"{base}-{slug(section.title, 50) or 'section'}"[:100].strip("-")
        candidate, n = article_id, 2
        while candidate in used:
            candidate, n = f"{article_id}-{n}", n + 1
        used.add(candidate)
        try:
            articles.append(
                Article(
                    id=candidate,
                    title={lang: section.title[:200]},
                    body={lang: section.text},
                    tags=list(section.parents),
                    source=source,
                )
            )
        except ValidationError as exc:
            raise DocumentError(f"{filename}: section {section.title!r}: {exc.errors()[0]['msg']}") from exc
    return articles


def _section_language(section: Section, languages: Sequence[str], default_language: str) -> str:
    guess = detect_language(f"{section.title}\n{section.text}", default=default_language)
    return guess.language if guess.language in languages else default_language
