"""messages.handoff_reason: why an AI reply offered a person, for the handover summary

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Nullable, no default: PostgreSQL adds the column without rewriting the table.
    op.add_column("messages", sa.Column("handoff_reason", sa.String(32), nullable=True))


def downgrade() -> None:
    op.drop_column("messages", "handoff_reason")
