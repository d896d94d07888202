"""The gateway's whole OpenAPI under schemathesis, every check enabled (its default, like
`--checks all`), against a real gateway on real Kafka, PostgreSQL and Redis.

Widget operations are sent with a real widget key and the customer token of a real conversation;
operator operations with the access token of a demo operator of lucine-di-natale, logged in for
real. A generated conversation id that is a well-formed UUID is swapped for the conversation the
token may use, so that the generated bodies reach the routes' logic instead of stopping at 403 or
404; malformed ids are kept, to be refused. The conversation service's read API and routing are
the tests' stand-ins (other services, serving their documented bodies).

The gateway runs on its own event loop in a thread: schemathesis calls it synchronously from the
test, while the gateway keeps serving.
"""

from __future__ import annotations

import asyncio
import re
import threading
import uuid
import zoneinfo
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from gateway_testkit import (
    ADA,
    ADMIN_TOKEN,
    GIULIA,
    LUCINE_KEY,
    SOFIA,
    AiResponderApi,
    AnalyticsApi,
    ReadApi,
    RoutingApi,
    TicketsApi,
    gateway_settings,
    message,
    serve_app,
)
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

from devkit.testing import Infra, create_database, drop_database
from gateway.app import build_app
from gateway.config import Settings
from servicekit.topics import delete_topics, ensure_topics

LUCINE = "lucine-di-natale"
# Examples per operation and phase: the whole run stays within a couple of minutes on two cores.
MAX_EXAMPLES = 25
# Operations that take the customer token; the other conversation routes take an operator's.
WIDGET_CONVERSATION_ROUTES = ("/messages", "/actions", "/ticket", "/rating", "/feedback")


@dataclass
class LiveGateway:
    url: str
    customer_conversation: uuid.UUID
    customer_token: str
    operator_conversation: uuid.UUID
    operator_token: str
    supervisor_token: str = ""  # the analytics routes are for supervisors
    admin_token: str = ""  # the /v1/admin routes are for admins
    ticket_id: uuid.UUID | None = None  # a ticket of the operator's tenant
    ticket_link: str = ""  # the token of its status link


@pytest.fixture(scope="module")
def live_gateway(infra: Infra, tenants_dir: Path) -> Iterator[LiveGateway]:
    """A gateway (with its stand-ins) on an event loop of its own, in a thread."""
    ready = threading.Event()
    stop: asyncio.Event | None = None
    loop: asyncio.AbstractEventLoop | None = None
    found: dict[str, Any] = {}

    async def run() -> None:
        nonlocal stop, loop
        stop, loop = asyncio.Event(), asyncio.get_running_loop()
        prefix = f"gwapi-{uuid.uuid4().hex[:8]}."
        await ensure_topics(infra.kafka_bootstrap_servers, prefix=prefix)
        database = await create_database(infra, "gateway_openapi")
        read_api, routing_api, ai_responder = ReadApi(), RoutingApi(), AiResponderApi()
        tickets_api, analytics_api = TicketsApi(), AnalyticsApi()
        ticket = tickets_api.put(LUCINE)
        ai_responder.kb.seed(LUCINE, {"orari": ("Orari", "Aperti dalle 17.")}, gaps=("Posso portare il cane?",))
        try:
            async with (
                serve_app(read_api.app) as read_url,
                serve_app(routing_api.app) as routing_url,
                serve_app(ai_responder.app) as ai_responder_url,
                serve_app(tickets_api.app) as tickets_url,
                serve_app(analytics_api.app) as analytics_url,
            ):
                settings_ = gateway_settings(
                    infra,
                    database,
                    prefix,
                    read_url,
                    tenants_dir,
                    routing_url=routing_url,
                    ai_responder_url=ai_responder_url,
                    ai_responder_admin_token=ADMIN_TOKEN,
                    tickets_url=tickets_url,
                    analytics_url=analytics_url,
                    ticket_lookups_per_ip=100_000,
                    ticket_lookups_per_number=100_000,
                    rate_limit_conversation_messages=100_000,
                    login_attempts_per_ip=100_000,
                    login_attempts_per_account=100_000,
                )
                async with serve_app(build_app(settings_)) as url:
                    found.update(url=url, read_api=read_api, routing_api=routing_api)
                    found.update(ticket_id=ticket.ticket_id, ticket_link=tickets_api.link_of(ticket))
                    ready.set()
                    await stop.wait()
        finally:
            ready.set()
            await drop_database(infra, database)
            await delete_topics(infra.kafka_bootstrap_servers, prefix)

    def main() -> None:
        try:
            asyncio.run(run())
        except BaseException as error:  # reported to the test below
            found["error"] = error

    thread = threading.Thread(target=main, name="gateway-under-schemathesis", daemon=True)
    thread.start()
    assert ready.wait(120), "the gateway did not start"
    if "error" in found:
        raise found["error"]
    try:
        live = _prepare(found["url"], found["read_api"], found["routing_api"])
        live.ticket_id, live.ticket_link = found["ticket_id"], found["ticket_link"]
        yield live
    finally:
        assert loop is not None
        assert stop is not None
        loop.call_soon_threadsafe(stop.set)
        thread.join(60)
    if "error" in found:
        raise found["error"]


