"""Deactivating an operator in the middle of a conversation, end to end on real processes: an admin
(made with `python -m gateway.operators create`) adds an operator through the team API, the operator
takes a customer's conversation, the admin deactivates them; their token is refused at once and the
conversation is offered to another operator online, who takes it and talks with the customer."""

from __future__ import annotations

import subprocess
import sys
import uuid

import httpx
import pytest

from devkit.stack import REPO, SERVICES, Stack
from devkit.widget_client import Stream, start_conversation

from .conftest import DEMO_TENANT, DEMO_WIDGET_KEY
from .test_operator_flow import bearer, go_online, leave, log_in, operator_stream_url, taken_by

pytestmark = pytest.mark.e2e


def create_admin(stack: Stack, username: str, password: str) -> None:
    """An admin of the demo tenant, made as a deployment makes one: the gateway's command."""
    spec = next(s for s in SERVICES if s.name == "gateway")
    command = [sys.executable, "-m", "gateway.operators", "create", "--tenant", DEMO_TENANT, "--username", username]
    command += ["--display-name", "Amministratrice", "--role", "admin", "--password-stdin"]
    done = subprocess.run(
        command, input=password + "\n", env=stack.env_for(spec), cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr


async def token_for(gateway: httpx.AsyncClient, username: str, password: str) -> str:
    response = await gateway.post("/v1/operators/login", json={"username": username, "password": password})
    assert response.status_code == 200, response.text
    return str(response.json()["access_token"])


async def test_a_deactivated_operator_is_refused_at_once_and_their_conversation_goes_to_another(
    gateway: httpx.AsyncClient, stack: Stack
) -> None:
    suffix = uuid.uuid4().hex[:6]
    create_admin(stack, f"admin-{suffix}", "admin-password-e2e")
    admin = await token_for(gateway, f"admin-{suffix}", "admin-password-e2e")
    body = {
        "username": f"luca-{suffix}",
        "display_name": "Luca",
        "email": f"luca-{suffix}@lucine.example",
        "password": "luca-password-e2e",
        "skills": ["tickets"],
        "capacity": 2,
    }
    created = await gateway.post("/v1/team/operators", json=body, headers=bearer(admin))
    assert created.status_code == 201, created.text
    luca_id = created.json()["operator_id"]
    luca = await token_for(gateway, body["username"], body["password"])
    giulia = await log_in(gateway, "giulia")

    async with (
        Stream(operator_stream_url(stack, luca)) as luca_stream,
        Stream(operator_stream_url(stack, giulia)) as giulia_stream,
    ):
        # Only Luca is online when the customer asks: routing offers the conversation to him.
        await go_online(gateway, luca, luca_id, luca_stream)
        conversation = await start_conversation(gateway, stack.url("gateway"), DEMO_WIDGET_KEY, "it")
        cid = conversation.conversation_id
        async with Stream(conversation.stream_url()) as customer:
            asked = await conversation.action("request_operator")
            assert asked.status_code == 202, asked.text
            await taken_by(gateway, luca, luca_stream, customer, cid)
            hello = await gateway.post(
                f"/v1/conversations/{cid}/operator-messages", json={"text": "Sono Luca."}, headers=bearer(luca)
            )
            assert hello.status_code == 202, hello.text
            await customer.message_from("operator", timeout=30)

            await go_online(gateway, giulia, "lucine-giulia", giulia_stream)
            deactivated = await gateway.post(f"/v1/admin/operators/{luca_id}/deactivate", headers=bearer(admin))
            assert deactivated.status_code == 200, deactivated.text
            assert deactivated.json()["requeued"] == [cid]
            # At once: no wait between the admin's answer and the refusal.
            refused = await gateway.post(
                f"/v1/conversations/{cid}/operator-messages", json={"text": "Ancora io"}, headers=bearer(luca)
            )
            assert refused.status_code == 401, refused.text
            assert (await gateway.get("/v1/queue", headers=bearer(luca))).status_code == 401

            # The conversation goes back to the queue and Giulia, online, is offered it and takes it.
            offer = await giulia_stream.receive_until(
                lambda f: (
                    f.get("type") == "offer"
                    and f["conversation_id"] == cid
                    and f["event"] == "offer_made"
                    and f["data"]["operator_id"] == "lucine-giulia"
                ),
                timeout=60,
            )
            assert offer["data"]["operator_id"] == "lucine-giulia"
            taken = await gateway.post(f"/v1/conversations/{cid}/take", headers=bearer(giulia))
            assert taken.status_code == 200, taken.text
            written = await gateway.post(
                f"/v1/conversations/{cid}/operator-messages",
                json={"text": "Ciao, sono Giulia: continuo io."},
                headers=bearer(giulia),
            )
            assert written.status_code == 202, written.text
            message = await customer.receive_until(
                lambda f: f.get("type") == "message" and f["message"]["text"] == "Ciao, sono Giulia: continuo io.",
                timeout=30,
            )
            assert message["message"]["sender"] == "operator"
            await leave(gateway, giulia, cid)

        # Luca cannot log in again; the team shows him inactive, and the audit log has the change.
        again = await gateway.post(
            "/v1/operators/login", json={"username": body["username"], "password": body["password"]}
        )
        assert again.status_code == 401
        team = (await gateway.get("/v1/team", headers=bearer(admin))).json()
        assert [o["active"] for o in team["operators"] if o["operator_id"] == luca_id] == [False]
        audit = (await gateway.get("/v1/admin/audit", headers=bearer(admin))).json()["entries"]
        actions = [e["action"] for e in audit if e["target"] == f"operator:{luca_id}"]
        assert actions == ["operator.deactivate", "operator.create"]
