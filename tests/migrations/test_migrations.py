"""Every service's Alembic migrations build exactly the schema its models declare."""

from __future__ import annotations

import asyncio
import importlib
from pathlib import Path

import pytest
from alembic import command

from devkit.stack import SERVICES
from devkit.testing import Infra, create_database, drop_database
from servicekit.migrations import alembic_config

WITH_MIGRATIONS = [
    spec
    for spec in SERVICES
    if spec.built and (Path(importlib.import_module(spec.module).__file__ or "").parent / "migrations").is_dir()
]


@pytest.mark.parametrize("spec", WITH_MIGRATIONS, ids=lambda spec: spec.name)
async def test_migrations_upgrade_to_the_models_and_back(infra: Infra, spec: object) -> None:
    module = importlib.import_module(spec.module)  # type: ignore[attr-defined]
    importlib.import_module(f"{spec.module}.store")  # type: ignore[attr-defined]
    migrations = Path(module.__file__ or "").parent / "migrations"
    database = await create_database(infra, "migrations")
    try:
        config = alembic_config(migrations, infra.database_url(database))
        await asyncio.to_thread(command.upgrade, config, "head")
        await asyncio.to_thread(command.check, config)  # raises when models and migrations differ
        await asyncio.to_thread(command.downgrade, config, "base")
        await asyncio.to_thread(command.upgrade, config, "head")
    finally:
        await drop_database(infra, database)


def test_every_built_service_with_a_store_has_migrations() -> None:
    names = {spec.name for spec in WITH_MIGRATIONS}
    assert {"conversation", "ai-responder", "routing", "tickets", "notifier", "analytics"} <= names
