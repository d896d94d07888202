"""Alembic environment of the gateway (the body is shared: servicekit.migrations.run_env)."""

from gateway.store import Base
from servicekit.migrations import run_env

run_env(Base.metadata)
