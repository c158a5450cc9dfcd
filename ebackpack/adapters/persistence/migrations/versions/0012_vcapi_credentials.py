"""vcapi_credentials: credentials signed through the VC-API with a status entry, on status lists of their
own (numbered from 1,000,000; docs/wallets.md)

Revision ID: 0012
Revises: 0011
"""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "vcapi_credentials",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("credential_id", sa.String(length=1000), nullable=True),
        sa.Column("issuer", sa.String(length=200), nullable=False),
        sa.Column("status_list", sa.Integer(), nullable=False),
        sa.Column("status_index", sa.Integer(), nullable=False),
        sa.Column("issued_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.UniqueConstraint("status_list", "status_index"),
    )
    op.create_index("ix_vcapi_credentials_issuer", "vcapi_credentials", ["issuer"])
    op.create_index("ix_vcapi_credentials_status_list", "vcapi_credentials", ["status_list"])


def downgrade() -> None:
    op.drop_table("vcapi_credentials")
