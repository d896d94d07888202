"""Helpers of the gateway tests, importable as `gateway_testkit` (conftest.py registers it).

Real servers for the tests: the gateway app under uvicorn on a free port, and a small stand-in
for the conversation service's read API (a separate service; it serves the documented shape)."""

from __future__ import annotations

import asyncio
import socket
import uuid
import zoneinfo
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp

from contracts.readapi import (
    AnalyticsOverview,
    AnalyticsSeries,
    AssistantTestRequest,
    AssistantTestView,
    ConversationListItem,
    ConversationListView,
    ConversationView,
    CsatFigure,
    DocumentUploadResult,
    DrilldownItem,
    DrilldownView,
    DurationFigure,
    GapArticleRequest,
    HandoffReasonCount,
    HandoffReasonsView,
    HandoverSummaryView,
    HourCount,
    KbGap,
    KbGapsView,
    KnowledgeArticleHistory,
    KnowledgeArticleInput,
    KnowledgeArticleList,
    KnowledgeArticleRevision,
    KnowledgeArticleView,
    KnowledgeBaseChange,
    KnowledgeBaseVersionList,
    KnowledgeBaseVersionView,
    KnowledgeRollbackRequest,
    NotesView,
    OperatorFigures,
    OperatorFiguresView,
    OperatorView,
    PassageScore,
    PublicTicketView,
    QueueEntryView,
    QueueView,
    ReportPeriod,
    ScoreCount,
    SeriesPoint,
    SlaFigure,
    Source,
    SuggestionRequest,
    SuggestionView,
    TakeRequest,
    TakeResult,
    TenantChannelsView,
    TicketListView,
    TicketLookupRequest,
    TicketOperatorReplyView,
    TicketReplyView,
    TicketSummaryView,
    TicketView,
    UnansweredGroup,
    UnansweredGroupList,
)
from contracts.ticketlinks import InvalidTicketLinkError, TicketLink, sign, verify
from devkit.testing import Infra
from gateway.config import Settings
from servicekit.http import server_config

LUCINE_KEY = "wk_lucine_demo_2025"
LUCINE_ORIGIN = "http://localhost:8080"
OTHER_KEY = "wk_acme_test_0001"
OTHER_ORIGIN = "https://acme.example"
JWT_SECRET = "test-secret-of-the-gateway-tests-0123456789"
OPERATOR_JWT_SECRET = "operator-secret-of-the-gateway-tests-0123456789"
# The shipped demo operators of lucine-di-natale, and one of the second tenant (acme).
GIULIA = ("giulia", "lucine-demo-giulia", "lucine-giulia")
MARCO = ("marco", "lucine-demo-marco", "lucine-marco")
SOFIA = ("sofia", "lucine-demo-sofia", "lucine-sofia")
WILE = ("wile", "acme-test-password", "acme-wile")
ADA = ("ada", "lucine-test-ada", "lucine-ada")  # an admin of the demo tenant (tests only)
# Signs status links as the notifier does; the tickets stand-in checks them with it.
TICKET_LINK_SECRET = "ticket-link-secret-of-the-gateway-tests"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@asynccontextmanager
async def serve_app(app: ASGIApp, port: int | None = None) -> AsyncIterator[str]:
    """Runs `app` (with its lifespan) under uvicorn; yields its base URL."""
    port = port or free_port()
    server = uvicorn.Server(server_config(app, "127.0.0.1", port, lifespan="on"))
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
            raise RuntimeError("server stopped before starting")
        await asyncio.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 20)


def message(seq: int, sender: str = "ai", text: str | None = None, **extra: Any) -> dict[str, Any]:
    """One message as the read API returns it."""
    return {
        "seq": seq,
        "message_id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"m{seq}-{text}")),
        "sender": sender,
        "text": text or f"message {seq}",
        "smart_actions": extra.get("smart_actions", []),
        "sources": extra.get("sources", []),
        "created_at": datetime.now(UTC).isoformat(),
        # Optional in the read model: left out unless given, as an older conversation service answers.
        **({"language": extra["language"]} if "language" in extra else {}),
    }


