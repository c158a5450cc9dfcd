"""parked_messages: issuer events waiting for a learner or course profile, per learner in order

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "parked_messages",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("learner_id", sa.Integer(), nullable=False),
        sa.Column("course_id", sa.Integer(), nullable=False),
        sa.Column("event_id", sa.String(length=200), nullable=False),
        sa.Column("source", sa.String(length=300), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("parked_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("learner_id", "event_id", name="uq_parked_learner_event"),
    )
    op.create_index("ix_parked_messages_learner_id", "parked_messages", ["learner_id"])
    op.create_index("ix_parked_messages_course_id", "parked_messages", ["course_id"])


def downgrade() -> None:
    op.drop_index("ix_parked_messages_course_id", table_name="parked_messages")
    op.drop_index("ix_parked_messages_learner_id", table_name="parked_messages")
    op.drop_table("parked_messages")
