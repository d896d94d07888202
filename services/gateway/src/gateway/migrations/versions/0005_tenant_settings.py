"""tenant settings: profile (time zone, business hours, revision), widget appearance, key rotation,
sign-ups awaiting verification, operator invitations, canned responses

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("tenants", sa.Column("time_zone", sa.String(64), nullable=False, server_default="Europe/Rome"))
    # [{days: [mon, ...], start: "HH:MM", end: "HH:MM"}]; empty: operators answer at any hour.
    op.add_column("tenants", sa.Column("business_hours", postgresql.JSONB, nullable=False, server_default="[]"))
    # Grows with every profile change; carried by tenant.profile_changed so readers keep the newest.
    op.add_column("tenants", sa.Column("profile_revision", sa.Integer, nullable=False, server_default="1"))
    # Colours, position and per-language texts of the widget (gateway.settings_api.WidgetAppearance).
    op.add_column("tenants", sa.Column("widget", postgresql.JSONB, nullable=False, server_default="{}"))
    # After a key rotation the previous key keeps working until previous_key_expires_at.
    op.add_column("tenants", sa.Column("previous_widget_key", sa.String(128), nullable=True))
    op.add_column("tenants", sa.Column("previous_key_expires_at", sa.DateTime(timezone=True), nullable=True))
    # A tenant that signed up itself stays refused until its first admin verified their email.
    op.add_column("tenants", sa.Column("pending_verification", sa.Boolean, nullable=False, server_default=sa.false()))
    op.create_table(
        "invitations",
        sa.Column("invitation_id", sa.Uuid, primary_key=True),
        sa.Column("tenant_id", sa.String(63), sa.ForeignKey("tenants.tenant_id"), nullable=False),
        sa.Column("email", sa.String(320), nullable=False),
        sa.Column("role", sa.String(20), nullable=False),
        sa.Column("skills", postgresql.ARRAY(sa.String(40)), nullable=False, server_default="{}"),
        sa.Column("capacity", sa.Integer, nullable=False),
        sa.Column("language", sa.String(2), nullable=False),
        sa.Column("invited_by", sa.String(100), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("accepted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("operator_id", sa.String(100), nullable=True),  # the account it became
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index("ix_invitations_tenant", "invitations", ["tenant_id", "created_at"])
    op.create_table(
        "canned_responses",
        sa.Column("response_id", sa.Uuid, primary_key=True),
        sa.Column("tenant_id", sa.String(63), sa.ForeignKey("tenants.tenant_id"), nullable=False),
        sa.Column("language", sa.String(2), nullable=False),
        sa.Column("shortcut", sa.String(40), nullable=False),
        sa.Column("title", sa.String(200), nullable=False),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.UniqueConstraint("tenant_id", "language", "shortcut", name="uq_canned_tenant_language_shortcut"),
    )


def downgrade() -> None:
    op.drop_table("canned_responses")
    op.drop_index("ix_invitations_tenant", table_name="invitations")
    op.drop_table("invitations")
    for column in (
        "pending_verification",
        "previous_key_expires_at",
        "previous_widget_key",
        "widget",
        "profile_revision",
        "business_hours",
        "time_zone",
    ):
        op.drop_column("tenants", column)
