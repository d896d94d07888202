"""conversations.fold: the summary's fold, extended by new facts instead of re-reading them all

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
    # Rows written before have none: the next fact of such a conversation rebuilds it in full.
    op.add_column("conversations", sa.Column("fold", postgresql.JSONB(), nullable=True))


def downgrade() -> None:
    op.drop_column("conversations", "fold")
