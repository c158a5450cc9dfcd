"""signed credentials: recipient hash, status list entry, validity, revocation

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    for column in (
        sa.Column("recipient_salt", sa.String(length=32), nullable=True),
        sa.Column("recipient_hash", sa.String(length=80), nullable=True),
        sa.Column("valid_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("status_list", sa.Integer(), nullable=True),
        sa.Column("status_index", sa.Integer(), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revocation_reason", sa.Text(), nullable=True),
    ):
        op.add_column("awards", column)
    op.create_index("uq_awards_status_entry", "awards", ["status_list", "status_index"], unique=True)
    op.create_table(
        "signed_credentials",
        sa.Column("credential_id", sa.String(length=36), nullable=False),
        sa.Column("format", sa.String(length=20), nullable=False),
        sa.Column("document", sa.Text(), nullable=False),
        sa.Column("verification_method", sa.String(length=300), nullable=False),
        sa.Column("signed_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["credential_id"],
            ["awards.credential_id"],
        ),
        sa.PrimaryKeyConstraint("credential_id", "format"),
    )


def downgrade() -> None:
    op.drop_table("signed_credentials")
    op.drop_index("uq_awards_status_entry", table_name="awards")
    for name in (
        "revocation_reason",
        "revoked_at",
        "status_index",
        "status_list",
        "valid_until",
        "recipient_hash",
        "recipient_salt",
    ):
        op.drop_column("awards", name)
