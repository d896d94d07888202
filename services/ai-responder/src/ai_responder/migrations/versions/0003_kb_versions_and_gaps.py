"""knowledge-base versions (history and rollback) and the questions the assistant could not answer

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "knowledge_base_versions",
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("content", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("author", sa.String(length=200), nullable=False, server_default=""),
        sa.Column("note", sa.String(length=500), nullable=False, server_default=""),
        sa.PrimaryKeyConstraint("tenant_id", "version"),
    )
    # The live knowledge bases become each tenant's first recorded version.
    op.execute(
        "INSERT INTO knowledge_base_versions (tenant_id, version, content, created_at, note)"
        " SELECT tenant_id, version, content, updated_at, 'before version history' FROM knowledge_bases"
    )
    op.create_table(
        "unanswered_questions",
        sa.Column("question_id", sa.Uuid(), nullable=False),
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("conversation_id", sa.Uuid(), nullable=True),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("language", sa.String(length=2), nullable=False),
        sa.Column("reason", sa.String(length=32), nullable=False),
        sa.Column("asked_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("resolved_by", sa.String(length=120), nullable=True),
        sa.PrimaryKeyConstraint("question_id"),
    )
    op.create_index("ix_unanswered_questions_tenant_asked", "unanswered_questions", ["tenant_id", "asked_at"])


def downgrade() -> None:
    op.drop_index("ix_unanswered_questions_tenant_asked", table_name="unanswered_questions")
    op.drop_table("unanswered_questions")
    op.drop_table("knowledge_base_versions")
