"""initial schema: platform tables, operators and routed conversations

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from servicekit.migrations import create_outbox_and_inbox_tables, create_platform_tables_v2, drop_platform_tables_v2

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    create_outbox_and_inbox_tables()
    create_platform_tables_v2()
    op.create_table(
        "operators",
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("operator_id", sa.String(length=100), nullable=False),
        sa.Column("display_name", sa.String(length=200), nullable=False),
        sa.Column("presence", sa.String(length=10), nullable=False),
        sa.Column("requested_presence", sa.String(length=10), nullable=True),
        sa.Column("skills", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("capacity", sa.Integer(), nullable=False),
        sa.Column("missed_offers", sa.Integer(), nullable=False),
        sa.Column("last_assigned_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "operator_id"),
    )
    op.create_table(
        "routed_conversations",
        sa.Column("conversation_id", sa.Uuid(), nullable=False),
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("state", sa.String(length=10), nullable=False),
        sa.Column("priority", sa.String(length=10), nullable=False),
        sa.Column("reason", sa.String(length=40), nullable=True),
        sa.Column("intent", sa.String(length=40), nullable=True),
        sa.Column("wanted_skills", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("excluded_operator_id", sa.String(length=100), nullable=True),
        sa.Column("declined_by", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("waiting_since", sa.DateTime(timezone=True), nullable=False),
        sa.Column("operator_id", sa.String(length=100), nullable=True),
        sa.Column("offer_id", sa.Uuid(), nullable=True),
        sa.Column("offer_expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("assigned_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_position", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("conversation_id"),
    )
    op.create_index(
        "ix_routed_conversations_tenant_state", "routed_conversations", ["tenant_id", "state"], unique=False
    )
    op.create_index(
        "ix_routed_conversations_tenant_operator", "routed_conversations", ["tenant_id", "operator_id"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_routed_conversations_tenant_operator", table_name="routed_conversations")
    op.drop_index("ix_routed_conversations_tenant_state", table_name="routed_conversations")
    op.drop_table("routed_conversations")
    op.drop_table("operators")
    drop_platform_tables_v2()
    op.drop_table("processed_events")
    op.drop_table("outbox")
