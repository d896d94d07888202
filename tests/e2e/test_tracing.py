"""One customer turn is one trace, across real processes and real Kafka.

Every service of a stack of its own exports its spans with the console exporter into a file of
JSON lines (`OTEL_TRACES_EXPORTER=console`, `TRACING_CONSOLE_FILE`): an in-memory exporter sees
only its own process's spans. The test collects the files and follows the parent links: the
gateway's HTTP request (or its span for a message sent on the widget's stream) is the root, and
the reply pushed on the customer's WebSocket descends from it through conversation, ai-responder
and conversation again; a handoff goes through routing.
Nothing of the propagation is replaced: the context travels in the Kafka records' headers and the
outbox rows, as in production."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from devkit.stack import SERVICES, Stack
from devkit.testing import Infra
from devkit.widget_client import Stream, start_conversation

from .conftest import DEMO_WIDGET_KEY, isolated_stack

pytestmark = pytest.mark.e2e

MESSAGES_ROUTE = "/v1/conversations/{conversation_id}/messages"
ACTIONS_ROUTE = "/v1/conversations/{conversation_id}/actions"
STREAM_ROUTE = "/v1/conversations/{conversation_id}/stream"


@dataclass(frozen=True)
class Span:
    service: str
    name: str
    kind: str
    trace_id: str
    span_id: str
    parent_id: str | None
    attributes: dict[str, Any]


@pytest.fixture(scope="module")
def traced_stack(infra: Infra, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Stack, Path]]:
    spans = Path(tmp_path_factory.mktemp("spans"))
    extra_env = {
        spec.name: {
            "OTEL_TRACES_EXPORTER": "console",
            "TRACING_CONSOLE_FILE": str(spans / f"{spec.name}.jsonl"),
            "OTEL_BSP_SCHEDULE_DELAY": "100",  # milliseconds: exported soon after they end
        }
        for spec in SERVICES
    }
    with isolated_stack(infra, tmp_path_factory.mktemp("traced-services"), extra_env) as running:
        yield running, spans


def read_spans(folder: Path) -> list[Span]:
    found: list[Span] = []
    for path in sorted(folder.glob("*.jsonl")):
        for line in path.read_text().splitlines():
            if not line.strip():
                continue
            raw = json.loads(line)
            found.append(
                Span(
                    service=raw["resource"]["attributes"]["service.name"],
                    name=raw["name"],
                    kind=raw["kind"],
                    trace_id=raw["context"]["trace_id"],
                    span_id=raw["context"]["span_id"],
                    parent_id=raw["parent_id"],
                    attributes=raw["attributes"],
                )
            )
    return found


def chain(span: Span, by_id: dict[str, Span]) -> list[Span]:
    """The span and its ancestors, up to the root (every parent must have been exported)."""
    path = [span]
    while path[-1].parent_id is not None:
        parent = by_id.get(path[-1].parent_id)
        assert parent is not None, f"the parent of {path[-1].service} {path[-1].name} was not exported"
        path.append(parent)
    return path


def ancestors_known(span: Span, by_id: dict[str, Span]) -> bool:
    while span.parent_id is not None:
        if span.parent_id not in by_id:
            return False
        span = by_id[span.parent_id]
    return True


def hops(path: list[Span]) -> list[str]:
    """The consumer spans and the root of a chain, root first, as `service: name`."""
    return [f"{s.service}: {s.name}" for s in reversed(path) if s.kind != "SpanKind.INTERNAL"]


def complete_pushes(trace: list[Span], name: str) -> list[Span]:
    """The gateway's `push` spans of that name whose ancestors have all been exported."""
    by_id = {s.span_id: s for s in trace}
    return [s for s in trace if s.service == "gateway" and s.name == name and ancestors_known(s, by_id)]


def push_paths(trace: list[Span], name: str) -> list[list[str]]:
    """The hops from the root to each gateway `push` span of that name."""
    by_id = {s.span_id: s for s in trace}
    return [hops(chain(p, by_id)) for p in complete_pushes(trace, name)]


