"""The knowledge base, for supervisors and admins: articles (list, view, edit, delete), their
history and rollback, document uploads, trying the assistant, and the questions it could not
answer turned into articles. A proxy of the ai-responder's management API (`gateway.kb`).

A plain operator gets 403 and the ai-responder is never asked. The tenant is always the token's:
no path, query or body names one. The author of every change is the operator who made it (from
the token), whatever the body says.
"""

from __future__ import annotations

import uuid
from pathlib import PureWindowsPath
from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Form, Path, Query, UploadFile

from contracts.readapi import (
    AssistantTestRequest,
    AssistantTestView,
    DocumentUploadResult,
    GapArticleRequest,
    KnowledgeArticleHistory,
    KnowledgeArticleInput,
    KnowledgeArticleList,
    KnowledgeArticleView,
    KnowledgeBaseChange,
    KnowledgeBaseVersionList,
    KnowledgeRollbackRequest,
    UnansweredGroupList,
)
from gateway.api import RuntimeDep, limit_per_ip
from gateway.kb import KnowledgeClient, segment
from gateway.operator_api import OperatorDep
from gateway.operator_stream import SUPERVISING_ROLES
from gateway.schemas import operator_errors
from gateway.tokens import OperatorClaims
from servicekit.http import ApiError

router = APIRouter(prefix="/v1/kb", tags=["knowledge base"], dependencies=[Depends(limit_per_ip)])

ArticleId = Annotated[
    str, Path(pattern=r"^[a-z0-9][a-z0-9_-]{0,119}$", description="Lower-case letters, digits, '-' or '_'")
]
WORDING = {
    "s400": "The body is not valid multipart/form-data",
    "s403": "The knowledge base is for supervisors and admins",
    "s404": "No such article, version or gap in the operator's tenant (or the tenant has no knowledge base)",
    "s409": "`article_exists` (an id another article or document has) or `last_article` (the last one)",
    "s413": "The document is larger than 10 MiB (or a request body over the limit)",
    "s422": "Invalid request, or an article or document the assistant could not use (the message says why); "
    "the live version stays",
    "s502": "The ai-responder answered badly",
    "s503": "The ai-responder is unreachable, or the gateway has no admin token for it",
}


def responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    return operator_errors(401, 403, *statuses, 429, 502, 503, **WORDING)


class Kb:
    """The caller (a supervisor or admin) and a client of their tenant's knowledge base."""

    def __init__(self, runtime: RuntimeDep, operator: OperatorDep) -> None:
        if operator.role not in SUPERVISING_ROLES:
            raise ApiError(403, "forbidden", "the knowledge base is for supervisors and admins")
        self.operator: OperatorClaims = operator
        self.client = KnowledgeClient(
            runtime.copilot_http, runtime.config.ai_responder_admin_token, tenant_id=operator.tenant_id
        )

    @property
    def author(self) -> str:
        return (self.operator.display_name or self.operator.operator_id)[:200]


KbDep = Annotated[Kb, Depends()]


@router.get(
    "/articles",
    response_model=KnowledgeArticleList,
    summary="The tenant's articles, with the version that last changed each",
    responses=responses(404),
)
async def list_articles(kb: KbDep) -> KnowledgeArticleList:
    return await kb.client.call(KnowledgeArticleList, "GET", "/articles")


@router.get(
    "/articles/{article_id}",
    response_model=KnowledgeArticleView,
    summary="One article, as the live version has it or as `version` had it",
    responses=responses(404, 422),
)
async def get_article(
    kb: KbDep, article_id: ArticleId, version: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None
) -> KnowledgeArticleView:
    params = {"version": version} if version is not None else {}
    return await kb.client.call(KnowledgeArticleView, "GET", f"/articles/{segment(article_id)}", params=params)


@router.put(
    "/articles/{article_id}",
    response_model=KnowledgeBaseChange,
    summary="Add or edit an article (a new version of the knowledge base)",
    responses=responses(404, 409, 413, 422),
)
async def put_article(kb: KbDep, article_id: ArticleId, body: KnowledgeArticleInput) -> KnowledgeBaseChange:
    body = body.model_copy(update={"author": kb.author})
    path = f"/articles/{segment(article_id)}"
    return await kb.client.call(KnowledgeBaseChange, "PUT", path, json=body.model_dump(mode="json"))


