"""The channels the widget's contact form offers: the notifier's answer for the tenant, in the
widget's public configuration, asked of a real local server standing in for the notifier, kept a
while per tenant, and email only whenever the notifier cannot be reached or answers an error."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from gateway_testkit import LUCINE_KEY, OTHER_KEY, OTHER_ORIGIN, NotifierApi, free_port, serve_app

from contracts.common import ContactChannel
from gateway.internal import InternalApi
from gateway.notifier import FALLBACK_SECONDS, NotifierClient

EMAIL, WHATSAPP, SMS = ContactChannel.EMAIL, ContactChannel.WHATSAPP, ContactChannel.SMS


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def notifier() -> AsyncIterator[NotifierApi]:
    api = NotifierApi()
    api.channels["shop"] = ["email", "whatsapp"]
    async with serve_app(api.app) as url:
        api.url = url  # type: ignore[attr-defined]
        yield api


async def config(gateway: Any, key: str, origin: str | None = None) -> dict[str, Any]:
    headers = {"X-Widget-Key": key} | ({"Origin": origin} if origin else {})
    response = await gateway.http.get("/v1/widget/config", headers=headers)
    assert response.status_code == 200, response.text
    return dict(response.json())


async def test_the_widget_configuration_lists_the_channels_the_notifier_can_write_on(gateway: Any) -> None:
    assert (await config(gateway, LUCINE_KEY))["channels"] == ["email", "whatsapp", "sms"]
    assert (await config(gateway, OTHER_KEY, OTHER_ORIGIN))["channels"] == ["email"]
    asked = len(gateway.notifier_api.requests)
    await config(gateway, LUCINE_KEY)
    assert len(gateway.notifier_api.requests) == asked, "a page load within the TTL asks the notifier again"


async def test_the_widget_configuration_never_fails_because_of_the_notifier(gateway: Any) -> None:
    runtime = gateway.runtime
    original = runtime.notifier
    unreachable = InternalApi("the notifier", f"http://127.0.0.1:{free_port()}", 2.0, max_connections=1)
    runtime.notifier = NotifierClient(unreachable, 60.0)
    try:
        body = await config(gateway, LUCINE_KEY)
    finally:
        runtime.notifier = original
        await unreachable.close()
    assert body["channels"] == ["email"]
    assert body["tenant_name"] == "Lucine di Natale"


async def test_the_answer_is_kept_per_tenant_for_the_ttl(notifier: NotifierApi) -> None:
    api = InternalApi("the notifier", notifier.url, 2.0, max_connections=2)  # type: ignore[attr-defined]
    clock = Clock()
    client = NotifierClient(api, 60.0, clock=clock)
    try:
        assert await client.channels("shop") == (EMAIL, WHATSAPP)
        assert await client.channels("other") == (EMAIL,)
        notifier.channels["shop"] = ["email", "whatsapp", "sms"]
        clock.now += 59
        assert await client.channels("shop") == (EMAIL, WHATSAPP)
        assert notifier.requests == ["shop", "other"]
        clock.now += 2
        assert await client.channels("shop") == (EMAIL, WHATSAPP, SMS)
        assert notifier.requests == ["shop", "other", "shop"]
    finally:
        await api.close()


async def test_email_only_while_the_notifier_is_unreachable_or_failing(notifier: NotifierApi) -> None:
    clock = Clock()
    dead = InternalApi("the notifier", f"http://127.0.0.1:{free_port()}", 2.0, max_connections=1)
    api = InternalApi("the notifier", notifier.url, 2.0, max_connections=2)  # type: ignore[attr-defined]
    try:
        assert await NotifierClient(dead, 60.0, clock=clock).channels("shop") == (EMAIL,)

        notifier.status = 503
        client = NotifierClient(api, 60.0, clock=clock)
        assert await client.channels("shop") == (EMAIL,)
        # A failure is kept a shorter while than an answer: the notifier is asked again soon.
        notifier.status = 200
        clock.now += FALLBACK_SECONDS + 1
        assert await client.channels("shop") == (EMAIL, WHATSAPP)
    finally:
        await dead.close()
        await api.close()