class ReadApi:
    """`GET /internal/conversations/{id}` and `.../messages?after=N`, notes and summary, and the
    list of a tenant's conversations, over an in-memory set of conversations."""

    def __init__(self) -> None:
        self.conversations: dict[str, dict[str, Any]] = {}
        self.owners: dict[str, str] = {}
        self.changed_at: dict[str, datetime] = {}
        self.delays: dict[str, float] = {}
        self.requests: list[tuple[str, int]] = []
        self.list_requests: list[dict[str, str]] = []
        self.app = Starlette(
            routes=[
                Route("/internal/conversations", self.list),
                Route("/internal/conversations/{cid}", self.conversation),
                Route("/internal/conversations/{cid}/messages", self.messages),
                Route("/internal/conversations/{cid}/notes", self.notes),
                Route("/internal/conversations/{cid}/summary", self.summary),
            ]
        )

    def put(
        self,
        conversation_id: uuid.UUID,
        tenant_id: str,
        messages: list[dict[str, Any]],
        status: str = "AI",
        operator_id: str | None = None,
    ) -> None:
        self.conversations[str(conversation_id)] = {
            "conversation_id": str(conversation_id),
            "tenant_id": tenant_id,
            "status": status,
            "messages": messages,
        }
        if operator_id is not None:
            self.owners[str(conversation_id)] = operator_id
        self.changed_at[str(conversation_id)] = datetime.now(UTC)

    async def list(self, request: Request) -> JSONResponse:
        """Filtered as the conversation service filters: tenant, then status and operator together."""
        query = dict(request.query_params)
        self.list_requests.append(query)
        if not query.get("tenant_id"):
            return JSONResponse({"error": {"code": "invalid_request", "message": "tenant_id"}}, status_code=422)
        items = [
            ConversationListItem(
                conversation_id=uuid.UUID(cid),
                tenant_id=c["tenant_id"],
                status=c["status"],
                last_seq=max((m["seq"] for m in c["messages"]), default=0),
                created_at=self.changed_at[cid],
                updated_at=self.changed_at[cid],
                operator_id=self.owners.get(cid),
            )
            for cid, c in self.conversations.items()
            if c["tenant_id"] == query["tenant_id"]
            and query.get("status") in (None, c["status"])
            and query.get("operator_id") in (None, self.owners.get(cid))
        ]
        items.sort(key=lambda item: item.updated_at, reverse=True)
        view = ConversationListView(tenant_id=query["tenant_id"], conversations=items[: int(query.get("limit", 50))])
        return JSONResponse(view.model_dump(mode="json"))

    async def conversation(self, request: Request) -> JSONResponse:
        cid = request.path_params["cid"]
        conversation = self.conversations.get(cid)
        if conversation is None:
            return JSONResponse({"error": {"code": "not_found", "message": "unknown conversation"}}, status_code=404)
        view = ConversationView(
            conversation_id=uuid.UUID(cid),
            tenant_id=conversation["tenant_id"],
            status=conversation["status"],
            last_seq=max((m["seq"] for m in conversation["messages"]), default=0),
            created_at=datetime.now(UTC),
            operator_id=self.owners.get(cid),
        )
        return JSONResponse(view.model_dump(mode="json"))

    async def notes(self, request: Request) -> JSONResponse:
        conversation = self.conversations.get(request.path_params["cid"])
        if conversation is None:
            return JSONResponse({"error": {"code": "not_found", "message": "unknown conversation"}}, status_code=404)
        view = NotesView(conversation_id=conversation["conversation_id"], tenant_id=conversation["tenant_id"], notes=[])
        return JSONResponse(view.model_dump(mode="json"))

    async def summary(self, request: Request) -> JSONResponse:
        conversation = self.conversations.get(request.path_params["cid"])
        if conversation is None:
            return JSONResponse({"error": {"code": "not_found", "message": "unknown conversation"}}, status_code=404)
        customer = [m["text"] for m in conversation["messages"] if m["sender"] == "customer"]
        view = HandoverSummaryView(
            conversation_id=conversation["conversation_id"],
            tenant_id=conversation["tenant_id"],
            status=conversation["status"],
            customer_wants=customer[0] if customer else "",
            ai_answered=[],
            still_open=customer[1:],
            mood="neutral",
        )
        return JSONResponse(view.model_dump(mode="json"))

    async def messages(self, request: Request) -> JSONResponse:
        cid = request.path_params["cid"]
        after = int(request.query_params.get("after", "0"))
        self.requests.append((cid, after))
        if cid in self.delays:
            await asyncio.sleep(self.delays[cid])
        conversation = self.conversations.get(cid)
        if conversation is None:
            return JSONResponse({"error": {"code": "not_found", "message": "unknown conversation"}}, status_code=404)
        return JSONResponse({**conversation, "messages": [m for m in conversation["messages"] if m["seq"] > after]})


