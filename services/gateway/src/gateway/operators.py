"""Operator accounts: argon2 password hashes, YAML seed files, and the command line.

    python -m gateway.operators create --tenant T --username U --display-name N [--role R]
                                       [--skills a,b] [--capacity N] [--operator-id ID]
                                       (the password is asked for, or read from stdin with --password-stdin)
    python -m gateway.operators list [--tenant T]
    python -m gateway.operators load <file.yaml> [<file.yaml> ...]

Usernames are unique across tenants (stored lower-case), so that the login form needs no tenant.
A seed file (`operators/<tenant>.yaml`) creates missing accounts and updates the profile of
existing ones, but never changes an existing account's password: `create` does that.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import getpass
import sys
from collections.abc import Awaitable, Callable, Sequence
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import yaml
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError, field_validator
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from contracts.common import OperatorId, ShortText
from contracts.events import Skill
from gateway.config import MIGRATIONS, Settings
from gateway.store import OperatorRow, all_tenants, operator_state, operators_of, record_audit, upsert_operator
from servicekit.db import create_engine, session_factory
from servicekit.logs import get_logger
from servicekit.migrations import upgrade_to_head

log = get_logger(__name__)

Username = Annotated[str, StringConstraints(strip_whitespace=True, to_lower=True, pattern=r"^[A-Za-z0-9_.@-]{2,100}$")]
DisplayName = ShortText
MIN_PASSWORD_CHARS = 8
PLATFORM_ACTOR = "platform-cli"  # the audit log's actor for a change made on the command line


class Role(StrEnum):
    OPERATOR = "operator"
    SUPERVISOR = "supervisor"  # sees and reassigns every conversation of its tenant
    ADMIN = "admin"  # a supervisor who may also manage the tenant's accounts


class OperatorConfig(BaseModel):
    """One operator of a seed file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    operator_id: OperatorId
    username: Username
    display_name: DisplayName
    password: Annotated[str, StringConstraints(min_length=MIN_PASSWORD_CHARS, max_length=200)]
    role: Role = Role.OPERATOR
    skills: list[Skill] = Field(default_factory=list, max_length=20)
    capacity: int = Field(default=3, ge=1, le=20)
    active: bool = True


