"""operator accounts

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
        "operators",
        sa.Column("operator_id", sa.String(100), primary_key=True),
        sa.Column("tenant_id", sa.String(63), sa.ForeignKey("tenants.tenant_id"), nullable=False),
        # Unique across tenants: the login form asks for a username only.
        sa.Column("username", sa.String(100), nullable=False, unique=True),
        sa.Column("display_name", sa.String(200), nullable=False),
        sa.Column("password_hash", sa.String(200), nullable=False),
        sa.Column("role", sa.String(20), nullable=False),
        sa.Column("skills", postgresql.ARRAY(sa.String(40)), nullable=False, server_default="{}"),
        sa.Column("capacity", sa.Integer, nullable=False, server_default="3"),
        sa.Column("active", sa.Boolean, nullable=False, server_default=sa.true()),
        sa.Column("presence", sa.String(10), nullable=False, server_default="offline"),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.CheckConstraint("role IN ('operator', 'supervisor', 'admin')", name="operators_role"),
        sa.CheckConstraint("presence IN ('online', 'away', 'offline')", name="operators_presence"),
        sa.CheckConstraint("capacity BETWEEN 1 AND 20", name="operators_capacity"),
    )
    op.create_index("ix_operators_tenant_id", "operators", ["tenant_id"])


def downgrade() -> None:
    op.drop_table("operators")
