"""The knowledge-base management API: documents in, articles edited, versions rolled back, the
assistant tried out, and the questions it could not answer turned into articles.

Every change reads the live knowledge base under a row lock, builds the new one, checks it the way
the service will use it (loaded, validated and indexed) and only then stores it as a new version and
reloads the assistant; whatever is wrong is a 4xx naming it, and the live version stays as it was.
A version is the whole knowledge base, so history and rollback need no diffing at write time.

Unanswered questions: the ai-responder keeps its own list (`unanswered_questions`, written by the
consumer in the transaction of the reply), rather than reading the analytics service's `kb-gaps`:
it sees every question with the reason it was not answered, needs no other service to be up, and
can mark the questions an article now answers. Bodies: `contracts.readapi` (knowledge-base API).
"""

from __future__ import annotations

import asyncio
import itertools
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from pydantic import ValidationError
from rapidfuzz import fuzz
from sqlalchemy import update

from ai_responder.admin import require_admin
from ai_responder.answering import Question, TenantKnowledge
from ai_responder.assistant import Assistant
from ai_responder.assistant_settings import effective
from ai_responder.documents import MAX_DOCUMENT_BYTES, document_articles, slug
from ai_responder.kb import Article, KBError, TenantKB, check_articles
from ai_responder.store import (
    UnansweredQuestion,
    assistant_settings_of,
    knowledge_base_history,
    knowledge_base_version,
    live_knowledge_base,
    save_knowledge_base,
    unanswered_since,
)
from ai_responder.text import STOPWORDS, normalize, tokenize
from contracts.envelope import TenantId
from contracts.readapi import (
    AssistantTestRequest,
    AssistantTestView,
    DocumentUploadResult,
    GapArticleRequest,
    KnowledgeArticleHistory,
    KnowledgeArticleInput,
    KnowledgeArticleList,
    KnowledgeArticleRevision,
    KnowledgeArticleSummary,
    KnowledgeArticleView,
    KnowledgeBaseChange,
    KnowledgeBaseVersionList,
    KnowledgeBaseVersionView,
    KnowledgeRollbackRequest,
    PassageScore,
    UnansweredGroup,
    UnansweredGroupList,
)
from servicekit.http import ApiError, Runtime

router = APIRouter(prefix="/admin/tenants/{tenant_id}", tags=["knowledge base"])
Admin = Annotated[Runtime, Depends(require_admin)]
GROUP_SIMILARITY = 72
"""rapidfuzz token-set ratio above which two unanswered questions are one gap."""


def _assistant(request: Request) -> Assistant:
    assistant: Assistant = request.app.state.assistant
    return assistant


def _sessions(runtime: Runtime) -> Any:
    assert runtime.sessions is not None
    return runtime.sessions


def _summary(article: Article, version: int) -> dict[str, Any]:
    return {
        "article_id": article.id,
        "title": article.title,
        "languages": list(article.languages),
        "tags": article.tags,
        "source": article.source.rsplit("/kb/", 1)[-1] if article.source else "",
        "has_keywords": any(article.keywords.values()),
        "updated_in_version": version,
    }


def _view(article: Article, updated: int, version: int) -> KnowledgeArticleView:
    return KnowledgeArticleView(
        **_summary(article, updated),
        body=article.body,
        keywords=article.keywords,
        actions=article.actions,
        topics=article.topics,
        version=version,
    )