class RoutingApi:
    """The routing service's internal API as the gateway sees it (another service): the queue of
    a tenant, its operators' presence and load, and taking a conversation, answering
    `contracts.readapi` bodies; a conversation is taken once, then `409 already_taken`."""

    def __init__(self) -> None:
        self.queues: dict[str, list[QueueEntryView]] = {}
        self.operators: dict[str, list[OperatorView]] = {}
        self.taken: dict[str, str] = {}
        self.take_requests: list[tuple[str, TakeRequest]] = []
        self.queue_requests: list[str] = []
        self.app = Starlette(
            routes=[
                Route("/internal/queue", self.queue),
                Route("/internal/operators", self.list_operators),
                Route("/internal/conversations/{cid}/take", self.take, methods=["POST"]),
            ]
        )

    def wait(self, conversation_id: uuid.UUID, tenant_id: str, position: int = 1) -> None:
        entry = QueueEntryView(
            conversation_id=conversation_id,
            tenant_id=tenant_id,
            position=position,
            priority="normal",
            reason="customer_request",
            intent="tickets",
            waiting_since=datetime.now(UTC),
        )
        self.queues.setdefault(tenant_id, []).append(entry)

    def seen(self, operator_id: str, tenant_id: str, presence: str = "online", active: int = 0) -> None:
        """Routing has heard from the operator: its presence and load."""
        view = OperatorView(
            operator_id=operator_id,
            display_name=operator_id,
            presence=presence,
            skills=[],
            capacity=3,
            active_conversations=active,
            pending_offers=0,
        )
        others = [o for o in self.operators.get(tenant_id, []) if o.operator_id != operator_id]
        self.operators[tenant_id] = [*others, view]

    async def list_operators(self, request: Request) -> JSONResponse:
        operators = self.operators.get(request.query_params["tenant_id"], [])
        return JSONResponse([view.model_dump(mode="json") for view in operators])

    async def queue(self, request: Request) -> JSONResponse:
        tenant_id = request.query_params["tenant_id"]
        self.queue_requests.append(tenant_id)
        view = QueueView(tenant_id=tenant_id, entries=self.queues.get(tenant_id, []))
        return JSONResponse(view.model_dump(mode="json"))

    async def take(self, request: Request) -> JSONResponse:
        cid = request.path_params["cid"]
        body = TakeRequest.model_validate_json(await request.body())
        self.take_requests.append((cid, body))
        if cid in self.taken:
            error = {"code": "already_taken", "message": f"{self.taken[cid]} has it"}
            return JSONResponse({"error": error}, status_code=409)
        self.taken[cid] = body.operator_id
        result = TakeResult(conversation_id=uuid.UUID(cid), operator_id=body.operator_id, via="take")
        return JSONResponse(result.model_dump(mode="json"))


class AiResponderApi:
    """The ai-responder's suggestion endpoint as the gateway sees it (another service): a reply
    that echoes the question, as a `contracts.readapi.SuggestionView`; and its knowledge-base
    management API (`KnowledgeAdminApi`, as `.kb`)."""

    def __init__(self) -> None:
        self.requests: list[SuggestionRequest] = []
        self.kb = KnowledgeAdminApi()
        self.app = Starlette(routes=[Route("/internal/suggestions", self.suggest, methods=["POST"]), *self.kb.routes])

    async def suggest(self, request: Request) -> JSONResponse:
        body = SuggestionRequest.model_validate_json(await request.body())
        self.requests.append(body)
        view = SuggestionView(
            conversation_id=body.conversation_id,
            question=body.question,
            text=f"A grounded answer to: {body.question[:200]}",
            language="it",
            confidence=0.9,
            mode="retrieval",
        )
        return JSONResponse(view.model_dump(mode="json"))


ADMIN_TOKEN = "kb-admin-token-of-the-gateway-tests"


def _error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status)


