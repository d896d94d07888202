"""tenant self-service: disabled tenants, operator token generations and emails, the audit log

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # NULL: enabled. A disabled tenant keeps all its data; its widget key and operators are refused.
    op.add_column("tenants", sa.Column("disabled_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column(
        "tenants", sa.Column("languages", postgresql.ARRAY(sa.String(2)), nullable=False, server_default="{}")
    )
    op.add_column("operators", sa.Column("email", sa.String(320), nullable=True))
    # Bumped when the account is deactivated: tokens carry the generation they were issued under,
    # so tokens issued before a deactivation stay refused after the account is activated again.
    op.add_column("operators", sa.Column("token_generation", sa.Integer, nullable=False, server_default="0"))
    op.create_table(
        "audit_log",
        sa.Column("entry_id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("tenant_id", sa.String(63), nullable=False),
        sa.Column("actor", sa.String(100), nullable=False),  # an operator id, or platform-cli
        sa.Column("action", sa.String(60), nullable=False),
        sa.Column("target", sa.String(200), nullable=False),
        sa.Column("before", postgresql.JSONB, nullable=True),
        sa.Column("after", postgresql.JSONB, nullable=True),
        sa.Column("occurred_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    )
    op.create_index("ix_audit_log_tenant_entry", "audit_log", ["tenant_id", "entry_id"])


def downgrade() -> None:
    op.drop_table("audit_log")
    op.drop_column("operators", "token_generation")
    op.drop_column("operators", "email")
    op.drop_column("tenants", "languages")
    op.drop_column("tenants", "disabled_at")
