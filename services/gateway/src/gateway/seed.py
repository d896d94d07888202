"""Seeds the shipped demo tenants through the gateway's public API, as a tenant would set itself up.

    python -m gateway.seed [--gateway URL] [<seed.yaml> ...]   (default: services/gateway/demo/*.yaml)

`make up` runs it once the gateway is ready, so the platform and settings APIs are exercised
every time. Each section of a seed file is the body of one endpoint: the platform API creates
the tenant and its admin (`POST /v1/platform/tenants`, with `PLATFORM_ADMIN_TOKEN`; a tenant that
already exists is left as it is), then the admin logs in and saves the profile, the widget's
origins and appearance, the team's accounts and the canned responses. Running it again brings
the demo back to its seed files without touching anything else (an account's password is set
only when the account is created).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any

import httpx
import yaml
from pydantic import BaseModel, ConfigDict, Field

from gateway.config import Settings, service_path

DEMO_DIR = service_path("demo")


class SeedError(Exception):
    """An endpoint refused the seed (its answer says why)."""


class DemoTenant(BaseModel):
    """One seed file: one endpoint body per section."""

    model_config = ConfigDict(extra="forbid")

    tenant: dict[str, Any]
    profile: dict[str, Any] | None = None
    widget: dict[str, Any] | None = None
    operators: list[dict[str, Any]] = Field(default_factory=list)
    canned_responses: list[dict[str, Any]] = Field(default_factory=list)

    @property
    def tenant_id(self) -> str:
        return str(self.tenant["tenant_id"])


def read_seed(path: Path) -> DemoTenant:
    return DemoTenant.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")))


def _checked(response: httpx.Response, *allowed: int) -> httpx.Response:
    if response.status_code not in allowed:
        request = response.request
        raise SeedError(f"{request.method} {request.url.path}: {response.status_code} {response.text}")
    return response


async def seed_tenant(client: httpx.AsyncClient, seed: DemoTenant, platform_token: str) -> list[str]:
    """Applies one seed file; what it did, a line per step."""
    done: list[str] = []
    created = await client.post(
        "/v1/platform/tenants", json=seed.tenant, headers={"Authorization": f"Bearer {platform_token}"}
    )
    _checked(created, 201, 409)
    done.append("tenant created" if created.status_code == 201 else "tenant already there")

    admin = seed.tenant["admin"]
    login = _checked(
        await client.post("/v1/operators/login", json={"username": admin["username"], "password": admin["password"]}),
        200,
    )
    client.headers["Authorization"] = f"Bearer {login.json()['access_token']}"
    try:
        if seed.profile is not None:
            done.append(await _save_if_changed(client, "/v1/settings/profile", seed.profile, ()))
        if seed.widget is not None:
            done.append(
                await _save_if_changed(client, "/v1/settings/widget", seed.widget, ("allowed_origins", "appearance"))
            )
        done.append(await _seed_team(client, seed.operators))
        done.append(await _seed_canned(client, seed.canned_responses))
    finally:
        client.headers.pop("Authorization", None)
    return done


async def _save_if_changed(
    client: httpx.AsyncClient, path: str, wanted: dict[str, Any], body_keys: tuple[str, ...]
) -> str:
    """PUTs the settings only when they differ, so that a run with nothing new leaves no audit entry.
    `body_keys`: the fields the PUT takes (the current values fill in what the seed leaves out)."""
    current = _checked(await client.get(path), 200).json()
    if all(current.get(key) == value for key, value in wanted.items()):
        return f"{path}: unchanged"
    body = {**{key: current[key] for key in body_keys}, **wanted}
    _checked(await client.put(path, json=body), 200)
    return f"{path}: saved"


async def _seed_team(client: httpx.AsyncClient, operators: list[dict[str, Any]]) -> str:
    team = _checked(await client.get("/v1/team"), 200).json()
    existing = {account["username"]: account for account in team["operators"]}
    created = updated = 0
    for operator in operators:
        account = existing.get(operator["username"].lower())
        if account is None:
            _checked(await client.post("/v1/team/operators", json=operator), 201)
            created += 1
            continue
        change = {key: operator[key] for key in ("display_name", "role", "skills", "capacity") if key in operator}
        if any(account.get(key) != value for key, value in change.items()):
            _checked(await client.patch(f"/v1/team/operators/{account['operator_id']}", json=change), 200)
            updated += 1
    return f"operators: {created} created, {updated} updated, {len(operators) - created - updated} unchanged"


async def _seed_canned(client: httpx.AsyncClient, responses: list[dict[str, Any]]) -> str:
    listed = _checked(await client.get("/v1/canned-responses"), 200).json()
    existing = {(r["language"], r["shortcut"]): r for r in listed["responses"]}
    created = updated = 0
    for response in responses:
        current = existing.get((response["language"], response["shortcut"]))
        if current is None:
            _checked(await client.post("/v1/canned-responses", json=response), 201)
            created += 1
        elif any(current.get(key) != value for key, value in response.items()):
            _checked(await client.put(f"/v1/canned-responses/{current['response_id']}", json=response), 200)
            updated += 1
    return f"canned responses: {created} created, {updated} updated"


async def seed_all(gateway_url: str, paths: list[Path], platform_token: str) -> None:
    seeds = [read_seed(path) for path in paths]
    async with httpx.AsyncClient(base_url=gateway_url, timeout=30.0) as client:
        for seed in seeds:
            for line in await seed_tenant(client, seed, platform_token):
                print(f"[seed] {seed.tenant_id}: {line}")


def demo_files() -> list[Path]:
    return sorted(DEMO_DIR.glob("*.yaml"))


def main(argv: list[str]) -> int:
    settings = Settings()
    parser = argparse.ArgumentParser(prog="python -m gateway.seed", description=__doc__.splitlines()[0])
    parser.add_argument("--gateway", default=settings.public_base_url, help="the gateway's base URL")
    parser.add_argument("files", nargs="*", type=Path, help="seed files (default: the shipped demo tenants)")
    arguments = parser.parse_args(argv[1:])
    if not settings.platform_admin_token:
        print("PLATFORM_ADMIN_TOKEN is not set: the platform API is off", file=sys.stderr)
        return 2
    try:
        asyncio.run(seed_all(arguments.gateway, arguments.files or demo_files(), settings.platform_admin_token))
    except (SeedError, httpx.HTTPError) as error:
        print(f"seeding failed: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
