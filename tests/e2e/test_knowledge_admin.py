"""Loading a knowledge base through the ai-responder's admin endpoint."""

from __future__ import annotations

import httpx
import pytest

from devkit.stack import SHIPPED_KNOWLEDGE, Stack

from .conftest import ADMIN_TOKEN

pytestmark = pytest.mark.e2e


def tenant_files(tenant: str) -> dict[str, str]:
    folder = SHIPPED_KNOWLEDGE / tenant
    return {str(path.relative_to(folder)): path.read_text() for path in sorted(folder.rglob("*")) if path.is_file()}


async def test_a_knowledge_base_is_loaded_from_its_files_and_versioned(stack: Stack) -> None:
    files = tenant_files("lucine-di-natale")
    url = f"{stack.url('ai-responder')}/admin/tenants/kb-admin-test/knowledge-base"
    admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    async with httpx.AsyncClient(timeout=30) as client:
        assert (await client.put(url, json={"files": files})).status_code == 401
        wrong = await client.put(url, json={"files": files}, headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401

        first = await client.put(url, json={"files": files}, headers=admin)
        assert first.status_code == 200, first.text
        articles = len([name for name in files if name.startswith("articles/")])
        assert first.json() == {"tenant_id": "kb-admin-test", "version": 1, "articles": articles}
        second = await client.put(url, json={"files": files}, headers=admin)
        assert second.json()["version"] == 2

        broken = {**files, "articles/broken.md": "no front matter here"}
        rejected = await client.put(url, json={"files": broken}, headers=admin)
        assert rejected.status_code == 422
        assert "front matter" in rejected.json()["error"]["message"]

        escape = await client.put(url, json={"files": {"../tenant.yaml": "x"}}, headers=admin)
        assert escape.status_code == 422