def _prepare(url: str, read_api: ReadApi, routing_api: RoutingApi) -> LiveGateway:
    """A real customer conversation (widget key, then its token) and a real operator login."""
    with httpx.Client(base_url=url, timeout=15) as http:
        started = http.post("/v1/conversations", headers={"X-Widget-Key": LUCINE_KEY}, json={})
        assert started.status_code == 201, started.text
        customer_conversation = uuid.UUID(started.json()["conversation_id"])
        username, password, operator_id = GIULIA
        login = http.post("/v1/operators/login", json={"username": username, "password": password})
        assert login.status_code == 200, login.text
        supervisor = http.post("/v1/operators/login", json={"username": SOFIA[0], "password": SOFIA[1]})
        assert supervisor.status_code == 200, supervisor.text
        admin = http.post("/v1/operators/login", json={"username": ADA[0], "password": ADA[1]})
        assert admin.status_code == 200, admin.text
    history = [message(1, "customer", "Ciao"), message(2, "ai", "Buongiorno!", language="it")]
    read_api.put(customer_conversation, LUCINE, history)
    # The operator's conversation: waiting in routing's queue, and the read API says it is hers.
    operator_conversation = uuid.uuid4()
    read_api.put(
        operator_conversation,
        LUCINE,
        [message(1, "customer", "Vorrei parlare con una persona")],
        status="WITH_OPERATOR",
        operator_id=operator_id,
    )
    routing_api.wait(operator_conversation, LUCINE)
    routing_api.seen(operator_id, LUCINE, active=1)
    return LiveGateway(
        url=url,
        customer_conversation=customer_conversation,
        customer_token=started.json()["customer_token"],
        operator_conversation=operator_conversation,
        operator_token=login.json()["access_token"],
        supervisor_token=supervisor.json()["access_token"],
        admin_token=admin.json()["access_token"],
    )


# The document the gateway serves at /openapi.json (a test below checks that they are the same),
# built without starting anything: schemathesis makes one test per operation at collection time.
OPENAPI = build_app(Settings(environment="test")).openapi()
schema = schemathesis.openapi.from_dict(OPENAPI)
# A body over the documented size limit is refused with its documented 413: a rejection too.
schema.config.checks.negative_data_rejection.expected_statuses += ["413"]


def _is_uuid(value: object) -> bool:
    try:
        uuid.UUID(str(value))
    except ValueError:
        return False
    return isinstance(value, str)


def authenticate(case: Any, gateway: LiveGateway) -> dict[str, str]:
    """The credentials this operation takes, and the conversation they may use; none for a case
    that tests what a missing credential gets."""
    if case.operation.schema.is_security_param_negated(case):
        return {}
    path: str = case.operation.path
    if path == "/v1/conversations" and case.method.upper() == "POST":
        return {"X-Widget-Key": LUCINE_KEY}
    if path.startswith("/v1/conversations/{conversation_id}"):
        widget = path.endswith(WIDGET_CONVERSATION_ROUTES)
        if case.path_parameters and _is_uuid(case.path_parameters.get("conversation_id")):
            own = gateway.customer_conversation if widget else gateway.operator_conversation
            case.path_parameters["conversation_id"] = str(own)
        return {"Authorization": f"Bearer {gateway.customer_token if widget else gateway.operator_token}"}
    if path in {"/v1/queue", "/v1/operators/me/status", "/v1/operators", "/v1/conversations"}:
        return {"Authorization": f"Bearer {gateway.operator_token}"}
    if path.startswith("/v1/tickets"):
        return ticket_credentials(case, gateway)
    if path.startswith("/v1/kb/"):
        # The knowledge base is a supervisor's; a well-formed gap id is swapped for the tenant's gap.
        if case.path_parameters and _is_uuid(case.path_parameters.get("gap_id")):
            case.path_parameters["gap_id"] = str(KB_GAP)
        return {"Authorization": f"Bearer {gateway.supervisor_token}"}
    if path.startswith("/v1/analytics/"):
        return analytics_credentials(case, gateway)
    if path.startswith(("/v1/admin/", "/v1/team", "/v1/canned-responses")):
        return {"Authorization": f"Bearer {gateway.admin_token}"}
    return {}


KB_GAP = uuid.uuid5(uuid.NAMESPACE_URL, f"{LUCINE}/Posso portare il cane?")  # as the stand-in names it
OPERATOR_ID = re.compile(r"[A-Za-z0-9_.@-]{1,100}")
ZONES = zoneinfo.available_timezones()


