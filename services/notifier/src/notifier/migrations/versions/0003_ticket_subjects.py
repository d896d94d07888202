"""ticket_subjects: the ticket's subject, which every email of the ticket carries in its own

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("tickets", sa.Column("subject", sa.String(length=1000), server_default="", nullable=False))


def downgrade() -> None:
    op.drop_column("tickets", "subject")