class OperatorsFile(BaseModel):
    """`operators/<tenant_id>.yaml`: the operators of one tenant."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    tenant_id: Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9-]{1,62}$")]
    operators: list[OperatorConfig]

    @field_validator("operators")
    @classmethod
    def _distinct(cls, operators: list[OperatorConfig]) -> list[OperatorConfig]:
        for attribute in ("operator_id", "username"):
            values = [getattr(operator, attribute) for operator in operators]
            if len(values) != len(set(values)):
                raise ValueError(f"two operators share an {attribute}")
        return operators


def read_operators_file(path: Path) -> OperatorsFile:
    return OperatorsFile.model_validate(yaml.safe_load(path.read_text()))


def operator_files(directory: Path | None) -> list[Path]:
    if directory is None or not directory.is_dir():
        return []
    return sorted([*directory.glob("*.yaml"), *directory.glob("*.yml")])


@functools.cache
def _hasher() -> PasswordHasher:
    return PasswordHasher()  # argon2id with the library's recommended parameters


def hash_password(password: str) -> str:
    return _hasher().hash(password)


@functools.cache
def _unknown_user_hash() -> str:
    return hash_password("an account that does not exist")


def verify_password(password_hash: str | None, password: str) -> bool:
    """Slow on purpose (argon2): run it in a thread. For an unknown user (None) it verifies
    against a dummy hash, so that the answer takes as long as for a wrong password."""
    try:
        matched = _hasher().verify(password_hash or _unknown_user_hash(), password)
    except (VerificationError, InvalidHashError):
        return False
    return matched and password_hash is not None


class UnknownTenantError(ValueError):
    """Operators name a tenant the gateway does not have (load the tenant first)."""


async def load_operators(
    sessions: async_sessionmaker[AsyncSession],
    files: Sequence[OperatorsFile],
    *,
    replace_passwords: bool = False,
    audit_actor: str | None = None,
) -> int:
    """Creates or updates the accounts in one transaction; with `audit_actor`, each change is
    written to the audit log in that transaction too (`operator.create` or `operator.update`)."""
    async with sessions() as session:
        known = {tenant.tenant_id for tenant in await all_tenants(session)}
    unknown = sorted({file.tenant_id for file in files} - known)
    if unknown:
        raise UnknownTenantError(f"unknown tenant {', '.join(unknown)}: load it with python -m gateway.tenants first")
    accounts = [(file.tenant_id, operator) for file in files for operator in file.operators]
    # Hashing is slow by design: off the event loop.
    hashes = await asyncio.to_thread(lambda: [hash_password(operator.password) for _, operator in accounts])
    async with sessions() as session, session.begin():
        for (tenant_id, operator), password_hash in zip(accounts, hashes, strict=True):
            existing = await session.get(OperatorRow, operator.operator_id)
            before = operator_state(existing) if existing is not None else None
            await upsert_operator(
                session,
                tenant_id=tenant_id,
                password_hash=password_hash,
                replace_password=replace_passwords,
                **operator.model_dump(exclude={"password"}),
            )
            if audit_actor is not None:
                row = await session.get(OperatorRow, operator.operator_id, populate_existing=True)
                assert row is not None
                await record_audit(
                    session,
                    tenant_id=tenant_id,
                    actor=audit_actor,
                    action="operator.create" if before is None else "operator.update",
                    target=f"operator:{operator.operator_id}",
                    before=before,
                    after=operator_state(row),
                )
    return len(accounts)


StoreWork = Callable[[async_sessionmaker[AsyncSession]], Awaitable[None]]


async def _with_store(settings: Settings, work: StoreWork) -> None:
    # The tables may not exist yet when the gateway has never started against this database.
    await asyncio.to_thread(upgrade_to_head, MIGRATIONS, settings.database_url)
    engine = create_engine(settings.database_url, pool_size=1)
    try:
        await work(session_factory(engine))
    finally:
        await engine.dispose()


def _describe(row: OperatorRow) -> str:
    state = "" if row.active else "  (inactive)"
    skills = ",".join(row.skills) or "-"
    return (
        f"{row.tenant_id:20} {row.operator_id:24} {row.username:20} {row.role:10} "
        f"capacity={row.capacity} skills={skills} {row.display_name}{state}"
    )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m gateway.operators", description="Operator accounts.")
    commands = parser.add_subparsers(dest="command", required=True)
    create = commands.add_parser("create", help="create an account, or update it and set its password")
    create.add_argument("--tenant", required=True)
    create.add_argument("--username", required=True)
    create.add_argument("--display-name", required=True)
    create.add_argument("--operator-id", help="defaults to <tenant>-<username>")
    create.add_argument("--role", choices=[role.value for role in Role], default=Role.OPERATOR.value)
    create.add_argument("--skills", default="", help="comma-separated, e.g. tickets,groups")
    create.add_argument("--capacity", type=int, default=3)
    create.add_argument("--inactive", action="store_true")
    create.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    listing = commands.add_parser("list", help="list the accounts")
    listing.add_argument("--tenant")
    load = commands.add_parser("load", help="load seed files (passwords set only for new accounts)")
    load.add_argument("files", nargs="+", type=Path)
    return parser


def main(argv: list[str]) -> int:
    try:
        return _run(_parser().parse_args(argv[1:]))
    except UnknownTenantError as error:
        print(error, file=sys.stderr)
        return 2


def _run(arguments: argparse.Namespace) -> int:
    settings = Settings()
    if arguments.command == "list":

        async def show(sessions: async_sessionmaker[AsyncSession]) -> None:
            async with sessions() as session:
                for row in await operators_of(session, arguments.tenant):
                    print(_describe(row))

        asyncio.run(_with_store(settings, show))
        return 0
    if arguments.command == "load":
        files = [read_operators_file(path) for path in arguments.files]

        async def load(sessions: async_sessionmaker[AsyncSession]) -> None:
            count = await load_operators(sessions, files)
            print(f"loaded {count} operators")

        asyncio.run(_with_store(settings, load))
        return 0
    if arguments.password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = getpass.getpass("password: ")
        if getpass.getpass("again: ") != password:
            print("the passwords differ", file=sys.stderr)
            return 2
    try:
        operator = _operator_from(arguments, password)
    except ValidationError as error:
        print(error, file=sys.stderr)
        return 2
    file = OperatorsFile(tenant_id=arguments.tenant, operators=[operator])

    async def create(sessions: async_sessionmaker[AsyncSession]) -> None:
        await load_operators(sessions, [file], replace_passwords=True, audit_actor=PLATFORM_ACTOR)
        print(f"operator {operator.operator_id} ({operator.username}) saved")

    asyncio.run(_with_store(settings, create))
    return 0


def _operator_from(arguments: argparse.Namespace, password: str) -> OperatorConfig:
    return OperatorConfig(
        operator_id=arguments.operator_id or f"{arguments.tenant}-{arguments.username.strip().lower()}",
        username=arguments.username,
        display_name=arguments.display_name,
        password=password,
        role=Role(arguments.role),
        skills=[skill.strip() for skill in arguments.skills.split(",") if skill.strip()],
        capacity=arguments.capacity,
        active=not arguments.inactive,
    )


if __name__ == "__main__":
    sys.exit(main(sys.argv))
