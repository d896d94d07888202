"""initial schema: platform tables, facts, conversations, operator turns, tickets and questions

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
        "conversations",
        sa.Column("tenant_id", sa.String(length=63), nullable=False),
        sa.Column("conversation_id", sa.Uuid(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_activity_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ai_answers", sa.Integer(), nullable=False),
        sa.Column("ai_involved", sa.Boolean(), nullable=False),
        sa.Column("ai_resolution_candidate", sa.Boolean(), nullable=False),
        sa.Column("answer_confirmed", sa.Boolean(), nullable=False),
        sa.Column("handed_off", sa.Boolean(), nullable=False),
        sa.Column("handoff_reason", sa.String(length=40), nullable=True),
        sa.Column("escalated", sa.Boolean(), nullable=False),
        sa.Column("unanswered", sa.Boolean(), nullable=False),
        sa.Column("left_the_queue", sa.Boolean(), nullable=False),
        sa.Column("no_operator_available", sa.Boolean(), nullable=False),
        sa.Column("ticket_requested", sa.Boolean(), nullable=False),
        sa.Column("queue_wait_seconds", sa.Float(), nullable=True),
        sa.Column("last_operator_id", sa.String(length=100), nullable=True),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("closed_status", sa.String(length=20), nullable=True),
        sa.Column("rating", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("tenant_id", "conversation_id"),
    )
    op.create_index("ix_conversations_tenant_started", "conversations", ["tenant_id", "started_at"], unique=False)
    op.create_table(
        "facts",
        sa.Column("fact_id", sa.Uuid(), nullable=False),
        sa.Column("tenant_id", sa.String(length=63), nullable=False),
        sa.Column("name", sa.String(length=40), nullable=False),
        sa.Column("conversation_id", sa.Uuid(), nullable=True),
        sa.Column("ticket_id", sa.Uuid(), nullable=True),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("body", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.PrimaryKeyConstraint("fact_id"),
    )
    op.create_index("ix_facts_tenant_conversation", "facts", ["tenant_id", "conversation_id"], unique=False)
    op.create_index("ix_facts_tenant_ticket", "facts", ["tenant_id", "ticket_id"], unique=False)
    op.create_table(
        "operator_sessions",
        sa.Column("tenant_id", sa.String(length=63), nullable=False),
        sa.Column("conversation_id", sa.Uuid(), nullable=False),
        sa.Column("turn", sa.Integer(), nullable=False),
        sa.Column("operator_id", sa.String(length=100), nullable=False),
        sa.Column("assigned_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("first_response_seconds", sa.Float(), nullable=True),
        sa.Column("handle_seconds", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("tenant_id", "conversation_id", "turn"),
    )
    op.create_index(
        "ix_operator_sessions_tenant_operator", "operator_sessions", ["tenant_id", "operator_id"], unique=False
    )
    op.create_table(
        "questions",
        sa.Column("tenant_id", sa.String(length=63), nullable=False),
        sa.Column("message_id", sa.Uuid(), nullable=False),
        sa.Column("conversation_id", sa.Uuid(), nullable=True),
        sa.Column("asked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("text", sa.Text(), nullable=True),
        sa.Column("kb_gap", sa.Boolean(), nullable=False),
        sa.Column("answered", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "message_id"),
    )
    op.create_index("ix_questions_tenant_asked", "questions", ["tenant_id", "asked_at"], unique=False)
    op.create_table(
        "tickets",
        sa.Column("tenant_id", sa.String(length=63), nullable=False),
        sa.Column("ticket_id", sa.Uuid(), nullable=False),
        sa.Column("conversation_id", sa.Uuid(), nullable=True),
        sa.Column("opened_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("status", sa.String(length=20), nullable=True),
        sa.Column("priority", sa.String(length=10), nullable=True),
        sa.Column("source", sa.String(length=20), nullable=True),
        sa.Column("first_response_due", sa.DateTime(timezone=True), nullable=True),
        sa.Column("first_response_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("first_response_breached", sa.Boolean(), nullable=False),
        sa.Column("resolution_due", sa.DateTime(timezone=True), nullable=True),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("resolution_breached", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "ticket_id"),
    )
    op.create_index("ix_tickets_tenant_opened", "tickets", ["tenant_id", "opened_at"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_tickets_tenant_opened", table_name="tickets")
    op.drop_table("tickets")
    op.drop_index("ix_questions_tenant_asked", table_name="questions")
    op.drop_table("questions")
    op.drop_index("ix_operator_sessions_tenant_operator", table_name="operator_sessions")
    op.drop_table("operator_sessions")
    op.drop_index("ix_facts_tenant_ticket", table_name="facts")
    op.drop_index("ix_facts_tenant_conversation", table_name="facts")
    op.drop_table("facts")
    op.drop_index("ix_conversations_tenant_started", table_name="conversations")
    op.drop_table("conversations")
    drop_platform_tables_v2()
    op.drop_table("processed_events")
    op.drop_table("outbox")
