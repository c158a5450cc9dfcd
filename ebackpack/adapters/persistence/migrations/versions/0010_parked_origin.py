"""parked_messages.origin: the issuer's lane a parked completion came on (`live` or `backfill`), so the
credential issued when it resumes says so in its `credential.issued` event; rows parked before: `live`

Revision ID: 0010
Revises: 0009
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "parked_messages",
        sa.Column("origin", sa.String(length=16), nullable=False, server_default="live"),
    )


def downgrade() -> None:
    op.drop_column("parked_messages", "origin")