class KnowledgeAdminApi:
    """The ai-responder's knowledge-base management API as the gateway sees it (another service):
    per tenant, versions of a small in-memory knowledge base (Italian and English), answering the
    `contracts.readapi` bodies and the documented refusals: 401 without its admin token, 404 for an
    unknown tenant, article, version or gap, 409 `article_exists` / `last_article`, 422 for an
    article without a title in a language or a document that is not a non-empty .md, .txt or
    .html (a .pdf must start with %PDF). Every request is recorded with its tenant."""

    LANGUAGES = ("it", "en")

    def __init__(self) -> None:
        self.requests: list[tuple[str, str, str]] = []
        """(method, tenant_id, path under the tenant)."""
        self.versions: dict[str, list[dict[str, Any]]] = {}
        self.gaps: dict[str, list[UnansweredGroup]] = {}
        self.uploads: list[tuple[str, str, bytes]] = []
        base = "/admin/tenants/{tenant}"
        self.routes = [
            Route(f"{base}/articles", self.articles),
            Route(f"{base}/articles/{{aid}}", self.article, methods=["GET", "PUT", "DELETE"]),
            Route(f"{base}/articles/{{aid}}/history", self.history),
            Route(f"{base}/versions", self.list_versions),
            Route(f"{base}/rollback", self.rollback, methods=["POST"]),
            Route(f"{base}/documents", self.document, methods=["POST"]),
            Route(f"{base}/test", self.test, methods=["POST"]),
            Route(f"{base}/gaps", self.list_gaps),
            Route(f"{base}/gaps/{{gid}}/article", self.gap_article, methods=["POST"]),
        ]

    def seed(self, tenant_id: str, articles: dict[str, tuple[str, str]], gaps: tuple[str, ...] = ()) -> None:
        """A first version: articles by id as (Italian title, Italian text), English alike; gaps as questions."""
        made = {
            aid: {"title": {"it": t, "en": t}, "body": {"it": b, "en": b}, "tags": [], "source": "articles/seed.md"}
            for aid, (t, b) in articles.items()
        }
        self.versions[tenant_id] = []
        self._save(tenant_id, made, "seed", "knowledge base loaded")
        now = datetime.now(UTC)
        self.gaps[tenant_id] = [
            UnansweredGroup(
                gap_id=uuid.uuid5(uuid.NAMESPACE_URL, f"{tenant_id}/{q}"),
                question=q,
                count=2,
                examples=[q],
                languages=["it"],
                reasons=["unknown_answer"],
                first_asked=now,
                last_asked=now,
            )
            for q in gaps
        ]

    def _save(self, tenant_id: str, articles: dict[str, Any], author: str, note: str) -> int:
        versions = self.versions[tenant_id]
        version = len(versions) + 1
        versions.append(
            {"version": version, "created_at": datetime.now(UTC), "author": author, "note": note, "articles": articles}
        )
        return version

    def _live(self, tenant_id: str) -> dict[str, Any]:
        return dict(self.versions[tenant_id][-1]["articles"])

    def _last_change(self, tenant_id: str, aid: str) -> int:
        versions = self.versions[tenant_id]
        current = versions[-1]["articles"].get(aid)
        for older in reversed(versions[:-1]):
            if older["articles"].get(aid) != current:
                return int(older["version"]) + 1
        return 1

    def _view(self, tenant_id: str, aid: str, article: dict[str, Any], version: int) -> KnowledgeArticleView:
        return KnowledgeArticleView(
            article_id=aid,
            title=article["title"],
            languages=list(article["body"]),
            tags=article["tags"],
            source=article["source"],
            updated_in_version=self._last_change(tenant_id, aid),
            body=article["body"],
            version=version,
        )

    def _change(self, tenant_id: str, articles: dict[str, Any], author: str, note: str, changed: list[str]) -> Any:
        if not articles:
            return _error(409, "last_article", "a knowledge base needs at least one article")
        version = self._save(tenant_id, articles, author, note)
        change = KnowledgeBaseChange(tenant_id=tenant_id, version=version, articles=len(articles), changed=changed)
        return JSONResponse(change.model_dump(mode="json"))

    def _article_of(self, title: dict[str, str], body: dict[str, str], tags: list[str], source: str) -> Any:
        if not body or set(body) - set(self.LANGUAGES) or any(not title.get(lang, "").strip() for lang in body):
            return _error(422, "invalid_knowledge_base", "every language needs a title; languages are it and en")
        if any(not text.strip() for text in body.values()):
            return _error(422, "invalid_knowledge_base", "a language block is empty")
        return {"title": {lang: title[lang] for lang in body}, "body": body, "tags": tags, "source": source}

    async def _admitted(self, request: Request) -> tuple[str, Any]:
        """The tenant, and a refusal when the token is wrong or the tenant has no knowledge base."""
        tenant_id = request.path_params["tenant"]
        path = request.url.path.split(f"/admin/tenants/{tenant_id}", 1)[-1]
        self.requests.append((request.method, tenant_id, path))
        if request.headers.get("authorization") != f"Bearer {ADMIN_TOKEN}":
            return tenant_id, _error(401, "unauthorized", "a valid admin bearer token is required")
        if tenant_id not in self.versions:
            return tenant_id, _error(404, "not_found", f"no knowledge base for tenant {tenant_id!r}")
        return tenant_id, None

    async def _body(self, request: Request, model: type[Any]) -> Any:
        try:
            return model.model_validate_json(await request.body())
        except ValueError:
            return _error(422, "invalid_request", "invalid body")

    async def articles(self, request: Request) -> Response:
        tenant_id, refused = await self._admitted(request)
        if refused:
            return refused
        live = self._live(tenant_id)
        view = KnowledgeArticleList(
            tenant_id=tenant_id,
            version=len(self.versions[tenant_id]),
            articles=[self._view(tenant_id, aid, a, 0) for aid, a in sorted(live.items())],
        )
        return JSONResponse(view.model_dump(mode="json"))

    async def article(self, request: Request) -> Response:
        tenant_id, refused = await self._admitted(request)
        if refused:
            return refused
        aid = request.path_params["aid"]
        live = self._live(tenant_id)
        author = request.query_params.get("author", "")
        if request.method == "PUT":
            body = await self._body(request, KnowledgeArticleInput)
            if isinstance(body, Response):
                return body
            previous = live.get(aid)
            made = self._article_of(body.title, body.body, body.tags, previous["source"] if previous else "dashboard")
            if isinstance(made, Response):
                return made
            return self._change(tenant_id, {**live, aid: made}, body.author, body.note or f"edit {aid}", [aid])
        if aid not in live:
            return _error(404, "not_found", f"no article {aid!r}")
        if request.method == "DELETE":
            rest = {k: v for k, v in live.items() if k != aid}
            return self._change(tenant_id, rest, author, f"remove {aid}", [aid])
        versions = self.versions[tenant_id]
        version = int(request.query_params.get("version", len(versions)))
        if not 1 <= version <= len(versions):
            return _error(404, "not_found", f"no version {version}")
        article = versions[version - 1]["articles"].get(aid)
        if article is None:
            return _error(404, "not_found", f"no article {aid!r}")
        return JSONResponse(self._view(tenant_id, aid, article, version).model_dump(mode="json"))

    async def history(self, request: Request) -> Response:
        tenant_id, refused = await self._admitted(request)
        if refused:
            return refused
        aid = request.path_params["aid"]
        revisions: list[KnowledgeArticleRevision] = []
        previous = None
        for record in self.versions[tenant_id]:
            current = record["articles"].get(aid)
            if current != previous:
                change = "added" if previous is None else "removed" if current is None else "edited"
                view = self._view(tenant_id, aid, current, record["version"]) if current else None
                revisions.append(
                    KnowledgeArticleRevision(
                        version=record["version"],
                        created_at=record["created_at"],
                        author=record["author"],
                        note=record["note"],
                        change=change,
                        article=view,
                    )
                )
            previous = current
        if not revisions:
            return _error(404, "not_found", f"no article {aid!r} in any version")
        view = KnowledgeArticleHistory(tenant_id=tenant_id, article_id=aid, revisions=revisions[::-1])
        return JSONResponse(view.model_dump(mode="json"))

    async def list_versions(self, request: Request) -> Response:
        tenant_id, refused = await self._admitted(request)
        if refused:
            return refused
        versions = self.versions[tenant_id]
        view = KnowledgeBaseVersionList(
            tenant_id=tenant_id,
            versions=[
                KnowledgeBaseVersionView(
                    version=r["version"],
                    created_at=r["created_at"],
                    author=r["author"],
                    note=r["note"],
                    articles=len(r["articles"]),
                    live=r is versions[-1],
                )
                for r in reversed(versions)
            ],
        )
        return JSONResponse(view.model_dump(mode="json"))

    async def rollback(self, request: Request) -> Response:
        tenant_id, refused = await self._admitted(request)
        if refused:
            return refused
        body = await self._body(request, KnowledgeRollbackRequest)
        if isinstance(body, Response):
            return body
        versions = self.versions[tenant_id]
        if body.version > len(versions):
            return _error(404, "not_found", f"no version {body.version}")
        old = versions[body.version - 1]["articles"]
        live = self._live(tenant_id)
        if body.article_id is None:
            articles, changed = dict(old), sorted(set(old) | set(live))
        else:
            articles = {k: v for k, v in live.items() if k != body.article_id}
            if body.article_id in old:
                articles[body.article_id] = old[body.article_id]
            changed = [body.article_id]
        return self._change(tenant_id, articles, body.author, f"rollback to {body.version}", changed)

    async def document(self, request: Request) -> Response:
        tenant_id, refused = await self._admitted(request)
        if refused:
            return refused
        filename = request.query_params.get("filename", "")
        data = await request.body()
        self.uploads.append((tenant_id, filename, data))
        stem, _, extension = filename.lower().rpartition(".")
        if extension not in {"md", "txt", "html", "htm", "pdf"} or not stem:
            return _error(422, "invalid_document", f"{filename}: unsupported type (Markdown, text, HTML or PDF)")
        if extension == "pdf" and not data.startswith(b"%PDF"):
            return _error(422, "invalid_document", f"{filename}: not a PDF")
        try:
            text = data.decode("utf-8").strip()
        except UnicodeDecodeError:
            text = "" if extension != "pdf" else "pdf text"
        if not text:
            return _error(422, "invalid_document", f"{filename}: the document is empty")
        aid = "doc-" + "".join(c if c.isalnum() and c.isascii() else "-" for c in stem)[:100].strip("-")
        live = self._live(tenant_id)
        source = f"documents/{filename}"
        if aid in live and live[aid]["source"] != source:
            return _error(409, "article_exists", f"{filename}: articles ['{aid}'] already exist from another source")
        made = {"title": {"it": stem, "en": stem}, "body": {"it": text, "en": text}, "tags": [], "source": source}
        author = request.query_params.get("author", "")
        version = self._save(tenant_id, {**live, aid: made}, author, f"upload {filename}")
        result = DocumentUploadResult(tenant_id=tenant_id, filename=filename, version=version, articles=[aid])
        return JSONResponse(result.model_dump(mode="json"))

    async def test(self, request: Request) -> Response:
        """A stand-in answer: the first article whose Italian title shares a word with the question."""
        tenant_id, refused = await self._admitted(request)
        if refused:
            return refused
        body = await self._body(request, AssistantTestRequest)
        if isinstance(body, Response):
            return body
        words = set(body.question.lower().split())
        live = self._live(tenant_id)
        found = [(aid, a) for aid, a in sorted(live.items()) if words & set(a["title"]["it"].lower().split())]
        passages = [
            PassageScore(
                article_id=aid,
                title=a["title"]["it"],
                language="it",
                passage=0,
                text=a["body"]["it"],
                score=3.2,
                confidence=0.8,
            )
            for aid, a in found
        ]
        view = AssistantTestView(
            question=body.question,
            text=found[0][1]["body"]["it"] if found else "Non ho questa informazione.",
            language=body.language or "it",
            confidence=0.8 if found else 0.0,
            answer_threshold=0.4,
            mode="retrieval",
            sources=[Source(article_id=aid, title=a["title"]["it"], score=0.8) for aid, a in found[:1]],
            handoff_reason=None if found else "unknown_answer",
            passages=passages,
            version=len(self.versions[tenant_id]),
        )
        return JSONResponse(view.model_dump(mode="json"))

    async def list_gaps(self, request: Request) -> Response:
        tenant_id, refused = await self._admitted(request)
        if refused:
            return refused
        groups = self.gaps.get(tenant_id, [])[: int(request.query_params.get("limit", 50))]
        view = UnansweredGroupList(
            tenant_id=tenant_id, since=datetime.now(UTC), questions=sum(g.count for g in groups), groups=groups
        )
        return JSONResponse(view.model_dump(mode="json"))

    async def gap_article(self, request: Request) -> Response:
        tenant_id, refused = await self._admitted(request)
        if refused:
            return refused
        gap = next((g for g in self.gaps[tenant_id] if str(g.gap_id) == request.path_params["gid"]), None)
        if gap is None:
            return _error(404, "not_found", f"no open gap {request.path_params['gid']}")
        body = await self._body(request, GapArticleRequest)
        if isinstance(body, Response):
            return body
        title = next(iter(body.title.values()))
        aid = body.article_id or "gap-" + "".join(c if c.isalnum() and c.isascii() else "-" for c in title.lower())[:60]
        live = self._live(tenant_id)
        if aid in live:
            return _error(409, "article_exists", f"article {aid!r} exists: edit it instead")
        made = self._article_of(body.title, body.body, body.tags, "gap")
        if isinstance(made, Response):
            return made
        answer = self._change(tenant_id, {**live, aid: made}, body.author, f"answer gap: {gap.question}", [aid])
        self.gaps[tenant_id] = [g for g in self.gaps[tenant_id] if g is not gap]
        return answer


