"""platform tables v2: outbox parking, processed-events prune index, stored retries, timers

Revision ID: 0002
Revises: 0001
"""

from servicekit.migrations import create_platform_tables_v2, drop_platform_tables_v2

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    create_platform_tables_v2()


def downgrade() -> None:
    drop_platform_tables_v2()
