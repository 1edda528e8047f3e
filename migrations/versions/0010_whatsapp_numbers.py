"""WhatsApp with several phone numbers: the number each customer last wrote to, the one each reply went out from.

Revision ID: 0010_whatsapp_numbers
Revises: 0009 (the conversation review)
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010_whatsapp_numbers"
down_revision: str | Sequence[str] | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("whatsapp_contact", schema=None) as batch_op:
        batch_op.add_column(sa.Column("phone_number_id", sa.String(length=64), nullable=True))
    with op.batch_alter_table("whatsapp_outbound", schema=None) as batch_op:
        batch_op.add_column(sa.Column("phone_number_id", sa.String(length=64), nullable=True))
    # Until now every customer wrote to the one configured number: the one of their latest message.
    op.execute(
        "UPDATE whatsapp_contact SET phone_number_id = ("
        " SELECT i.phone_number_id FROM whatsapp_inbound i WHERE i.wa_id = whatsapp_contact.wa_id"
        " ORDER BY i.sent_at DESC, i.id DESC LIMIT 1)"
    )


def downgrade() -> None:
    with op.batch_alter_table("whatsapp_outbound", schema=None) as batch_op:
        batch_op.drop_column("phone_number_id")
    with op.batch_alter_table("whatsapp_contact", schema=None) as batch_op:
        batch_op.drop_column("phone_number_id")
