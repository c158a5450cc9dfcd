"""public share links to credentials

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "shares",
        sa.Column("token", sa.String(length=64), nullable=False),
        sa.Column("credential_id", sa.String(length=36), nullable=False),
        sa.Column("learner_id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("withdrawn_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["credential_id"],
            ["awards.credential_id"],
        ),
        sa.PrimaryKeyConstraint("token"),
    )
    op.create_index("ix_shares_credential_id", "shares", ["credential_id"])
    op.create_index("ix_shares_learner_id", "shares", ["learner_id"])


def downgrade() -> None:
    op.drop_table("shares")
