"""Queues that end: the WhatsApp inbound lease's owner, failed attempts, and `dead` instead of `failed`.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-26
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("whatsapp_inbound", schema=None) as batch_op:
        batch_op.add_column(sa.Column("lease_owner", sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column("failed_attempts", sa.Integer(), nullable=False, server_default="0"))
    # Rows the worker gave up on were parked as `failed`; they are the dead letters now, and can be re-driven.
    op.execute("UPDATE whatsapp_inbound SET state = 'dead' WHERE state = 'failed'")


def downgrade() -> None:
    op.execute("UPDATE whatsapp_inbound SET state = 'failed' WHERE state = 'dead'")
    with op.batch_alter_table("whatsapp_inbound", schema=None) as batch_op:
        batch_op.drop_column("failed_attempts")
        batch_op.drop_column("lease_owner")
