"""initial schema: platform tables, tickets, their counters, replies, notes, history and SLA clocks

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
        "tickets",
        sa.Column("ticket_id", sa.Uuid(), nullable=False),
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("number", sa.String(length=21), nullable=False),
        sa.Column("idempotency_key", sa.Uuid(), nullable=False),
        sa.Column("conversation_id", sa.Uuid(), nullable=True),
        sa.Column("source", sa.String(length=12), nullable=False),
        sa.Column("created_by", sa.String(length=100), nullable=True),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("priority", sa.String(length=10), nullable=False),
        sa.Column("assignee_id", sa.String(length=100), nullable=True),
        sa.Column("contact", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("contact_name", sa.String(length=200), nullable=False),
        sa.Column("email_key", sa.String(length=254), nullable=True),
        sa.Column("phone_key", sa.String(length=24), nullable=True),
        sa.Column("language", sa.String(length=2), nullable=True),
        sa.Column("subject", sa.String(length=1000), nullable=False),
        sa.Column("message", sa.String(length=4000), nullable=False),
        sa.Column("transcript", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("ticket_id"),
        sa.UniqueConstraint("tenant_id", "number", name="uq_tickets_tenant_number"),
        sa.UniqueConstraint("tenant_id", "idempotency_key", name="uq_tickets_tenant_idempotency_key"),
    )
    op.create_index("ix_tickets_tenant_created", "tickets", ["tenant_id", "created_at"], unique=False)
    op.create_table(
        "ticket_counters",
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("last_number", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id"),
    )
    op.create_table(
        "ticket_replies",
        sa.Column("reply_id", sa.Uuid(), nullable=False),
        sa.Column("ticket_id", sa.Uuid(), nullable=False),
        sa.Column("author", sa.String(length=10), nullable=False),
        sa.Column("operator_id", sa.String(length=100), nullable=True),
        sa.Column("text", sa.String(length=4000), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["ticket_id"], ["tickets.ticket_id"]),
        sa.PrimaryKeyConstraint("reply_id"),
    )
    op.create_index("ix_ticket_replies_ticket", "ticket_replies", ["ticket_id", "created_at"], unique=False)
    op.create_table(
        "ticket_notes",
        sa.Column("note_id", sa.Uuid(), nullable=False),
        sa.Column("ticket_id", sa.Uuid(), nullable=False),
        sa.Column("operator_id", sa.String(length=100), nullable=False),
        sa.Column("text", sa.String(length=4000), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["ticket_id"], ["tickets.ticket_id"]),
        sa.PrimaryKeyConstraint("note_id"),
    )
    op.create_index("ix_ticket_notes_ticket", "ticket_notes", ["ticket_id", "created_at"], unique=False)
    op.create_table(
        "ticket_status_changes",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("ticket_id", sa.Uuid(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("previous_status", sa.String(length=20), nullable=True),
        sa.Column("changed_by", sa.String(length=100), nullable=False),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["ticket_id"], ["tickets.ticket_id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_ticket_status_changes_ticket", "ticket_status_changes", ["ticket_id", "id"], unique=False)
    op.create_table(
        "sla_clocks",
        sa.Column("ticket_id", sa.Uuid(), nullable=False),
        sa.Column("clock", sa.String(length=20), nullable=False),
        sa.Column("target_seconds", sa.Float(), nullable=False),
        sa.Column("used_seconds", sa.Float(), nullable=False),
        sa.Column("running_since", sa.DateTime(timezone=True), nullable=True),
        sa.Column("warning_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("warned_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("breached_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("met_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["ticket_id"], ["tickets.ticket_id"]),
        sa.PrimaryKeyConstraint("ticket_id", "clock"),
    )


def downgrade() -> None:
    op.drop_table("sla_clocks")
    op.drop_index("ix_ticket_status_changes_ticket", table_name="ticket_status_changes")
    op.drop_table("ticket_status_changes")
    op.drop_index("ix_ticket_notes_ticket", table_name="ticket_notes")
    op.drop_table("ticket_notes")
    op.drop_index("ix_ticket_replies_ticket", table_name="ticket_replies")
    op.drop_table("ticket_replies")
    op.drop_table("ticket_counters")
    op.drop_index("ix_tickets_tenant_created", table_name="tickets")
    op.drop_table("tickets")
    drop_platform_tables_v2()
    op.drop_table("processed_events")
    op.drop_table("outbox")
