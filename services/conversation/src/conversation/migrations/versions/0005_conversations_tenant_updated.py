"""conversations (tenant_id, updated_at) index: the operators' lists, newest change first

Revision ID: 0005
Revises: 0004
"""

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_conversations_tenant_updated", "conversations", ["tenant_id", "updated_at"])


def downgrade() -> None:
    op.drop_index("ix_conversations_tenant_updated", table_name="conversations")
