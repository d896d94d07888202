"""The widget on the demo page, in a real Chromium, against the whole running system."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaConsumer
from playwright.async_api import Browser, Locator, Page, expect

from contracts import topics
from devkit.stack import Stack

from .conftest import DEMO_TENANT

pytestmark = [pytest.mark.e2e, pytest.mark.browser]


async def open_demo(browser: Browser, stack: Stack, viewport: dict[str, int]) -> Page:
    page = await browser.new_page(viewport=viewport)  # type: ignore[arg-type]
    await page.goto(f"{stack.url('gateway')}/demo/{DEMO_TENANT}")
    await page.get_by_test_id("launcher").click()
    await expect(page.get_by_test_id("panel")).to_be_visible()
    return page


async def ask(page: Page, question: str) -> None:
    await page.get_by_test_id("input").fill(question)
    await page.get_by_test_id("send").click()


async def test_asking_the_price_on_the_demo_page_shows_prices_and_a_buy_button(
    browser: Browser, stack: Stack, tmp_path: Path
) -> None:
    page = await open_demo(browser, stack, {"width": 1280, "height": 800})
    await ask(page, "Quanto costano i biglietti?")

    answer = page.locator('[data-testid="message"][data-sender="ai"]').first
    await expect(answer).to_contain_text("9", timeout=20_000)
    await expect(answer).to_contain_text("13")
    await expect(answer.locator("strong").first).to_be_visible()  # **bold** in the KB renders as bold
    assert "**" not in await answer.inner_text()
    buy = page.locator('[data-testid="action-button"][href*="lucinedinatale.it/products"]')
    await expect(buy).to_be_visible()
    await expect(page.locator('[data-testid="message"][data-sender="customer"]')).to_have_count(1)
    await page.screenshot(path=str(tmp_path / "widget-desktop.png"))
    await page.close()


async def test_text_is_rendered_as_text_and_the_widget_works_on_a_phone(
    browser: Browser, stack: Stack, tmp_path: Path
) -> None:
    page = await open_demo(browser, stack, {"width": 390, "height": 844})
    injected = "A che ora aprite? <img src=x onerror=\"document.body.dataset.pwned='yes'\">"
    await ask(page, injected)

    customer = page.locator('[data-testid="message"][data-sender="customer"]').first
    await expect(customer).to_contain_text("<img src=x")
    # The reply arrives and is rendered; the markup the customer typed never became elements.
    await expect(page.locator('[data-testid="message"][data-sender="ai"]')).to_have_count(1, timeout=20_000)
    assert await page.evaluate("document.body.dataset.pwned") is None
    panel = await page.get_by_test_id("panel").bounding_box()
    assert panel is not None
    assert panel["width"] >= 380, "the panel fills a phone-sized screen"
    await page.screenshot(path=str(tmp_path / "widget-phone.png"))
    await page.close()


async def test_a_person_can_be_asked_for_from_the_header_at_any_time(
    browser: Browser, stack: Stack, tmp_path: Path
) -> None:
    page = await open_demo(browser, stack, {"width": 1280, "height": 800})
    ask_person = page.get_by_test_id("ask-person")
    await expect(ask_person).to_be_hidden()  # no conversation yet
    await ask(page, "Quanto costano i biglietti?")
    await expect(page.locator('[data-testid="message"][data-sender="ai"]').first).to_be_visible(timeout=20_000)
    await expect(ask_person).to_be_visible()
    await page.screenshot(path=str(tmp_path / "widget-ask-person.png"))

    await ask_person.click()
    # Queued when someone is online, else invited to leave contact details: either way the
    # customer is told, and the button goes away while a person is being found.
    status = page.get_by_test_id("status")
    await expect(status).to_have_attribute(
        "data-conversation-status", re.compile("QUEUED|TICKET_PENDING"), timeout=20_000
    )
    await expect(status).to_be_visible()
    await expect(ask_person).to_be_hidden()
    await page.screenshot(path=str(tmp_path / "widget-after-asking.png"))
    await page.close()


# ------------------------------------------------------------------------------ the ticket form


async def operator_token(stack: Stack) -> str:
    async with httpx.AsyncClient(base_url=stack.url("gateway"), timeout=15) as http:
        login = await http.post("/v1/operators/login", json={"username": "sofia", "password": "lucine-demo-sofia"})
        assert login.status_code == 200, login.text
        return str(login.json()["access_token"])


async def ticket_numbered(stack: Stack, number: str) -> dict[str, Any]:
    """The ticket as the operators see it (the tickets service's view, through the gateway)."""
    headers = {"Authorization": f"Bearer {await operator_token(stack)}"}
    async with httpx.AsyncClient(base_url=stack.url("gateway"), timeout=15, headers=headers) as http:
        listed = await http.get("/v1/tickets", params={"q": number})
        assert listed.status_code == 200, listed.text
        [summary] = [t for t in listed.json()["tickets"] if t["ticket_number"] == number]
        detail = await http.get(f"/v1/tickets/{summary['ticket_id']}")
        assert detail.status_code == 200, detail.text
        return dict(detail.json())


def widget(page: Page, testid: str) -> Locator:
    return page.get_by_test_id(testid)


async def submitted_details(stack: Stack, conversation_id: str) -> int:
    """How many SubmitTicketDetails the gateway published for the conversation."""
    topic = stack.base_env["KAFKA_TOPIC_PREFIX"] + topics.CONVERSATION_COMMANDS.name
    reader = AIOKafkaConsumer(
        topic, bootstrap_servers=stack.base_env["KAFKA_BOOTSTRAP_SERVERS"], auto_offset_reset="earliest"
    )
    await reader.start()
    count = 0
    try:
        deadline = asyncio.get_running_loop().time() + 8
        while asyncio.get_running_loop().time() < deadline:
            for records in (await reader.getmany(timeout_ms=500)).values():
                for record in records:
                    event = json.loads(record.value)
                    if event["conversation_id"] == conversation_id and event["type"].endswith("submit_ticket_details"):
                        count += 1
    finally:
        await reader.stop()
    return count


async def test_with_nobody_online_the_customer_leaves_a_message_and_gets_the_ticket_number(
    browser: Browser, stack: Stack, tmp_path: Path
) -> None:
    context = await browser.new_context(viewport={"width": 1280, "height": 800}, locale="it-IT")
    page = await context.new_page()
    await page.goto(f"{stack.url('gateway')}/demo/{DEMO_TENANT}")
    await widget(page, "launcher").click()
    await ask(page, "Vorrei prenotare una visita per un gruppo di 30 persone")
    await expect(page.locator('[data-testid="message"][data-sender="ai"]').first).to_be_visible(timeout=20_000)
    await widget(page, "ask-person").click()
    status = widget(page, "status")
    try:  # routing finds nobody online (QUEUED for a moment, then TICKET_PENDING)
        await expect(status).to_have_attribute("data-conversation-status", "TICKET_PENDING", timeout=20_000)
    except AssertionError:  # someone is online after all: the customer chooses not to wait
        await widget(page, "menu").click()
        await widget(page, "menu-leave-message").click()
    form = widget(page, "ticket-form")
    await expect(form).to_be_visible()
    await expect(widget(page, "input")).to_be_hidden()  # the form replaces the composer
    await expect(widget(page, "ticket-preferred-hint")).to_be_visible()  # no channel before a contact

    # Nothing given: each field says what is missing, and nothing is sent.
    await widget(page, "ticket-submit").click()
    await expect(form).to_contain_text("Scrivi il tuo nome.")
    await expect(form).to_contain_text("Lasciaci un'email o un numero di telefono.")
    await widget(page, "ticket-name").fill("Anna Rossi")
    await widget(page, "ticket-email").fill("anna.rossi@")
    await widget(page, "ticket-submit").click()
    await expect(form).to_contain_text("Questa email non sembra valida.")
    await widget(page, "ticket-email").fill("anna.rossi@example.com")
    channels = page.locator('[data-testid="ticket-preferred"]:visible')
    await expect(channels).to_have_count(1)  # email only, until a phone is given
    await widget(page, "ticket-phone").fill("+39 333 1234567")
    # This stack's notifier has no Twilio account: no WhatsApp nor SMS, but the call back.
    await expect(channels).to_have_count(2)
    assert [await c.get_attribute("data-channel") for c in await channels.all()] == ["email", "phone"]
    await page.locator('[data-testid="ticket-preferred"][data-channel="phone"]').check()
    await widget(page, "ticket-message").fill("Siamo in 30, con due persone in carrozzina.")
    await page.screenshot(path=str(tmp_path / "widget-ticket-form-desktop.png"))

    await widget(page, "ticket-submit").dblclick()  # a double click sends once
    confirmation = widget(page, "ticket-confirmation")
    await expect(confirmation).to_be_visible(timeout=30_000)
    number = widget(page, "ticket-number")
    await expect(number).to_have_text(re.compile(r"^[A-Z]{2,5}-\d{4}-\d{6,10}$"), timeout=15_000)
    ticket_number = await number.inner_text()
    # The conversation service's own notice, with the same number, is in the conversation too; the
    # promise is the ticket's when the notice states one, else the site's (data-ticket-response-hours).
    notice = page.locator('[data-testid="message"][data-sender="system"]').filter(has_text=ticket_number)
    await expect(notice).to_have_count(1)
    promised = re.search(r"Ti risponderemo entro [^.]+\.", await notice.inner_text())
    expected = promised.group(0) if promised else "Ti risponderemo entro 24 ore."
    await expect(widget(page, "ticket-promise")).to_have_text(expected)
    await expect(confirmation).to_contain_text(
        "Ti chiameremo al +39 333 1234567; una conferma scritta arriverà alla tua email anna.rossi@example.com."
    )
    await expect(status).to_have_attribute("data-conversation-status", "TICKET_CREATED")
    link = widget(page, "ticket-status-link")
    assert ticket_number in (await link.get_attribute("href") or "")
    await expect(widget(page, "new-conversation")).to_be_visible()
    await page.screenshot(path=str(tmp_path / "widget-ticket-confirmation-desktop.png"))

    conversation_id = (await page.evaluate("window.LucineWidget.state()"))["conversationId"]
    assert await submitted_details(stack, conversation_id) == 1
    # The tickets service opened it with the details as the customer typed them, and the chat.
    ticket = await ticket_numbered(stack, ticket_number)
    assert (ticket["contact"]["name"], ticket["contact"]["email"], ticket["contact"]["preferred_contact"]) == (
        "Anna Rossi",
        "anna.rossi@example.com",
        "phone",
    )
    assert ticket["conversation_id"] == conversation_id
    assert ticket["message"] == "Siamo in 30, con due persone in carrozzina."
    await context.close()


async def test_on_a_phone_the_customer_chooses_to_leave_a_message_from_the_menu(
    browser: Browser, stack: Stack, tmp_path: Path
) -> None:
    context = await browser.new_context(viewport={"width": 390, "height": 844}, locale="en-GB")
    page = await context.new_page()
    await page.goto(f"{stack.url('gateway')}/demo/{DEMO_TENANT}")
    await widget(page, "launcher").click()
    await widget(page, "menu").click()
    await page.screenshot(path=str(tmp_path / "widget-menu-phone.png"))
    await widget(page, "menu-leave-message").click()
    form = widget(page, "ticket-form")
    await expect(form).to_be_visible()
    await expect(form).to_contain_text("Leave us a message")

    await widget(page, "ticket-name").fill("John Smith")
    await widget(page, "ticket-phone").fill("+44 20 7946 0958")
    visible = page.locator('[data-testid="ticket-preferred"]:visible')
    # No Twilio account in this stack: the call back is the one choice for a number.
    await expect(visible).to_have_count(1)
    assert [await c.get_attribute("data-channel") for c in await visible.all()] == ["phone"]
    await page.locator('[data-testid="ticket-preferred"][data-channel="phone"]').check()
    await widget(page, "ticket-submit").click()
    await expect(form).to_contain_text("Write your message.")  # nothing said in the chat yet
    await widget(page, "ticket-message").fill("Can I change the date of my tickets?")
    # Nothing sticks out of a phone's screen.
    overflow = await page.evaluate(
        """() => { const host = document.querySelector('#lucine-widget-host').shadowRoot;
        const form = host.querySelector('[data-testid="ticket-form"]');
        return form.scrollWidth - form.clientWidth; }"""
    )
    assert overflow <= 0
    await page.screenshot(path=str(tmp_path / "widget-ticket-form-phone.png"))
    await widget(page, "ticket-submit").click()

    await expect(widget(page, "ticket-confirmation")).to_be_visible(timeout=30_000)
    await expect(widget(page, "ticket-number")).to_have_text(re.compile(r"^[A-Z]{2,5}-\d{4}-\d{6,10}$"), timeout=15_000)
    await expect(widget(page, "ticket-promise")).to_have_text(re.compile(r"^We will answer (you )?within [^.]+\.$"))
    # No email and no SMS or WhatsApp for the tenant: nothing written will follow, only the call.
    await expect(widget(page, "ticket-confirmation")).to_contain_text("We will call you at +44 20 7946 0958.")
    await page.screenshot(path=str(tmp_path / "widget-ticket-confirmation-phone.png"))
    await context.close()


async def test_an_address_only_the_server_refuses_is_told_beside_the_email_field(
    browser: Browser, stack: Stack, tmp_path: Path
) -> None:
    context = await browser.new_context(viewport={"width": 1280, "height": 800}, locale="it-IT")
    page = await context.new_page()
    ticket_posts: list[str] = []
    page.on(
        "request", lambda r: ticket_posts.append(r.url) if r.method == "POST" and r.url.endswith("/ticket") else None
    )
    await page.goto(f"{stack.url('gateway')}/demo/{DEMO_TENANT}")
    await widget(page, "launcher").click()
    await widget(page, "menu").click()
    await widget(page, "menu-leave-message").click()
    form = widget(page, "ticket-form")
    await expect(form).to_be_visible()
    email = widget(page, "ticket-email")
    email_error = page.locator(f"#{await email.get_attribute('id')}-err")
    await widget(page, "ticket-name").fill("Test")
    await widget(page, "ticket-message").fill("Vorrei sapere se siete aperti a Santo Stefano.")

    # Refused by the widget itself, as the server would: nothing is sent.
    for refused in ["mario..rossi@example.com", "mario@example.test"]:
        await email.fill(refused)
        await widget(page, "ticket-submit").click()
        await expect(email_error).to_have_text("Questa email non sembra valida.")
    assert ticket_posts == []

    # Refused by the server only: its 422 names the field, and the customer reads the widget's words.
    await email.fill("mario@exa_mple.com")
    async with page.expect_response(lambda r: r.url.endswith("/ticket")) as answered:
        await widget(page, "ticket-submit").click()
    response = await answered.value
    assert response.status == 422
    assert (await response.json())["error"]["message"].startswith("email.")
    await expect(email_error).to_have_text("Questa email non sembra valida.")
    await expect(email).to_be_focused()
    await expect(widget(page, "ticket-error")).to_be_hidden()
    shown = await widget(page, "panel").inner_text()
    for server_words in ["function-after", "validator", "value is not a valid"]:
        assert server_words not in shown
    await page.screenshot(path=str(tmp_path / "widget-ticket-email-refused-by-the-server.png"))
    await context.close()


async def test_the_museum_demo_page_is_its_own_and_the_no_operator_form_leads_back_to_the_assistant(
    browser: Browser, stack: Stack, tmp_path: Path
) -> None:
    # The museum has no operators at all: asking for a person always ends on the contact form.
    context = await browser.new_context(viewport={"width": 375, "height": 740}, locale="it-IT")
    page = await context.new_page()
    await page.goto(f"{stack.url('gateway')}/demo/museo-del-vetro")
    await expect(page).to_have_title("Museo del Vetro — pagina di prova")
    await expect(page.locator("h1")).to_have_text("Museo del Vetro")
    host_text = await page.locator("body").inner_text()
    for other_site in ["Lucine", "Natale", "Leggiuno", "biglietti"]:
        assert other_site not in host_text
    await page.screenshot(path=str(tmp_path / "demo-museo.png"))

    await widget(page, "launcher").click()
    await expect(page.locator(".lw-title")).to_have_text("Museo del Vetro")
    await ask(page, "A che ora apre il museo?")
    answers = page.locator('[data-testid="message"][data-sender="ai"]')
    await expect(answers.first).to_be_visible(timeout=20_000)
    await widget(page, "ask-person").click()
    status = widget(page, "status")
    await expect(status).to_have_attribute("data-conversation-status", "TICKET_PENDING", timeout=20_000)
    form = widget(page, "ticket-form")
    await expect(form).to_be_visible()
    to_ai = widget(page, "ticket-back-to-ai")
    await expect(to_ai).to_have_text("Torna all'assistente")
    await page.screenshot(path=str(tmp_path / "widget-museo-no-operator.png"))

    # By keyboard, back to the assistant: the server moves the conversation to AI, and the chat returns.
    await to_ai.focus()
    await page.keyboard.press("Enter")
    await expect(status).to_have_attribute("data-conversation-status", "AI", timeout=20_000)
    await expect(form).to_be_hidden()
    await expect(widget(page, "input")).to_be_focused()
    await expect(widget(page, "ask-person")).to_be_visible()
    before = await answers.count()
    await ask(page, "Quanto costa il biglietto?")
    await expect(answers).to_have_count(before + 1, timeout=20_000)
    await page.screenshot(path=str(tmp_path / "widget-museo-back-to-the-assistant.png"))

    # A reload keeps the conversation with the assistant.
    await page.reload()
    await widget(page, "launcher").click()
    await expect(answers).to_have_count(before + 1, timeout=20_000)
    await expect(status).to_have_attribute("data-conversation-status", "AI", timeout=20_000)
    await expect(form).to_be_hidden()
    await expect(widget(page, "input")).to_be_visible()
    await context.close()


async def test_an_italian_browser_writing_english_gets_the_widget_in_english(
    browser: Browser, stack: Stack, tmp_path: Path
) -> None:
    context = await browser.new_context(viewport={"width": 1280, "height": 800}, locale="it-IT")
    page = await context.new_page()
    await page.goto(f"{stack.url('gateway')}/demo/{DEMO_TENANT}")  # no data-lang: the site chose no language
    await widget(page, "launcher").click()
    await expect(widget(page, "input")).to_have_attribute("placeholder", "Scrivi un messaggio…")  # the browser's
    await ask(page, "Hello, I need to talk to a human please")

    # The assistant answers in English, the language it read the message in: so does the widget.
    answer = page.locator('[data-testid="message"][data-sender="ai"]').first
    await expect(answer).to_be_visible(timeout=20_000)
    await expect(answer.locator(".lw-sender")).to_have_text("Assistant")
    await expect(widget(page, "input")).to_have_attribute("placeholder", "Write a message…")
    await expect(widget(page, "ask-person")).to_have_text("Talk to a person")
    await expect(widget(page, "menu")).to_have_attribute("aria-label", "More options")
    assert (await page.evaluate("window.LucineWidget.state()"))["lang"] == "en"
    await page.screenshot(path=str(tmp_path / "widget-english-answer.png"))

    yes = answer.locator('[data-testid="action-button"][data-action="request_operator"]')
    await expect(yes).to_have_text("Yes, call an operator")
    await yes.click()
    # The conversation service's notice is in English too.
    connecting = page.locator('[data-testid="message"][data-sender="system"]').filter(
        has_text="I'm connecting you with an operator"
    )
    await expect(connecting).to_have_count(1, timeout=20_000)
    status = widget(page, "status")
    try:  # routing finds nobody online (QUEUED for a moment, then TICKET_PENDING)
        await expect(status).to_have_attribute("data-conversation-status", "TICKET_PENDING", timeout=20_000)
    except AssertionError:  # someone is online after all: the customer chooses not to wait
        await expect(status).to_have_text(re.compile(r"^Waiting for an operator"))
        await widget(page, "menu").click()
        await widget(page, "menu-leave-message").click()
    else:
        await expect(status).to_have_text("Leave us your contact details: we will get back to you soon")

    form = widget(page, "ticket-form")
    await expect(form).to_be_visible()
    await expect(form.locator("h3")).to_have_text("Leave us a message")
    await widget(page, "ticket-submit").click()
    await expect(form).to_contain_text("Write your name.")
    await expect(form).to_contain_text("Leave us an email or a phone number.")
    shown = await widget(page, "panel").inner_text()
    for italian in ["Lasciaci", "Scrivi", "Nome", "Telefono", "Invia", "Parla con"]:
        assert italian not in shown, italian
    await page.screenshot(path=str(tmp_path / "widget-english-form.png"))

    await widget(page, "ticket-name").fill("John Smith")
    await widget(page, "ticket-email").fill("john.smith@example.com")
    await widget(page, "ticket-message").fill("I would like to talk to someone about a group visit.")
    await widget(page, "ticket-submit").click()
    confirmation = widget(page, "ticket-confirmation")
    await expect(confirmation).to_be_visible(timeout=30_000)
    await expect(confirmation.locator("h3")).to_have_text("Request registered")
    number = widget(page, "ticket-number")
    await expect(number).to_have_text(re.compile(r"^[A-Z]{2,5}-\d{4}-\d{6,10}$"), timeout=15_000)
    notice = page.locator('[data-testid="message"][data-sender="system"]').filter(has_text=await number.inner_text())
    await expect(notice).to_contain_text("We opened request")
    await expect(widget(page, "ticket-promise")).to_have_text(re.compile(r"^We will answer (you )?within [^.]+\.$"))
    await expect(confirmation).to_contain_text("We will write to john.smith@example.com.")
    assert "lang=en" in (await widget(page, "ticket-status-link").get_attribute("href") or "")
    await expect(widget(page, "new-conversation")).to_have_text("New conversation")
    await page.screenshot(path=str(tmp_path / "widget-english-confirmation.png"))

    # A reload keeps the conversation's language.
    await page.reload()
    await widget(page, "launcher").click()
    await expect(confirmation).to_be_visible(timeout=20_000)
    await expect(confirmation.locator("h3")).to_have_text("Request registered")
    assert (await page.evaluate("window.LucineWidget.state()"))["lang"] == "en"
    await context.close()


async def test_offer_buttons_drawn_in_italian_are_said_in_english_once_the_conversation_is(
    browser: Browser, stack: Stack, tmp_path: Path
) -> None:
    context = await browser.new_context(viewport={"width": 1280, "height": 800}, locale="it-IT")
    page = await context.new_page()
    await page.goto(f"{stack.url('gateway')}/demo/{DEMO_TENANT}")  # no data-lang: the site chose no language
    await widget(page, "launcher").click()
    await ask(page, "Ciao, vorrei parlare con una persona")
    answers = page.locator('[data-testid="message"][data-sender="ai"]')
    offer = answers.first.locator('[data-testid="action-button"][data-handoff]')
    await expect(offer).to_have_text(["Sì, chiama un operatore", "No, continua con l'assistente"], timeout=20_000)
    await page.screenshot(path=str(tmp_path / "widget-offer-it.png"))

    # The customer goes on in English; the assistant answers in English, and so does every word of
    # the widget, the offer already on screen included.
    await ask(page, "Actually, what time do you open in the evening?")
    await expect(answers).to_have_count(2, timeout=20_000)
    await expect(answers.nth(1).locator(".lw-sender")).to_have_text("Assistant")
    await expect(offer).to_have_text(["Yes, call an operator", "No, continue with the assistant"])
    await page.screenshot(path=str(tmp_path / "widget-offer-en.png"))

    # Still the offer it was: choosing it asks for a person.
    await offer.first.click()
    await expect(widget(page, "status")).to_have_attribute(
        "data-conversation-status", re.compile("QUEUED|TICKET_PENDING"), timeout=20_000
    )
    await context.close()
