"""message turn state and reply link: idempotent, re-drivable turns

Revision ID: 0007
Revises: 0005
Create Date: 2026-12-01 23:10:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("message", schema=None) as batch_op:
        batch_op.add_column(sa.Column("turn_state", sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column("reply_to", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True))
        batch_op.create_index("ix_message_reply_to", ["reply_to"], unique=False)
    # The re-driver's scan: only the (few) messages still waiting for the bot.
    op.create_index(
        "ix_message_turn_pending",
        "message",
        ["id"],
        unique=False,
        postgresql_where=sa.text("turn_state = 'pending'"),
        sqlite_where=sa.text("turn_state = 'pending'"),
    )


def downgrade() -> None:
    op.drop_index("ix_message_turn_pending", table_name="message")
    with op.batch_alter_table("message", schema=None) as batch_op:
        batch_op.drop_index("ix_message_reply_to")
        batch_op.drop_column("reply_to")
        batch_op.drop_column("turn_state")
