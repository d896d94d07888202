"""The dashboard's knowledge-base page in a real Chromium, against the whole running system (the
gateway proxying the ai-responder's management API, PostgreSQL, the consumer storing unanswered
questions). An admin (made with `python -m gateway.operators create`) opens the page with Alt+7,
uploads a file that is no PDF and sees why it was refused, uploads a Markdown document, edits one
of its articles, asks the test box a question and sees the answer with its sources and scores,
turns a customer's unanswered question into an article in two clicks (the test box then answers
it), and rolls the edited article back."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from playwright.async_api import Browser, expect

from devkit.stack import REPO, SERVICES, Stack
from devkit.widget_client import Stream, start_conversation

from .conftest import DEMO_TENANT, DEMO_WIDGET_KEY
from .test_dashboard_browser import log_in, operator_context, shots

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

ADMIN = ("elena", "lucine-e2e-admin-elena")
UNANSWERED = "Avete una pista di pattinaggio sul ghiaccio?"
DOCUMENT = """# Servizi del parco

## Guardaroba
Il guardaroba si trova all'ingresso principale ed è gratuito. Accetta cappotti, zaini e borse fino alle 22:30.

## Fasciatoio
Un fasciatoio riscaldato si trova nei bagni vicino alla casa di Babbo Natale.
"""


def create_admin(stack: Stack) -> None:
    """An admin of the demo tenant, made as a deployment makes one: the gateway's command."""
    spec = next(s for s in SERVICES if s.name == "gateway")
    command = [sys.executable, "-m", "gateway.operators", "create", "--tenant", DEMO_TENANT, "--username", ADMIN[0]]
    command += ["--display-name", "Elena (admin)", "--role", "admin", "--password-stdin"]
    done = subprocess.run(
        command, input=ADMIN[1] + "\n", env=stack.env_for(spec), cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr


async def a_customer_asks_what_the_kb_cannot_answer(gateway: httpx.AsyncClient, stack: Stack) -> None:
    conversation = await start_conversation(gateway, stack.url("gateway"), DEMO_WIDGET_KEY, "it")
    async with Stream(conversation.stream_url()) as stream:
        posted = await conversation.post(UNANSWERED)
        assert posted.status_code == 202, posted.text
        answer = await stream.message_from("ai")
    assert not answer.sources, "the knowledge base had no answer"


async def gap_listed(gateway: httpx.AsyncClient) -> None:
    login = await gateway.post("/v1/operators/login", json={"username": ADMIN[0], "password": ADMIN[1]})
    headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
    for _ in range(100):
        gaps = (await gateway.get("/v1/kb/gaps", headers=headers)).json()
        if any(g["question"] == UNANSWERED for g in gaps["groups"]):
            return
        await asyncio.sleep(0.2)
    raise AssertionError("the unanswered question never became a gap")


async def test_an_admin_manages_the_knowledge_base(browser: Browser, stack: Stack, tmp_path: Path) -> None:
    folder = shots(tmp_path)
    create_admin(stack)
    async with httpx.AsyncClient(base_url=stack.url("gateway"), timeout=15) as gateway:
        await a_customer_asks_what_the_kb_cannot_answer(gateway, stack)
        await gap_listed(gateway)

    context = await operator_context(browser, stack)
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    await log_in(page, stack, ADMIN)
    await page.keyboard.press("Alt+7")
    await expect(page.get_by_test_id("view-kb")).to_have_attribute("aria-current", "page")
    await expect(page.get_by_test_id("kb-article").first).to_be_visible(timeout=15_000)
    await page.screenshot(path=str(folder / "e2e-kb-articles.png"))

    # A file that is no PDF: the ai-responder's reason, and nothing changes.
    version = await page.get_by_test_id("kb-version").inner_text()
    await page.get_by_test_id("kb-file").set_input_files(
        files=[{"name": "listino.pdf", "mimeType": "application/pdf", "buffer": b"questo non e un PDF"}]
    )
    await page.get_by_test_id("kb-upload-submit").click()
    refused = page.get_by_test_id("kb-upload-error")
    await expect(refused).to_contain_text("listino.pdf: not a PDF file")
    await expect(page.get_by_test_id("kb-version")).to_have_text(version)
    await page.screenshot(path=str(folder / "e2e-kb-bad-file.png"))

    # A Markdown document: one article per section, the first one opened.
    await page.get_by_test_id("kb-file").set_input_files(
        files=[{"name": "servizi.it.md", "mimeType": "text/markdown", "buffer": DOCUMENT.encode()}]
    )
    await page.get_by_test_id("kb-upload-submit").click()
    await expect(page.get_by_test_id("kb-upload-done")).to_contain_text("servizi.it.md")
    await expect(refused).to_have_count(0)
    cloakroom = page.get_by_test_id("kb-article").filter(has_text="Guardaroba")
    await expect(cloakroom).to_have_count(1)

    # Edit it (keyboard: Ctrl+Enter saves).
    await cloakroom.click()
    await expect(page.get_by_test_id("kb-article-title")).to_have_text("Guardaroba")
    await page.get_by_test_id("kb-edit").click()
    # The editor puts the cursor in the title once it has opened: typing before that would go there.
    await expect(page.get_by_test_id("kb-editor-title-it")).to_be_focused()
    body = page.get_by_test_id("kb-editor-body-it")
    await body.fill("Il guardaroba all'ingresso principale costa 2 € a capo e chiude alle 23:00.")
    await page.get_by_test_id("kb-editor-note").fill("guardaroba a pagamento")
    await body.press("Control+Enter")
    await expect(page.get_by_test_id("kb-body-it")).to_contain_text("costa 2 €")

    # The test box: the answer, its source and the passages' scores.
    await page.get_by_test_id("kb-tab-test").click()
    await page.get_by_test_id("kb-test-question").fill("Quanto costa il guardaroba?")
    await page.get_by_test_id("kb-test-question").press("Enter")
    await expect(page.get_by_test_id("kb-test-answer")).to_contain_text("2 €")
    await expect(page.get_by_test_id("kb-test-sources")).to_contain_text("Guardaroba")
    await expect(page.get_by_test_id("kb-test-passages").locator("tbody tr").first).to_contain_text("Guardaroba")
    await page.screenshot(path=str(folder / "e2e-kb-test.png"))

    # The customer's unanswered question: "create article", the editor has it as title, save.
    await page.get_by_test_id("kb-tab-gaps").click()
    gap = page.get_by_test_id("kb-gap").filter(has_text=UNANSWERED)
    await expect(gap).to_have_count(1)
    await page.screenshot(path=str(folder / "e2e-kb-gaps.png"))
    await gap.get_by_test_id("kb-gap-create").click()
    await expect(page.get_by_test_id("kb-editor-title-it")).to_have_value(UNANSWERED)
    await page.get_by_test_id("kb-editor-body-it").fill(
        "Sì: la pista di pattinaggio sul ghiaccio è aperta tutte le sere dalle 17 alle 22, con noleggio pattini."
    )
    await page.screenshot(path=str(folder / "e2e-kb-gap-editor.png"))
    await page.get_by_test_id("kb-editor-save").click()
    await expect(page.get_by_test_id("kb-article-title")).to_have_text(UNANSWERED)
    await page.get_by_test_id("kb-tab-gaps").click()
    await expect(page.get_by_test_id("kb-gap").filter(has_text=UNANSWERED)).to_have_count(0)
    await page.get_by_test_id("kb-tab-test").click()
    await page.get_by_test_id("kb-test-question").fill("C'è una pista di pattinaggio?")
    await page.get_by_test_id("kb-test-ask").click()
    await expect(page.get_by_test_id("kb-test-answer")).to_contain_text("pattinaggio")
    await expect(page.get_by_test_id("kb-test-sources")).to_contain_text(UNANSWERED)

    # Roll the edited article back: its history, then "restore" the version the upload made.
    await page.get_by_test_id("kb-tab-articles").click()
    await page.get_by_test_id("kb-article").filter(has_text="Guardaroba").click()
    await page.get_by_test_id("kb-history").click()
    revisions = page.get_by_test_id("kb-revision")
    await expect(revisions).to_have_count(2)
    await expect(revisions.first).to_contain_text("guardaroba a pagamento")
    await expect(revisions.first).to_contain_text("Elena (admin)")
    await page.screenshot(path=str(folder / "e2e-kb-history.png"))
    await revisions.nth(1).get_by_test_id("kb-revision-restore").click()
    await expect(page.get_by_test_id("kb-body-it")).to_contain_text("è gratuito")
    await expect(revisions).to_have_count(3)
    await expect(page.get_by_test_id("toast")).to_contain_text("Ripristinato")

    # In English too.
    await page.get_by_test_id("lang-en").click()
    await expect(page.get_by_test_id("kb-tab-gaps")).to_contain_text("Unanswered questions")
    await page.screenshot(path=str(folder / "e2e-kb-english.png"))
    assert not errors, errors
    await context.close()


async def test_a_plain_operator_has_no_knowledge_base_page(browser: Browser, stack: Stack) -> None:
    context = await operator_context(browser, stack)
    page = await context.new_page()
    await log_in(page, stack)
    await expect(page.get_by_test_id("view-tickets")).to_be_visible()
    await expect(page.get_by_test_id("view-kb")).to_have_count(0)
    await page.keyboard.press("Alt+7")
    await expect(page.get_by_test_id("kb-page")).to_have_count(0)
    await context.close()


def test_the_admin_token_is_one_value_for_both_services(stack: Stack) -> None:
    gateway = next(s for s in SERVICES if s.name == "gateway")
    ai_responder = next(s for s in SERVICES if s.name == "ai-responder")
    assert stack.env_for(gateway)["AI_RESPONDER_ADMIN_TOKEN"] == stack.env_for(ai_responder)["ADMIN_TOKEN"]