@router.delete(
    "/articles/{article_id}",
    response_model=KnowledgeBaseChange,
    summary="Remove an article (a new version; the last article cannot be removed)",
    responses=responses(404, 409, 422),
)
async def delete_article(kb: KbDep, article_id: ArticleId) -> KnowledgeBaseChange:
    path = f"/articles/{segment(article_id)}"
    return await kb.client.call(KnowledgeBaseChange, "DELETE", path, params={"author": kb.author})


@router.get(
    "/articles/{article_id}/history",
    response_model=KnowledgeArticleHistory,
    summary="Each version that added, edited or removed the article, newest first, with author and note",
    responses=responses(404, 422),
)
async def article_history(kb: KbDep, article_id: ArticleId) -> KnowledgeArticleHistory:
    return await kb.client.call(KnowledgeArticleHistory, "GET", f"/articles/{segment(article_id)}/history")


@router.get(
    "/versions",
    response_model=KnowledgeBaseVersionList,
    summary="The knowledge base's versions, newest first",
    responses=responses(404),
)
async def list_versions(kb: KbDep) -> KnowledgeBaseVersionList:
    return await kb.client.call(KnowledgeBaseVersionList, "GET", "/versions")


@router.post(
    "/rollback",
    response_model=KnowledgeBaseChange,
    summary="Bring back the whole knowledge base, or one article, as an earlier version had it (a new version)",
    responses=responses(404, 409, 413, 422),
)
async def rollback(kb: KbDep, body: KnowledgeRollbackRequest) -> KnowledgeBaseChange:
    body = body.model_copy(update={"author": kb.author})
    return await kb.client.call(KnowledgeBaseChange, "POST", "/rollback", json=body.model_dump(mode="json"))


@router.post(
    "/documents",
    response_model=DocumentUploadResult,
    summary="Upload a document (Markdown, text, HTML or PDF, up to 10 MiB): its sections become articles; "
    "an earlier upload of the same file is replaced",
    responses=responses(400, 409, 413, 422),
)
async def upload_document(
    kb: KbDep,
    runtime: RuntimeDep,
    file: Annotated[UploadFile, File(description="The document; its name says its type (.md, .txt, .html, .pdf)")],
    language: Annotated[
        str | None, Form(pattern=r"^[a-z]{2}$", description="Its language (else the file name's, or detected)")
    ] = None,
) -> DocumentUploadResult:
    # A browser may send a full Windows path as the name: only its last part is the file's name.
    filename = PureWindowsPath(file.filename or "").name.strip()
    if not 1 <= len(filename) <= 200:
        raise ApiError(422, "invalid_document", "the file needs a name of 1 to 200 characters")
    limit = runtime.config.kb_document_max_bytes
    data = await file.read(limit + 1)
    if len(data) > limit:
        raise ApiError(413, "too_large", f"a document may be at most {limit // (1024 * 1024)} MiB")
    params: dict[str, str] = {"filename": filename, "author": kb.author}
    if language is not None:
        params["language"] = language
    octets = {"Content-Type": "application/octet-stream"}
    return await kb.client.call(DocumentUploadResult, "POST", "/documents", params=params, content=data, headers=octets)


@router.post(
    "/test",
    response_model=AssistantTestView,
    summary="What the assistant answers a question, with its sources and the scores of the best passages",
    responses=responses(404, 413, 422),
)
async def test_assistant(kb: KbDep, body: AssistantTestRequest) -> AssistantTestView:
    return await kb.client.call(AssistantTestView, "POST", "/test", json=body.model_dump(mode="json"))


@router.get(
    "/gaps",
    response_model=UnansweredGroupList,
    summary="The customers' questions the assistant could not answer (and handed off), grouped, the most asked first",
    responses=responses(422),
)
async def list_gaps(
    kb: KbDep,
    days: Annotated[int, Query(ge=1, le=365)] = 30,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> UnansweredGroupList:
    return await kb.client.call(UnansweredGroupList, "GET", "/gaps", params={"days": days, "limit": limit})


@router.post(
    "/gaps/{gap_id}/article",
    response_model=KnowledgeBaseChange,
    summary="Answer a group of unanswered questions with a new article (its questions are then answered)",
    responses=responses(404, 409, 413, 422),
)
async def article_from_gap(kb: KbDep, gap_id: uuid.UUID, body: GapArticleRequest) -> KnowledgeBaseChange:
    body = body.model_copy(update={"author": kb.author})
    path = f"/gaps/{gap_id}/article"
    return await kb.client.call(KnowledgeBaseChange, "POST", path, json=body.model_dump(mode="json"))
