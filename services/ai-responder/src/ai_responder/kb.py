"""Knowledge-base files: articles (Markdown with YAML front matter) and the tenant's configuration.

A tenant's knowledge base is a directory::

    <tenant_id>/
      tenant.yaml      default language, reply messages, smart actions (buttons and links)
      policy.yaml      phrases that call for a person (optional; generic defaults otherwise)
      synonyms.yaml    groups of interchangeable words, any language (optional)
      articles/*.md    one article per file, every language in the same file

An article file::

    ---
    id: ticket-prices
    title: {it: Prezzi dei biglietti, en: Ticket prices}
    keywords: {it: [biglietto, costo], en: [ticket, price]}
    tags: [biglietti]
    actions: [buy_tickets]        # optional, ids from tenant.yaml
    topics: []                    # optional, sensitive topics of policy.yaml it answers
    ---
    ::: it
    Il biglietto intero costa 9 €.
    :::
    ::: en
    A standard ticket costs €9.
    :::

Every problem is reported as a `KBError` naming the file (and line where there is one).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml
from pydantic import AnyHttpUrl, BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ai_responder.policy import PolicyConfig
from contracts.common import SmartActionType

_ID_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,119}$")
_LANG_RE = re.compile(r"^[a-z]{2}$")
_BLOCK_OPEN_RE = re.compile(r"^:::\s*([A-Za-z]{2})\s*$")
_BLOCK_CLOSE_RE = re.compile(r"^:::\s*$")


class KBError(ValueError):
    """A knowledge-base file is missing or malformed."""


def _check_languages(value: dict[str, Any], what: str) -> None:
    for lang in value:
        if not _LANG_RE.match(lang):
            raise ValueError(f"{what}: {lang!r} is not a two-letter language code")


class Article(BaseModel):
    """One knowledge-base article, in one or more languages."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str
    title: dict[str, str]
    body: dict[str, str]
    keywords: dict[str, list[str]] = Field(default_factory=dict)
    """Words and phrases customers use for this topic (synonyms, paraphrases), per language."""
    tags: list[str] = Field(default_factory=list)
    actions: list[str] = Field(default_factory=list)
    """Ids of smart actions (defined in tenant.yaml) offered with this article's answer."""
    topics: list[str] = Field(default_factory=list)
    """Sensitive topics of policy.yaml this article answers: when the policy spots one, it is the answer."""
    source: str = ""

    @field_validator("id")
    @classmethod
    def _valid_id(cls, value: str) -> str:
        if not _ID_RE.match(value):
            raise ValueError(f"id {value!r} must be lower-case letters, digits, '-' or '_'")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Article:
        if not self.body:
            raise ValueError("the article has no language block (::: it ... :::)")
        _check_languages(self.title, "title")
        _check_languages(self.body, "body")
        _check_languages(self.keywords, "keywords")
        for lang, text in self.body.items():
            if not text.strip():
                raise ValueError(f"the {lang!r} block is empty")
            if not self.title.get(lang, "").strip():
                raise ValueError(f"no title for language {lang!r}")
        return self

    @property
    def languages(self) -> tuple[str, ...]:
        return tuple(self.body)

    def pick_language(self, language: str, fallback: str) -> str:
        """The language to show this article in: the customer's if written, else a fallback."""
        if language in self.body:
            return language
        if fallback in self.body:
            return fallback
        return next(iter(self.body))


class ActionSpec(BaseModel):
    """A smart action as the tenant defines it: a labelled button, optionally with triggers."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    type: SmartActionType
    label: dict[str, str]
    url: AnyHttpUrl | None = None
    triggers: list[str] = Field(default_factory=list)
    """Phrases that offer this action whatever article answered ("comprare", "buy")."""

    @model_validator(mode="after")
    def _url_iff_link(self) -> ActionSpec:
        if self.type == SmartActionType.OPEN_URL and self.url is None:
            raise ValueError("an open_url action needs a url")
        if not self.label:
            raise ValueError("an action needs a label")
        return self


class Messages(BaseModel):
    """The fixed replies of the assistant, in one language."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    handoff_offer: str
    """The customer asked for a person."""
    unknown: str
    """Nothing in the knowledge base answers the question."""
    sensitive: str
    """Appended when the topic needs a person (refunds, complaints...)."""
    negative: str
    """The customer is upset."""
    emergency: str = ""
    """Someone may be in danger (a lost child, an injury); empty: `sensitive` is said instead."""
    greeting: str
    thanks: str
    farewell: str = ""
    """The customer says goodbye; empty: `thanks` is said instead."""
    operator_button: str
    continue_button: str
    llm_language_name: str = ""
    """How to name this language in the LLM prompt ("Italian"); defaults to the code."""