class TicketsApi:
    """The tickets service's internal API as the gateway sees it (another service): a tenant's
    tickets (filtered), one ticket for its tenant (else 404), and the public lookups by number and
    contact or by signed link (checked with `contracts.ticketlinks`), each answering the same 404
    whatever was wrong; `contracts.readapi` bodies."""

    def __init__(self) -> None:
        self.tickets: dict[str, TicketView] = {}
        # The first-response deadline of tickets whose clock runs (what the status page promises).
        self.answer_due: dict[str, datetime] = {}
        self.list_requests: list[dict[str, str]] = []
        self.app = Starlette(
            routes=[
                Route("/internal/tickets", self.list),
                Route("/internal/tickets/lookup", self.lookup, methods=["POST"]),
                Route("/internal/tickets/link", self.link, methods=["POST"]),
                Route("/internal/tickets/{tid}", self.get),
            ]
        )

    def put(
        self,
        tenant_id: str,
        *,
        email: str | None = "anna.rossi@example.com",
        phone: str | None = None,
        status: str = "OPEN",
        priority: str = "normal",
        assignee_id: str | None = None,
        answer_due: datetime | None = None,
        created_at: datetime | None = None,
    ) -> TicketView:
        ticket_id = uuid.uuid4()
        opened = created_at or datetime.now(UTC)
        view = TicketView(
            ticket_id=ticket_id,
            tenant_id=tenant_id,
            ticket_number=f"TCK-{opened.year}-{ticket_id.int % 10**6:06d}",
            status=status,
            priority=priority,
            assignee_id=assignee_id,
            contact_name="Anna Rossi",
            subject="Biglietti per il 24 dicembre",
            created_at=opened,
            updated_at=opened,
            sla_state="on_time",
            contact={"name": "Anna Rossi", "email": email, "phone": phone},
            message="Vorrei sapere se ci sono ancora biglietti per la vigilia.",
        )
        self.tickets[str(ticket_id)] = view
        if answer_due is not None:
            self.answer_due[str(ticket_id)] = answer_due
        return view

    def reply(
        self,
        ticket_id: uuid.UUID,
        author: str,
        text: str,
        reply_id: uuid.UUID | None = None,
        created_at: datetime | None = None,
    ) -> None:
        """A public reply the tickets service has stored."""
        view = self.tickets[str(ticket_id)]
        reply = TicketOperatorReplyView(
            reply_id=reply_id or uuid.uuid4(), author=author, text=text, created_at=created_at or datetime.now(UTC)
        )
        self.tickets[str(ticket_id)] = view.model_copy(update={"replies": [*view.replies, reply]})
        if author != "customer":
            # An operator's answer meets the first-response clock: nothing more is promised, as
            # the tickets service answers (`tickets.api.promised_answer`).
            self.answer_due.pop(str(ticket_id), None)

    @staticmethod
    def link_of(view: TicketView) -> str:
        """The token of the ticket's status link, signed as the notifier signs it."""
        return sign(TICKET_LINK_SECRET, TicketLink(tenant_id=view.tenant_id, ticket_id=view.ticket_id))

    @staticmethod
    def not_found() -> JSONResponse:
        return JSONResponse({"error": {"code": "not_found", "message": "no ticket matches"}}, status_code=404)

    def public(self, view: TicketView) -> JSONResponse:
        replies = [TicketReplyView.model_validate(reply.model_dump()) for reply in view.replies]
        public = PublicTicketView(
            ticket_number=view.ticket_number,
            status=view.status,
            created_at=view.created_at,
            replies=replies,
            request=view.message or view.subject,
            answer_due=self.answer_due.get(str(view.ticket_id)),
        )
        return JSONResponse(public.model_dump(mode="json"))

    async def list(self, request: Request) -> JSONResponse:
        query = dict(request.query_params)
        self.list_requests.append(query)
        wanted = {name: query.get(name) for name in ("status", "priority", "assignee_id")}
        found = [
            TicketSummaryView.model_validate(view.model_dump())
            for view in self.tickets.values()
            if view.tenant_id == query["tenant_id"]
            and all(value in (None, getattr(view, name)) for name, value in wanted.items())
            and query.get("q", "").lower() in f"{view.ticket_number} {view.subject}".lower()
        ]
        view = TicketListView(tenant_id=query["tenant_id"], tickets=found[: int(query.get("limit", 50))])
        return JSONResponse(view.model_dump(mode="json"))

    async def get(self, request: Request) -> JSONResponse:
        view = self.tickets.get(request.path_params["tid"])
        if view is None or view.tenant_id != request.query_params.get("tenant_id"):
            return JSONResponse({"error": {"code": "not_found", "message": "no such ticket"}}, status_code=404)
        return JSONResponse(view.model_dump(mode="json"))

    async def lookup(self, request: Request) -> JSONResponse:
        body = TicketLookupRequest.model_validate_json(await request.body())
        for view in self.tickets.values():
            same_email = body.email is not None and (view.contact.email or "").lower() == body.email.lower()
            same_phone = body.phone is not None and view.contact.phone == body.phone
            if (view.tenant_id, view.ticket_number) == (body.tenant_id, body.ticket_number) and (
                same_email or same_phone
            ):
                return self.public(view)
        return self.not_found()

    async def link(self, request: Request) -> JSONResponse:
        try:
            link = verify(TICKET_LINK_SECRET, (await request.json())["token"])
        except InvalidTicketLinkError:
            return self.not_found()
        view = self.tickets.get(str(link.ticket_id))
        if view is None or view.tenant_id != link.tenant_id:
            return self.not_found()
        return self.public(view)