def analytics_credentials(case: Any, gateway: LiveGateway) -> dict[str, str]:
    """The analytics routes take a supervisor's token. What the schema cannot state is made
    true of a well-formed period, so that the generated requests reach the report: the zone is
    a real one, `to` is not before `from`, and the period spans at most 366 days (the analytics
    service refuses the rest with 422, passed on); malformed dates are kept, to be refused."""
    query = case.query if isinstance(case.query, dict) else {}
    if isinstance(query.get("tz"), str) and query["tz"] not in ZONES:
        query["tz"] = "Europe/Rome"
    try:
        start, end = date.fromisoformat(str(query["from"])), date.fromisoformat(str(query["to"]))
    except (KeyError, ValueError):
        pass
    else:
        if end < start or (end - start).days >= 366:
            query["to"] = query["from"]
    return {"Authorization": f"Bearer {gateway.supervisor_token}"}


def ticket_credentials(case: Any, gateway: LiveGateway) -> dict[str, str]:
    """The ticket routes: the lookup by number takes the widget key; a status link carries its own
    token, and a well-formed one is swapped for the real link's; the operators' routes take the
    operator's token, with a well-formed ticket id swapped for the tenant's ticket and a
    well-formed assignee for an operator of the tenant (which the schema cannot state). So the
    generated requests reach the routes' logic; malformed values are kept, to be refused."""
    path: str = case.operation.path
    if path == "/v1/tickets/by-number/{ticket_number}":
        return {"X-Widget-Key": LUCINE_KEY}
    if path.startswith("/v1/tickets/by-link"):
        holder = case.query if path == "/v1/tickets/by-link" else case.body
        if isinstance(holder, dict) and isinstance(holder.get("t"), str) and 1 <= len(holder["t"]) <= 1000:
            holder["t"] = gateway.ticket_link
        return {}
    if case.path_parameters and _is_uuid(case.path_parameters.get("ticket_id")):
        case.path_parameters["ticket_id"] = str(gateway.ticket_id)
    body = case.body if case.method.upper() == "PATCH" else None
    assignee = body.get("assignee_id") if isinstance(body, dict) else None
    if isinstance(assignee, str) and OPERATOR_ID.fullmatch(assignee):
        body["assignee_id"] = GIULIA[2]
    return {"Authorization": f"Bearer {gateway.operator_token}"}


@schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.function_scoped_fixture],
)
def test_every_operation_conforms_to_the_openapi(case: Any, live_gateway: LiveGateway) -> None:
    headers = authenticate(case, live_gateway)
    case.call_and_validate(base_url=live_gateway.url, headers=headers, excluded_checks=excluded(case))


# Knowledge-base writes a schema cannot judge: a well-formed article or document is still refused
# (the documented 422) when the ai-responder cannot use it (a language the tenant lacks, a title
# missing for a language, a file that is no PDF). Every other check stands for them.
KB_CONTENT = ("PUT /v1/kb/articles/{article_id}", "POST /v1/kb/documents", "POST /v1/kb/gaps/{gap_id}/article")
# An invitation's language must also be one of the tenant's (422 otherwise).
TENANT_CONTENT = ("POST /v1/team/invitations",)


def excluded(case: Any) -> list[Any]:
    if f"{case.method.upper()} {case.operation.path}" in KB_CONTENT + TENANT_CONTENT:
        return [positive_data_acceptance]
    return []


def test_the_document_under_test_is_the_one_served(live_gateway: LiveGateway) -> None:
    served = httpx.get(f"{live_gateway.url}/openapi.json", timeout=15)
    assert served.status_code == 200
    assert served.json() == OPENAPI


def test_the_openapi_covers_widget_and_operator_operations() -> None:
    """The run above is over the whole public API, operators included."""
    operations = {f"{result.ok().method.upper()} {result.ok().path}" for result in schema.get_all_operations()}
    for expected in (
        "POST /v1/conversations",
        "POST /v1/conversations/{conversation_id}/messages",
        "GET /v1/conversations/{conversation_id}/messages",
        "POST /v1/operators/login",
        "PUT /v1/operators/me/status",
        "GET /v1/queue",
        "POST /v1/conversations/{conversation_id}/take",
        "POST /v1/conversations/{conversation_id}/close",
        "POST /v1/conversations/{conversation_id}/release",
        "POST /v1/conversations/{conversation_id}/messages/{message_id}/feedback",
        "GET /v1/analytics/overview",
        "GET /v1/analytics/conversations",
        "GET /v1/analytics/live",
        "PUT /v1/kb/articles/{article_id}",
        "POST /v1/kb/documents",
        "POST /v1/kb/gaps/{gap_id}/article",
    ):
        assert expected in operations