DEFAULT_MESSAGES: dict[str, Messages] = {
    "it": Messages(
        handoff_offer="Certo! Vuoi che ti metta in contatto con un operatore?",
        unknown=(
            "Mi dispiace, non ho questa informazione e preferisco non darti una risposta sbagliata. "
            "Vuoi parlare con un operatore?"
        ),
        sensitive=(
            "Per questa richiesta è meglio che ti aiuti una persona del nostro staff. Vuoi parlare con un operatore?"
        ),
        negative="Mi dispiace molto. Vuoi che ti metta in contatto con un operatore?",
        emergency=(
            "Se qualcuno è in pericolo o si è fatto male, chiama subito il 112. Se non trovi un bambino, "
            "avvisa subito il personale più vicino. Vuoi parlare subito con un operatore?"
        ),
        greeting="Ciao! Sono l'assistente virtuale: come posso aiutarti?",
        thanks="Prego! Se hai altre domande sono qui.",
        farewell="A presto! Se ti serve altro, scrivimi pure.",
        operator_button="Sì, chiama un operatore",
        continue_button="No, continua con l'assistente",
        llm_language_name="Italian",
    ),
    "en": Messages(
        handoff_offer="Of course! Would you like me to connect you with an operator?",
        unknown=(
            "I'm sorry, I don't have that information and I'd rather not give you a wrong answer. "
            "Would you like to talk to an operator?"
        ),
        sensitive="A member of our staff is the right person to help with this. Would you like to talk to an operator?",
        negative="I'm really sorry about that. Would you like me to connect you with an operator?",
        emergency=(
            "If someone is in danger or hurt, call 112 right away. If you cannot find a child, tell the "
            "nearest member of staff at once. Would you like to talk to an operator now?"
        ),
        greeting="Hello! I'm the virtual assistant: how can I help you?",
        thanks="You're welcome! I'm here if you have any other questions.",
        farewell="Goodbye! If you need anything else, just write to me.",
        operator_button="Yes, call an operator",
        continue_button="No, continue with the assistant",
        llm_language_name="English",
    ),
}


class TenantConfig(BaseModel):
    """tenant.yaml: what the assistant says and offers for one tenant."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    tenant_id: str = ""
    default_language: str = "it"
    languages: list[str] = Field(default_factory=lambda: ["it", "en"])
    messages: dict[str, Messages] = Field(default_factory=lambda: dict(DEFAULT_MESSAGES))
    actions: dict[str, ActionSpec] = Field(default_factory=dict)
    answer_threshold: float = Field(default=0.45, ge=0, le=1)
    """Minimum retrieval confidence to answer from an article."""
    unknown_threshold: float = Field(default=0.2, ge=0, le=1)
    """Below this nothing is even close: `unknown_answer`; between the two: `low_confidence`."""
    subject_words: list[str] = Field(default_factory=list, max_length=100)
    """What customers call the business itself ("le luci", "the lights"): such a word says nothing
    about what a question asks, so retrieval neither matches it nor takes it for a topic the
    articles never mention (which makes an honest "I don't know")."""

    @model_validator(mode="after")
    def _consistent(self) -> TenantConfig:
        if self.default_language not in self.languages:
            raise ValueError(f"default_language {self.default_language!r} is not in languages {self.languages}")
        missing = [lang for lang in self.languages if lang not in self.messages]
        if missing:
            raise ValueError(f"messages missing for languages {missing}")
        if self.unknown_threshold > self.answer_threshold:
            raise ValueError("unknown_threshold must not exceed answer_threshold")
        return self

    def messages_for(self, language: str) -> Messages:
        return self.messages.get(language) or self.messages[self.default_language]


class TenantKB(BaseModel):
    """Everything loaded from one tenant's knowledge-base directory."""

    model_config = ConfigDict(frozen=True)

    tenant_id: str
    config: TenantConfig
    policy: PolicyConfig
    synonyms: list[list[str]]
    articles: list[Article]


