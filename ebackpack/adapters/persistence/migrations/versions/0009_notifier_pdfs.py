"""notifier_pdfs: the certificate PDFs the notifier has heard of (`certificates.rendered`), so that it no
longer reads the renderer's `certificates` table; filled once from that table for PDFs stored before

Revision ID: 0009
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "notifier_pdfs",
        sa.Column("credential_id", sa.String(length=36), nullable=False),
        sa.Column("rendered_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("credential_id"),
    )
    # A message waiting now for a PDF rendered before this upgrade finds it here: its event was read
    # (or will be, from `certificates.rendered`) by a notifier that did not record it.
    op.execute(
        "INSERT INTO notifier_pdfs (credential_id, rendered_at) "
        "SELECT credential_id, MIN(rendered_at) FROM certificates GROUP BY credential_id"
    )


def downgrade() -> None:
    op.drop_table("notifier_pdfs")
