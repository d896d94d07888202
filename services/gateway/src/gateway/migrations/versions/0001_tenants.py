"""tenants, outbox and processed_events

Revision ID: 0001
Revises:
Create Date: 2025-11-25
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from servicekit.migrations import create_outbox_and_inbox_tables

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    create_outbox_and_inbox_tables()
    op.create_table(
        "tenants",
        sa.Column("tenant_id", sa.String(63), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("widget_key", sa.String(128), nullable=False, unique=True),
        sa.Column("allowed_origins", postgresql.ARRAY(sa.String(300)), nullable=False, server_default="{}"),
        sa.Column("default_language", sa.String(2), nullable=False, server_default="it"),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("tenants")
    op.drop_table("processed_events")
    op.drop_table("outbox")