def _split_front_matter(text: str, path: Path) -> tuple[dict[str, Any], list[str], int]:
    lines = text.splitlines()
    if not lines or lines[0].strip() != "---":
        raise KBError(f"{path}:1: an article must start with a YAML front matter block opened by '---'")
    for end in range(1, len(lines)):
        if lines[end].strip() == "---":
            break
    else:
        raise KBError(f"{path}: the front matter opened on line 1 is never closed with '---'")
    try:
        meta = yaml.safe_load("\n".join(lines[1:end])) or {}
    except yaml.YAMLError as exc:
        raise KBError(f"{path}: invalid YAML front matter: {exc}") from exc
    if not isinstance(meta, dict):
        raise KBError(f"{path}: the front matter must be a mapping of fields")
    return meta, lines[end + 1 :], end + 2


def _parse_blocks(lines: list[str], first_line: int, path: Path) -> dict[str, str]:
    """Collect `::: xx` ... `:::` language blocks; text outside blocks must be blank."""
    bodies: dict[str, str] = {}
    current: str | None = None
    opened_at = 0
    buffer: list[str] = []
    for offset, line in enumerate(lines):
        lineno = first_line + offset
        if current is None:
            match = _BLOCK_OPEN_RE.match(line.strip())
            if match:
                current, opened_at, buffer = match.group(1).lower(), lineno, []
                if current in bodies:
                    raise KBError(f"{path}:{lineno}: a second '::: {current}' block")
            elif line.strip():
                raise KBError(f"{path}:{lineno}: text outside a language block (open one with '::: it')")
        elif _BLOCK_CLOSE_RE.match(line.strip()):
            bodies[current] = "\n".join(buffer).strip()
            current = None
        else:
            buffer.append(line)
    if current is not None:
        raise KBError(f"{path}:{opened_at}: the '::: {current}' block is never closed with ':::'")
    return bodies


def _as_lang_map(value: Any, field: str, path: Path) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise KBError(f"{path}: '{field}' must map a language code to a value, e.g. {{it: ..., en: ...}}")
    return value


def parse_article(text: str, source: str | Path) -> Article:
    """Parse one article in the format above; `source` names it in errors and in the article."""
    path = Path(source)
    meta, rest, first_line = _split_front_matter(text, path)
    unknown = set(meta) - {"id", "title", "keywords", "tags", "actions", "topics"}
    if unknown:
        raise KBError(f"{path}: unknown front matter field(s) {sorted(unknown)}")
    if "id" not in meta:
        raise KBError(f"{path}: the front matter has no 'id'")
    try:
        return Article(
            id=meta["id"],
            title=_as_lang_map(meta.get("title"), "title", path),
            keywords=_as_lang_map(meta.get("keywords"), "keywords", path),
            tags=meta.get("tags") or [],
            actions=meta.get("actions") or [],
            topics=meta.get("topics") or [],
            body=_parse_blocks(rest, first_line, path),
            source=str(source),
        )
    except ValidationError as exc:
        raise KBError(f"{path}: {_explain(exc)}") from exc