async def trace_of(
    folder: Path, route: str, conversation_id: str, done: Callable[[list[Span]], bool], timeout: float = 30.0
) -> list[Span]:
    """The spans of the trace whose root is the gateway's request on `route` for this
    conversation, once `done` says all that is expected has been exported (the services export
    in batches, each on its own schedule)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        spans = read_spans(folder)
        roots = [
            s
            for s in spans
            if s.service == "gateway"
            and s.attributes.get("http.route") == route
            and conversation_id in str(s.attributes.get("url.path", ""))
        ]
        if roots:
            trace = [s for s in spans if s.trace_id == roots[-1].trace_id]
            if done(trace):
                return trace
        assert asyncio.get_running_loop().time() < deadline, f"the trace of {route} is incomplete: {roots}"
        await asyncio.sleep(0.3)


# A message POSTed, or sent on the widget's stream (as the widget does while it is open): the
# root is the HTTP request, or the gateway's span for the message on the socket.
SENT_OVER = {"http": (MESSAGES_ROUTE, f"POST {MESSAGES_ROUTE}"), "socket": (STREAM_ROUTE, f"message {STREAM_ROUTE}")}


@pytest.mark.parametrize("sent_over", SENT_OVER)
async def test_one_customer_turn_is_one_trace_from_the_message_to_the_websocket_push(
    traced_stack: tuple[Stack, Path], sent_over: str
) -> None:
    stack, folder = traced_stack
    route, root_name = SENT_OVER[sent_over]
    async with httpx.AsyncClient(base_url=stack.url("gateway"), timeout=15) as gateway:
        conversation = await start_conversation(gateway, stack.url("gateway"), DEMO_WIDGET_KEY)
        async with Stream(conversation.stream_url()) as stream:
            if sent_over == "http":
                posted = await conversation.post("Quanto costano i biglietti?")
                assert posted.status_code == 202, posted.text
            else:
                accepted = await stream.send_message("Quanto costano i biglietti?")
                assert accepted["type"] == "accepted", accepted
            await stream.message_from("ai")

    # Done once the customer's message and the reply have both been pushed, and exported.
    trace = await trace_of(
        folder,
        route,
        conversation.conversation_id,
        lambda trace: len(complete_pushes(trace, "push conversation.message_posted")) >= 2,
    )
    by_id = {s.span_id: s for s in trace}
    roots = [s for s in trace if s.parent_id is None]
    assert [(r.service, r.kind, r.name) for r in roots] == [("gateway", "SpanKind.SERVER", root_name)], "one root"
    for span in trace:
        chain(span, by_id)  # every span of the turn hangs from that root
    reply_paths = push_paths(trace, "push conversation.message_posted")
    expected = [
        f"gateway: {root_name}",
        "conversation: handle conversation.post_customer_message",
        "ai-responder: handle conversation.message_posted",
        "conversation: handle ai.reply_generated",
        "gateway: push conversation.message_posted",
    ]
    assert expected in reply_paths, reply_paths
    # The customer's own message is pushed too, one hop from the message.
    assert [expected[0], expected[1], expected[4]] in reply_paths, reply_paths
    # Analytics handles the reply too, a branch of the same trace that ends there.
    handled = next(s for s in trace if s.name == "handle ai.reply_generated" and s.service == "conversation")
    assert handled.attributes["messaging.consumer.group.name"] == "conversation"
    assert handled.attributes["messaging.destination.name"].endswith("ai.replies.v1")


async def test_a_handoff_is_one_trace_through_routing(traced_stack: tuple[Stack, Path]) -> None:
    stack, folder = traced_stack

    def through_routing_of(trace: list[Span]) -> list[list[str]]:
        paths = [
            *push_paths(trace, "push conversation.status_changed"),
            *push_paths(trace, "push conversation.message_posted"),
        ]
        return [p for p in paths if "routing: handle conversation.handoff_requested" in p]

    async with httpx.AsyncClient(base_url=stack.url("gateway"), timeout=15) as gateway:
        conversation = await start_conversation(gateway, stack.url("gateway"), DEMO_WIDGET_KEY)
        async with Stream(conversation.stream_url()) as stream:
            await conversation.post("Voglio parlare con un operatore")
            await stream.receive_until(lambda f: f.get("type") == "status" and f["status"] == "HANDOFF_OFFERED")
            assert (await conversation.action("request_operator")).status_code == 202
            await stream.receive_until(lambda f: f.get("type") == "status" and f["status"] == "QUEUED")
            # Routing's answer (no operator is online here) comes back to the open socket.
            trace = await trace_of(
                folder, ACTIONS_ROUTE, conversation.conversation_id, lambda trace: bool(through_routing_of(trace))
            )

    assert [s.service for s in trace if s.parent_id is None] == ["gateway"]
    path = through_routing_of(trace)[0]
    assert path[:3] == [
        f"gateway: POST {ACTIONS_ROUTE}",
        "conversation: handle conversation.choose_handoff",
        "routing: handle conversation.handoff_requested",
    ], path
    assert path[3].startswith("conversation: handle routing."), path
    assert path[-1].startswith("gateway: push conversation."), path