class AnalyticsApi:
    """The analytics service's internal API as the gateway sees it (another service): each report
    as its `contracts.readapi` body for the tenant asked (figures made up, the shape the real one's),
    or as CSV with `format=csv`; its 422 for `to` before `from`, over 366 days or an unknown zone.
    `answer_tenant` makes it answer another tenant's report (a fault the gateway must catch)."""

    def __init__(self) -> None:
        self.requests: list[dict[str, str]] = []
        self.answer_tenant: str | None = None
        reports: dict[str, Callable[[ReportPeriod, dict[str, str]], Any]] = {
            "overview": self.overview,
            "series": lambda base, q: AnalyticsSeries(
                **base.model_dump(),
                granularity=q.get("granularity", "day"),  # type: ignore[arg-type]
                points=[
                    SeriesPoint(
                        period_start=datetime.combine(base.from_date, datetime.min.time(), UTC),
                        conversations_started=3,
                        ai_involved=3,
                        ai_resolved=1,
                        handed_off=1,
                        abandoned=1,
                        tickets_created=1,
                    )
                ],
            ),
            "handoff-reasons": lambda base, q: HandoffReasonsView(
                **base.model_dump(),
                handed_off=1,
                reasons=[HandoffReasonCount(reason="customer_request", conversations=1, share=1.0)],
            ),
            "operators": lambda base, q: OperatorFiguresView(
                **base.model_dump(),
                operators=[OperatorFigures(operator_id="lucine-giulia", conversations=1, turns=1, csat_count=0)],
            ),
            "kb-gaps": lambda base, q: KbGapsView(
                **base.model_dump(),
                unanswered_questions=1,
                gaps=[
                    KbGap(
                        question="Posso portare il cane?",
                        count=1,
                        examples=["Posso portare il cane?"],
                        conversation_ids=[uuid.UUID(int=7)],
                    )
                ],
            ),
            "conversations": lambda base, q: DrilldownView(
                **base.model_dump(),
                figure=q["figure"],  # type: ignore[arg-type]
                count=1,
                items=[DrilldownItem(conversation_id=uuid.UUID(int=7), at=datetime.now(UTC))],
            ),
        }
        self.app = Starlette(
            routes=[Route(f"/internal/analytics/{name}", self.handler(name, make)) for name, make in reports.items()]
        )

    @staticmethod
    def overview(base: ReportPeriod, query: dict[str, str]) -> AnalyticsOverview:
        none = DurationFigure(count=0)
        sla = SlaFigure(met=1, missed=0, pending=0, compliance=1.0)
        return AnalyticsOverview(
            **base.model_dump(),
            as_of=datetime.now(UTC),
            conversations_started=3,
            ai_involved=3,
            ai_resolved=1,
            ai_resolved_confirmed=1,
            ai_resolved_assumed=0,
            ai_pending=0,
            handed_off=1,
            abandoned=1,
            abandoned_in_queue=1,
            abandoned_unanswered=0,
            no_operator_available=0,
            queue_wait=none,
            operator_first_response=none,
            operator_handle_time=none,
            tickets_created=1,
            sla_first_response=sla,
            sla_resolution=sla,
            csat=CsatFigure(
                count=1, average=5.0, distribution=[ScoreCount(score=s, count=s // 5) for s in range(1, 6)]
            ),
            busiest_hours=[HourCount(hour=9, conversations=3)],
        )

    def handler(self, name: str, make: Callable[[ReportPeriod, dict[str, str]], Any]) -> Any:
        async def report(request: Request) -> Response:
            query = dict(request.query_params)
            self.requests.append({"report": name, **query})
            try:
                start, end = date.fromisoformat(query["from"]), date.fromisoformat(query["to"])
                zone = zoneinfo.ZoneInfo(query.get("tz", "UTC"))
            except (KeyError, ValueError, zoneinfo.ZoneInfoNotFoundError):
                return JSONResponse({"error": {"code": "invalid_request", "message": "bad period"}}, status_code=422)
            if end < start or (end - start).days >= 366:
                return JSONResponse({"error": {"code": "invalid_request", "message": "bad range"}}, status_code=422)
            tenant_id = self.answer_tenant or query["tenant_id"]
            base = ReportPeriod(tenant_id=tenant_id, from_date=start, to_date=end, timezone=zone.key)
            if query.get("format") == "csv":
                body = f"figure,value\ntenant,{tenant_id}\nconversations_started,3\n"
                disposition = f'attachment; filename="{name}-{tenant_id}-{start}-{end}.csv"'
                return Response(
                    body, media_type="text/csv; charset=utf-8", headers={"Content-Disposition": disposition}
                )
            return JSONResponse(make(base, query).model_dump(mode="json"))

        return report


class NotifierApi:
    """The notifier's channels as the gateway sees them (another service): what each tenant's
    customers can be written to on (`TenantChannelsView`), email only for a tenant it has not been
    told of; `status` other than 200 answers that error instead; every request is counted."""

    def __init__(self) -> None:
        self.channels: dict[str, list[str]] = {}
        self.status = 200
        self.requests: list[str] = []
        self.app = Starlette(routes=[Route("/internal/tenants/{tenant_id}/channels", self.tenant_channels)])

    async def tenant_channels(self, request: Request) -> JSONResponse:
        tenant_id = request.path_params["tenant_id"]
        self.requests.append(tenant_id)
        if self.status != 200:
            return _error(self.status, "unavailable", "the notifier is not ready")
        view = TenantChannelsView.model_validate(
            {"tenant_id": tenant_id, "channels": self.channels.get(tenant_id, ["email"])}
        )
        return JSONResponse(view.model_dump(mode="json"))


def gateway_settings(
    infra: Infra, database: str, prefix: str, read_api_url: str, tenants: Path, **extra: Any
) -> Settings:
    values: dict[str, Any] = {
        "environment": "test",
        "kafka_bootstrap_servers": infra.kafka_bootstrap_servers,
        "kafka_topic_prefix": prefix,
        "postgres_host": infra.postgres_host,
        "postgres_port": infra.postgres_port,
        "postgres_user": infra.postgres_user,
        "postgres_password": infra.postgres_password,
        "postgres_db": database,
        "redis_url": infra.redis_url,
        "conversation_url": read_api_url,
        "jwt_secret": JWT_SECRET,
        "operator_jwt_secret": OPERATOR_JWT_SECRET,
        "tenants_dir": tenants,
        "operators_dir": tenants.parent / "operators",
        "rate_limit_ip_requests": 100_000,
        "rate_limit_conversation_messages": 5,
    }
    return Settings(**(values | extra))
