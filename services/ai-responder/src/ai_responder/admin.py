"""Loading knowledge bases: the admin endpoint and the command line share `load_files`.

    python -m ai_responder.admin load <kb_dir_or_tenant_dir>
    python -m ai_responder.admin document <tenant_id> <file.md|.txt|.html|.pdf> [language]

A directory holding `tenant.yaml` is one tenant (its folder name is the tenant id); otherwise
every sub-folder with a `tenant.yaml` is loaded.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
from pathlib import Path, PurePosixPath
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Request
from pydantic import BaseModel, Field, StringConstraints

from ai_responder.config import Settings
from ai_responder.kb import KBError, TenantKB, load_tenant
from ai_responder.store import save_knowledge_base
from contracts.envelope import TenantId
from servicekit.db import create_engine, session_factory
from servicekit.http import ApiError, Runtime
from servicekit.migrations import upgrade_to_head

MIGRATIONS = Path(__file__).with_name("migrations")

router = APIRouter(prefix="/admin", tags=["admin"])
FilePath = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*$", max_length=200)]


class KnowledgeBaseFiles(BaseModel):
    """The files of one tenant's knowledge-base folder, by relative path (tenant.yaml, articles/*.md...)."""

    files: dict[FilePath, Annotated[str, StringConstraints(max_length=200_000)]] = Field(min_length=1, max_length=500)


class KnowledgeBaseLoaded(BaseModel):
    tenant_id: str
    version: int
    articles: int


def load_files(tenant_id: str, files: dict[str, str], allow_empty: bool = False) -> TenantKB:
    """Parses a knowledge base given as file contents, with the same loader as a folder on disk.
    `allow_empty`: no article is a knowledge base with none yet (a tenant created by the platform)."""
    with tempfile.TemporaryDirectory() as root:
        folder = Path(root) / tenant_id
        for relative, content in files.items():
            if ".." in PurePosixPath(relative).parts:
                raise KBError(f"{relative}: file paths must stay inside the knowledge-base folder")
            path = folder / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(content, encoding="utf-8")
        folder.mkdir(parents=True, exist_ok=True)
        return load_tenant(folder, tenant_id, allow_empty)


async def require_admin(request: Request, authorization: Annotated[str | None, Header()] = None) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    token = runtime.settings.admin_token  # type: ignore[attr-defined]
    if not token:
        raise ApiError(403, "admin_disabled", "set ADMIN_TOKEN to enable the admin endpoints")
    if authorization != f"Bearer {token}":
        raise ApiError(401, "unauthorized", "a valid admin bearer token is required")
    return runtime


@router.put("/tenants/{tenant_id}/knowledge-base", response_model=KnowledgeBaseLoaded)
async def put_knowledge_base(
    tenant_id: TenantId, body: KnowledgeBaseFiles, runtime: Annotated[Runtime, Depends(require_admin)], request: Request
) -> KnowledgeBaseLoaded:
    try:
        kb = await asyncio.to_thread(load_files, tenant_id, body.files)
    except KBError as error:
        raise ApiError(422, "invalid_knowledge_base", str(error)) from error
    assert runtime.sessions is not None
    async with runtime.sessions() as session, session.begin():
        version = await save_knowledge_base(session, kb, note="knowledge base replaced (files)")
    await request.app.state.assistant.reload()
    return KnowledgeBaseLoaded(tenant_id=tenant_id, version=version, articles=len(kb.articles))


def tenant_folders(path: Path) -> list[Path]:
    if (path / "tenant.yaml").exists():
        return [path]
    return sorted(p for p in path.iterdir() if (p / "tenant.yaml").exists()) if path.is_dir() else []


async def load_command(path: Path) -> int:
    settings = Settings()
    folders = tenant_folders(path)
    if not folders:
        print(f"error: no tenant knowledge base (tenant.yaml) under {path}", file=sys.stderr)
        return 1
    # The command may run before the service ever started: bring the schema up first.
    await asyncio.to_thread(upgrade_to_head, MIGRATIONS, settings.database_url)
    engine = create_engine(settings.database_url, pool_size=1)
    try:
        async with session_factory(engine)() as session, session.begin():
            for folder in folders:
                kb = load_tenant(folder)
                version = await save_knowledge_base(session, kb, note=f"loaded from folder {folder.name}")
                print(f"loaded {kb.tenant_id}: {len(kb.articles)} articles (version {version})")
    except KBError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    finally:
        await engine.dispose()
    return 0


async def document_command(tenant_id: str, file: Path, language: str | None) -> int:
    """Adds (or replaces) one document's articles in a tenant's live knowledge base: a new version."""
    from ai_responder.answering import TenantKnowledge
    from ai_responder.documents import document_articles
    from ai_responder.kb_admin import merge_document
    from ai_responder.store import live_knowledge_base

    settings = Settings()
    await asyncio.to_thread(upgrade_to_head, MIGRATIONS, settings.database_url)
    engine = create_engine(settings.database_url, pool_size=1)
    try:
        async with session_factory(engine)() as session, session.begin():
            live = await live_knowledge_base(session, tenant_id, lock=True)
            if live is None:
                print(f"error: no knowledge base for {tenant_id!r}: load its folder first", file=sys.stderr)
                return 1
            _, kb = live
            config = kb.config
            data = await asyncio.to_thread(file.read_bytes)
            made = document_articles(file.name, data, config.languages, config.default_language, language)
            articles, removed = merge_document(kb, file.name, made)
            new = kb.model_copy(update={"articles": sorted(articles, key=lambda a: a.id)})
            TenantKnowledge(new)  # indexes: what cannot be served is refused before it is stored
            version = await save_knowledge_base(session, new, note=f"upload {file.name}")
            print(
                f"loaded {file.name} into {tenant_id}: {len(made)} articles, {len(removed)} removed (version {version})"
            )
    except (KBError, OSError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    finally:
        await engine.dispose()
    return 0


def main(argv: list[str]) -> int:
    if len(argv) == 3 and argv[1] == "load":
        return asyncio.run(load_command(Path(argv[2])))
    if len(argv) in (4, 5) and argv[1] == "document":
        return asyncio.run(document_command(argv[2], Path(argv[3]), argv[4] if len(argv) == 5 else None))
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