def load_article(path: str | Path) -> Article:
    """Parse one article file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise KBError(f"{path}: cannot read: {exc}") from exc
    return parse_article(text, path)


def load_kb(
    path: str | Path,
    languages: Sequence[str] = ("it", "en"),
    default_language: str = "it",
    allow_empty: bool = False,
) -> list[Article]:
    """Load the articles of a tenant directory, of an articles directory, or of a single file.

    A tenant directory may hold `articles/*.md` (the format above), `documents/*` (plain Markdown,
    text, HTML or PDF, see `documents.py`), or both. Articles are returned sorted by id; duplicate
    ids are an error. `allow_empty`: a tenant directory with neither is a knowledge base with no
    article yet (a tenant created by the platform) instead of an error.
    """
    from ai_responder.documents import DOCUMENT_SUFFIXES, document_articles  # documents imports this module

    path = Path(path)
    if path.is_file():
        return [load_article(path)]
    folder = path / "articles" if (path / "articles").is_dir() else path
    documents = path / "documents"
    if not folder.is_dir() and not documents.is_dir():
        if allow_empty and path.is_dir():
            return []
        raise KBError(f"{path}: no such knowledge-base directory")
    loaded: list[Article] = [load_article(file) for file in sorted(folder.glob("*.md"))] if folder.is_dir() else []
    if documents.is_dir():
        for file in sorted(documents.iterdir()):
            if file.is_file() and file.suffix.lower() in DOCUMENT_SUFFIXES:
                try:
                    data = file.read_bytes()
                except OSError as exc:
                    raise KBError(f"{file}: cannot read: {exc}") from exc
                loaded += document_articles(file.name, data, languages, default_language)
    if not loaded and not allow_empty:
        raise KBError(f"{path}: no article (articles/*.md) or document (documents/*) found")
    articles: dict[str, Article] = {}
    for article in loaded:
        if article.id in articles:
            raise KBError(
                f"{article.source}: duplicate article id {article.id!r} (also in {articles[article.id].source})"
            )
        articles[article.id] = article
    return [articles[key] for key in sorted(articles)]


def _read_yaml(path: Path, required: bool) -> Any:
    if not path.exists():
        if required:
            raise KBError(f"{path}: missing")
        return None
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise KBError(f"{path}: invalid YAML: {exc}") from exc


def _explain(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors():
        where = ".".join(str(p) for p in error["loc"])
        parts.append(f"{where}: {error['msg']}" if where else error["msg"])
    return "; ".join(parts)


def load_tenant(path: str | Path, tenant_id: str | None = None, allow_empty: bool = False) -> TenantKB:
    """Load a whole tenant directory and check that every article's actions are defined.
    `allow_empty`: a directory with no article yet is a knowledge base with none (see `load_kb`)."""
    path = Path(path)
    if not path.is_dir():
        raise KBError(f"{path}: no such tenant directory")
    tenant_id = tenant_id or path.name
    raw_config = _read_yaml(path / "tenant.yaml", required=True) or {}
    if not isinstance(raw_config, dict):
        raise KBError(f"{path / 'tenant.yaml'}: must be a mapping")
    messages = dict(DEFAULT_MESSAGES)
    for lang, overrides in (raw_config.pop("messages", None) or {}).items():
        base = messages.get(lang)
        merged = {**(base.model_dump() if base else {}), **(overrides or {})}
        try:
            messages[lang] = Messages(**merged)
        except ValidationError as exc:
            raise KBError(f"{path / 'tenant.yaml'}: messages.{lang}: {_explain(exc)}") from exc
    try:
        config = TenantConfig(tenant_id=tenant_id, messages=messages, **raw_config)
    except (ValidationError, TypeError) as exc:
        detail = _explain(exc) if isinstance(exc, ValidationError) else str(exc)
        raise KBError(f"{path / 'tenant.yaml'}: {detail}") from exc

    raw_policy = _read_yaml(path / "policy.yaml", required=False) or {}
    try:
        policy = PolicyConfig.model_validate(raw_policy)
    except ValidationError as exc:
        raise KBError(f"{path / 'policy.yaml'}: {_explain(exc)}") from exc

    raw_synonyms = _read_yaml(path / "synonyms.yaml", required=False) or []
    if not isinstance(raw_synonyms, list) or not all(
        isinstance(group, list) and all(isinstance(w, str) for w in group) for group in raw_synonyms
    ):
        raise KBError(f"{path / 'synonyms.yaml'}: must be a list of lists of words")

    articles = load_kb(path, config.languages, config.default_language, allow_empty)
    check_articles(articles, config, policy)
    return TenantKB(tenant_id=tenant_id, config=config, policy=policy, synonyms=raw_synonyms, articles=articles)


def check_articles(articles: Sequence[Article], config: TenantConfig, policy: PolicyConfig) -> None:
    """Every action an article offers is defined in tenant.yaml, every topic in policy.yaml."""
    known_topics = {*policy.sensitive_topics, "large_group"}
    for article in articles:
        undefined = [a for a in article.actions if a not in config.actions]
        if undefined:
            raise KBError(f"{article.source or article.id}: action(s) {undefined} are not defined in tenant.yaml")
        unknown_topics = [t for t in article.topics if t not in known_topics]
        if unknown_topics:
            raise KBError(
                f"{article.source or article.id}: topic(s) {unknown_topics} are not sensitive topics of policy.yaml"
            )