def _articles_of(content: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {a["id"]: a for a in content.get("articles", [])}


async def _last_changes(session: Any, tenant_id: str) -> dict[str, int]:
    """For each live article, the version that last changed it (walking the history back)."""
    history = await knowledge_base_history(session, tenant_id)
    if not history:
        return {}
    live = _articles_of(history[0].content)
    last: dict[str, int] = dict.fromkeys(live, history[0].version)
    pending = set(live)
    for newer, older in itertools.pairwise(history):
        older_articles = _articles_of(older.content)
        for article_id in list(pending):
            if older_articles.get(article_id) != live[article_id]:
                last[article_id] = newer.version
                pending.discard(article_id)
            else:
                last[article_id] = older.version
        if not pending:
            break
    return last


async def _live(session: Any, tenant_id: str, lock: bool = False) -> tuple[int, TenantKB]:
    found = await live_knowledge_base(session, tenant_id, lock=lock)
    if found is None:
        raise ApiError(404, "not_found", f"no knowledge base for tenant {tenant_id!r}")
    return found


def _validated(kb: TenantKB, articles: list[Article]) -> TenantKB:
    """The knowledge base with these articles, checked as the service will use it (or a 422)."""
    if not articles:
        raise ApiError(409, "last_article", "a knowledge base needs at least one article")
    try:
        check_articles(articles, kb.config, kb.policy)
        new = kb.model_copy(update={"articles": sorted(articles, key=lambda a: a.id)})
        TenantKnowledge(new)  # builds the index: what cannot be served is refused here
    except (KBError, ValueError) as error:
        raise ApiError(422, "invalid_knowledge_base", str(error)) from error
    return new


async def _change(
    request: Request,
    runtime: Runtime,
    tenant_id: str,
    edit: Callable[[TenantKB], tuple[list[Article], list[str]]],
    author: str,
    note: str,
) -> KnowledgeBaseChange:
    """Applies `edit` (the new articles and the ids it changed) to the live knowledge base, atomically."""
    async with _sessions(runtime)() as session, session.begin():
        _, kb = await _live(session, tenant_id, lock=True)
        articles, changed = edit(kb)
        # Checked against the actions and topics the tenant's settings define; stored with the files' own.
        applied, _ = effective(kb, await assistant_settings_of(session, tenant_id))
        await asyncio.to_thread(_validated, applied, articles)
        new = kb.model_copy(update={"articles": sorted(articles, key=lambda a: a.id)})
        version = await save_knowledge_base(session, new, author=author, note=note)
    await _assistant(request).reload()
    return KnowledgeBaseChange(tenant_id=tenant_id, version=version, articles=len(new.articles), changed=changed)


def _article(article_id: str, body: KnowledgeArticleInput | GapArticleRequest, source: str) -> Article:
    try:
        return Article(
            id=article_id,
            title=body.title,
            body=body.body,
            tags=body.tags,
            actions=getattr(body, "actions", []),
            topics=getattr(body, "topics", []),
            source=source,
        )
    except ValidationError as error:
        detail = "; ".join(e["msg"] for e in error.errors())
        raise ApiError(422, "invalid_article", detail) from error


# --------------------------------------------------------------------------- articles


@router.get("/articles", response_model=KnowledgeArticleList, summary="The tenant's articles")
async def list_articles(tenant_id: TenantId, runtime: Admin) -> KnowledgeArticleList:
    async with _sessions(runtime)() as session:
        version, kb = await _live(session, tenant_id)
        last = await _last_changes(session, tenant_id)
    return KnowledgeArticleList(
        tenant_id=tenant_id,
        version=version,
        articles=[KnowledgeArticleSummary(**_summary(a, last.get(a.id, version))) for a in kb.articles],
    )


@router.get("/articles/{article_id}", response_model=KnowledgeArticleView, summary="One article")
async def get_article(
    tenant_id: TenantId, article_id: str, runtime: Admin, version: int | None = None
) -> KnowledgeArticleView:
    async with _sessions(runtime)() as session:
        live, kb = await _live(session, tenant_id)
        last = await _last_changes(session, tenant_id)
        if version is not None and version != live:
            record = await knowledge_base_version(session, tenant_id, version)
            if record is None:
                raise ApiError(404, "not_found", f"no version {version}")
            kb = TenantKB.model_validate(record.content)
    found = next((a for a in kb.articles if a.id == article_id), None)
    if found is None:
        raise ApiError(404, "not_found", f"no article {article_id!r}")
    return _view(found, last.get(article_id, version or live), version or live)


@router.put("/articles/{article_id}", response_model=KnowledgeBaseChange, summary="Add or edit an article")
async def put_article(
    tenant_id: TenantId, article_id: str, body: KnowledgeArticleInput, runtime: Admin, request: Request
) -> KnowledgeBaseChange:
    def edit(kb: TenantKB) -> tuple[list[Article], list[str]]:
        previous = next((a for a in kb.articles if a.id == article_id), None)
        # An edited article keeps its keywords (if it had any) and says where it came from.
        article = _article(article_id, body, previous.source if previous else "dashboard")
        if previous is not None and previous.keywords:
            article = article.model_copy(update={"keywords": previous.keywords})
        return [*(a for a in kb.articles if a.id != article_id), article], [article_id]

    note = body.note or f"edit {article_id}"
    return await _change(request, runtime, tenant_id, edit, body.author, note)


@router.delete("/articles/{article_id}", response_model=KnowledgeBaseChange, summary="Remove an article")
async def delete_article(
    tenant_id: TenantId, article_id: str, runtime: Admin, request: Request, author: str = ""
) -> KnowledgeBaseChange:
    def edit(kb: TenantKB) -> tuple[list[Article], list[str]]:
        if not any(a.id == article_id for a in kb.articles):
            raise ApiError(404, "not_found", f"no article {article_id!r}")
        return [a for a in kb.articles if a.id != article_id], [article_id]

    return await _change(request, runtime, tenant_id, edit, author, f"remove {article_id}")


@router.get("/articles/{article_id}/history", response_model=KnowledgeArticleHistory, summary="An article's versions")
async def article_history(tenant_id: TenantId, article_id: str, runtime: Admin) -> KnowledgeArticleHistory:
    async with _sessions(runtime)() as session:
        history = await knowledge_base_history(session, tenant_id)
    revisions: list[KnowledgeArticleRevision] = []
    # Oldest first to see each change, then newest first in the answer.
    previous: dict[str, Any] | None = None
    for record in reversed(history):
        current = _articles_of(record.content).get(article_id)
        if current != previous:
            change = "added" if previous is None else "removed" if current is None else "edited"
            view = (
                _view(Article.model_validate(current), record.version, record.version) if current is not None else None
            )
            revisions.append(
                KnowledgeArticleRevision(
                    version=record.version,
                    created_at=record.created_at,
                    author=record.author,
                    note=record.note,
                    change=change,
                    article=view,
                )
            )
        previous = current
    if not revisions:
        raise ApiError(404, "not_found", f"no article {article_id!r} in any version")
    return KnowledgeArticleHistory(tenant_id=tenant_id, article_id=article_id, revisions=revisions[::-1])


# --------------------------------------------------------------------------- versions


@router.get("/versions", response_model=KnowledgeBaseVersionList, summary="The knowledge base's versions")
async def list_versions(tenant_id: TenantId, runtime: Admin) -> KnowledgeBaseVersionList:
    async with _sessions(runtime)() as session:
        live, _ = await _live(session, tenant_id)
        history = await knowledge_base_history(session, tenant_id)
    return KnowledgeBaseVersionList(
        tenant_id=tenant_id,
        versions=[
            KnowledgeBaseVersionView(
                version=r.version,
                created_at=r.created_at,
                author=r.author,
                note=r.note,
                articles=len(r.content.get("articles", [])),
                live=r.version == live,
            )
            for r in history
        ],
    )


@router.post("/rollback", response_model=KnowledgeBaseChange, summary="Bring back an earlier version")
async def rollback(
    tenant_id: TenantId, body: KnowledgeRollbackRequest, runtime: Admin, request: Request
) -> KnowledgeBaseChange:
    async with _sessions(runtime)() as session:
        record = await knowledge_base_version(session, tenant_id, body.version)
    if record is None:
        raise ApiError(404, "not_found", f"no version {body.version} of {tenant_id!r}")
    old = TenantKB.model_validate(record.content)

    def edit(kb: TenantKB) -> tuple[list[Article], list[str]]:
        if body.article_id is None:
            live = {a.id: a for a in kb.articles}
            changed = sorted(
                {a.id for a in old.articles} ^ set(live) | {a.id for a in old.articles if live.get(a.id) != a}
            )
            return list(old.articles), changed
        before = next((a for a in old.articles if a.id == body.article_id), None)
        rest = [a for a in kb.articles if a.id != body.article_id]
        return ([*rest, before] if before is not None else rest), [body.article_id]

    what = f" ({body.article_id})" if body.article_id else ""
    return await _change(request, runtime, tenant_id, edit, body.author, f"rollback to {body.version}{what}")


# --------------------------------------------------------------------------- documents


@router.post(
    "/documents",
    response_model=DocumentUploadResult,
    summary="Upload a document (Markdown, text, HTML or PDF): its sections become articles",
    openapi_extra={"requestBody": {"content": {"application/octet-stream": {"schema": {"type": "string"}}}}},
)
async def upload_document(
    tenant_id: TenantId,
    runtime: Admin,
    request: Request,
    filename: Annotated[str, Query(min_length=1, max_length=200, pattern=r"^[^/\\]+$")],
    language: Annotated[str | None, Query(pattern=r"^[a-z]{2}$")] = None,
    author: str = "",
) -> DocumentUploadResult:
    data = await request.body()
    if len(data) > MAX_DOCUMENT_BYTES:
        raise ApiError(413, "too_large", f"a document may be at most {MAX_DOCUMENT_BYTES // (1024 * 1024)} MiB")
    async with _sessions(runtime)() as session:
        _, kb = await _live(session, tenant_id)
    if language is not None and language not in kb.config.languages:
        raise ApiError(422, "invalid_document", f"language {language!r} is not one of {kb.config.languages}")
    try:
        made = await asyncio.to_thread(
            document_articles, filename, data, kb.config.languages, kb.config.default_language, language
        )
    except KBError as error:
        raise ApiError(422, "invalid_document", str(error)) from error
    removed: list[str] = []

    def edit(live: TenantKB) -> tuple[list[Article], list[str]]:
        try:
            articles, gone = merge_document(live, filename, made)
        except KBError as error:
            raise ApiError(409, "article_exists", str(error)) from error
        removed.extend(gone)
        return articles, sorted({a.id for a in made} | set(gone))

    change = await _change(request, runtime, tenant_id, edit, author, f"upload {filename}")
    return DocumentUploadResult(
        tenant_id=tenant_id,
        filename=filename,
        version=change.version,
        articles=sorted(a.id for a in made),
        removed=removed,
    )


def merge_document(kb: TenantKB, filename: str, made: list[Article]) -> tuple[list[Article], list[str]]:
    """The knowledge base's articles with a document's: uploading a document again replaces what its
    earlier upload made. Returns the articles and the ids the new upload no longer has."""
    source = f"documents/{filename}"
    kept = [a for a in kb.articles if a.source != source]
    new_ids = {a.id for a in made}
    clash = sorted(new_ids & {a.id for a in kept})
    if clash:
        raise KBError(f"{filename}: articles {clash} already exist from another source")
    removed = sorted({a.id for a in kb.articles if a.source == source} - new_ids)
    return [*kept, *made], removed


# --------------------------------------------------------------------------- trying the assistant


@router.post("/test", response_model=AssistantTestView, summary="What the assistant answers, with its scores")
async def test_assistant(
    tenant_id: TenantId, body: AssistantTestRequest, runtime: Admin, request: Request
) -> AssistantTestView:
    assistant = _assistant(request)
    if tenant_id not in assistant.versions:
        await assistant.reload()
    if tenant_id not in assistant.versions:
        raise ApiError(404, "not_found", f"no knowledge base for tenant {tenant_id!r}")
    question = Question(tenant_id=tenant_id, text=body.question, language=body.language, history=body.history)
    tenant = assistant.knowledge.tenant(tenant_id)
    analysis = tenant.analyse(question)
    [answer] = await assistant.answer_all([question])
    return AssistantTestView(
        question=body.question,
        text=answer.text,
        language=answer.language,
        confidence=answer.confidence,
        answer_threshold=tenant.config.answer_threshold,
        mode=answer.mode.value,
        sources=answer.sources,
        smart_actions=answer.smart_actions,
        handoff_reason=answer.handoff_reason.value if answer.handoff_reason else None,
        passages=[
            PassageScore(
                article_id=p.article.id,
                title=p.title,
                language=p.language,
                passage=p.index,
                text=p.text[:2000],
                score=round(p.score, 4),
                confidence=round(p.confidence, 4),
            )
            for p in analysis.passages
        ],
        version=assistant.versions[tenant_id],
    )


# --------------------------------------------------------------------------- gaps


def group_questions(rows: list[UnansweredQuestion]) -> list[list[UnansweredQuestion]]:
    """Questions worded alike (rapidfuzz token-set ratio) form one group, in order of first asking."""
    groups: list[tuple[str, list[UnansweredQuestion]]] = []
    for row in rows:
        # Content words only: "c'è un defibrillatore?" and "avete un defibrillatore?" ask the same.
        key = " ".join(t for t in tokenize(row.text) if t not in STOPWORDS) or normalize(row.text)
        for lead, members in groups:
            if fuzz.token_set_ratio(key, lead) >= GROUP_SIMILARITY:
                members.append(row)
                break
        else:
            groups.append((key, [row]))
    return [members for _, members in groups]


async def _groups(runtime: Runtime, tenant_id: str, days: int) -> tuple[datetime, list[list[UnansweredQuestion]]]:
    since = datetime.now(UTC) - timedelta(days=days)
    async with _sessions(runtime)() as session:
        rows = await unanswered_since(session, tenant_id, since)
    return since, group_questions(rows)


@router.get("/gaps", response_model=UnansweredGroupList, summary="Unanswered questions, grouped")
async def list_gaps(
    tenant_id: TenantId,
    runtime: Admin,
    days: Annotated[int, Query(ge=1, le=365)] = 30,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> UnansweredGroupList:
    since, groups = await _groups(runtime, tenant_id, days)
    groups.sort(key=lambda members: (-len(members), members[0].asked_at))
    return UnansweredGroupList(
        tenant_id=tenant_id,
        since=since,
        questions=sum(len(g) for g in groups),
        groups=[
            UnansweredGroup(
                gap_id=members[0].question_id,
                question=members[0].text,
                count=len(members),
                examples=list(dict.fromkeys(m.text for m in members))[:5],
                languages=sorted({m.language for m in members}),
                reasons=sorted({m.reason for m in members}),
                first_asked=members[0].asked_at,
                last_asked=members[-1].asked_at,
            )
            for members in groups[:limit]
        ],
    )


@router.post("/gaps/{gap_id}/article", response_model=KnowledgeBaseChange, summary="Answer a gap with a new article")
async def article_from_gap(
    tenant_id: TenantId, gap_id: uuid.UUID, body: GapArticleRequest, runtime: Admin, request: Request
) -> KnowledgeBaseChange:
    _, groups = await _groups(runtime, tenant_id, 365)
    members = next((g for g in groups if g[0].question_id == gap_id), None)
    if members is None:
        raise ApiError(404, "not_found", f"no open gap {gap_id}")
    title = next(iter(body.title.values()))
    article_id = body.article_id or f"gap-{slug(title, 60) or gap_id.hex[:8]}"
    article = _article(article_id, body, "gap")

    def edit(kb: TenantKB) -> tuple[list[Article], list[str]]:
        if any(a.id == article_id for a in kb.articles):
            raise ApiError(409, "article_exists", f"article {article_id!r} exists: edit it instead")
        return [*kb.articles, article], [article_id]

    change = await _change(request, runtime, tenant_id, edit, body.author, f"answer gap: {members[0].text[:200]}")
    async with _sessions(runtime)() as session, session.begin():
        await session.execute(
            update(UnansweredQuestion)
            .where(UnansweredQuestion.question_id.in_([m.question_id for m in members]))
            .values(resolved_by=article_id)
        )
    return change
