"""The notifications' texts: Jinja2 templates in Italian and English (`templates/<language>/`).

Each template has an email subject (`<name>.subject.txt`), a plain-text body (`<name>.txt`), an
HTML alternative (`<name>.html`, escaped automatically) and, for the customer's notices, a short
text for WhatsApp and SMS (`<name>.short.txt`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

TEMPLATES = Path(__file__).with_name("templates")


@dataclass(frozen=True)
class Email:
    subject: str
    text: str
    html: str | None


class Templates:
    def __init__(self, directory: Path = TEMPLATES) -> None:
        # StrictUndefined: a misspelt variable fails the rendering (a test) instead of leaving a gap.
        self._env = Environment(
            loader=FileSystemLoader(directory),
            autoescape=select_autoescape(["html"]),
            undefined=StrictUndefined,
            keep_trailing_newline=True,
        )

    def _render(self, language: str, name: str, context: dict[str, Any]) -> str:
        return self._env.get_template(f"{language}/{name}").render(context)

    def email(self, template: str, language: str, context: dict[str, Any], *, html: bool) -> Email:
        return Email(
            subject=" ".join(self._render(language, f"{template}.subject.txt", context).split()),
            text=self._render(language, f"{template}.txt", context),
            html=self._render(language, f"{template}.html", context) if html else None,
        )

    def short(self, template: str, language: str, context: dict[str, Any]) -> str:
        return self._render(language, f"{template}.short.txt", context).strip()
