"""wallet_offers and wallet_copies: OpenID4VCI offers of a credential to a wallet, and the copies bound to
a wallet's key (docs/wallets.md)

Revision ID: 0011
Revises: 0010
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "wallet_offers",
        sa.Column("code_hash", sa.String(length=64), primary_key=True),
        sa.Column(
            "credential_id", sa.String(length=36), sa.ForeignKey("awards.credential_id"), nullable=False
        ),
        sa.Column("learner_id", sa.Integer(), nullable=False),
        sa.Column("configurations", sa.String(length=200), nullable=False),
        sa.Column("delivered", sa.String(length=200), nullable=False, server_default=""),
        sa.Column("tx_code_hash", sa.String(length=64), nullable=True),
        sa.Column("failed_tx_codes", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("created_by", sa.String(length=20), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("redeemed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("token_hash", sa.String(length=64), nullable=True, unique=True),
        sa.Column("token_expires_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index("ix_wallet_offers_credential_id", "wallet_offers", ["credential_id"])
    op.create_index("ix_wallet_offers_learner_id", "wallet_offers", ["learner_id"])
    op.create_index("ix_wallet_offers_expires_at", "wallet_offers", ["expires_at"])
    op.create_table(
        "wallet_copies",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column(
            "credential_id", sa.String(length=36), sa.ForeignKey("awards.credential_id"), nullable=False
        ),
        sa.Column("learner_id", sa.Integer(), nullable=False),
        sa.Column("holder", sa.String(length=1000), nullable=False),
        sa.Column("configuration", sa.String(length=64), nullable=False),
        sa.Column("issued_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_wallet_copies_credential_id", "wallet_copies", ["credential_id"])
    op.create_index("ix_wallet_copies_learner_id", "wallet_copies", ["learner_id"])


def downgrade() -> None:
    op.drop_table("wallet_copies")
    op.drop_table("wallet_offers")
