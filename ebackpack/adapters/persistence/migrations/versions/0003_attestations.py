"""external attestations uploaded by learners

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
    op.create_table(
        "attestations",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("learner_id", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(length=20), nullable=False),
        sa.Column("object_key", sa.String(length=300), nullable=True),
        sa.Column("submitted_url", sa.Text(), nullable=True),
        sa.Column("filename", sa.String(length=255), nullable=True),
        sa.Column("media_type", sa.String(length=100), nullable=True),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=True),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("checked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("event_id", sa.String(length=36), nullable=True),
        sa.Column("rejection_reason", sa.Text(), nullable=True),
        sa.Column("source_format", sa.String(length=30), nullable=True),
        sa.Column("verification_status", sa.String(length=60), nullable=True),
        sa.Column("record", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_attestations_learner_id", "attestations", ["learner_id"])
    op.create_index("ix_attestations_state", "attestations", ["state"])
    op.create_index("ix_attestations_checked_at", "attestations", ["checked_at"])


def downgrade() -> None:
    op.drop_table("attestations")
