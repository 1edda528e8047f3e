"""Appointment reminders: the durable schedule the reminder scheduler works through

Revision ID: 0012_appointment_reminders
Revises: 0011_whatsapp_templates
Create Date: 2026-12-06 15:35:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012_appointment_reminders"
down_revision: str | None = "0011_whatsapp_templates"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "appointment_reminder",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("appointment_id", sa.String(length=64), nullable=False),
        sa.Column("conversation_id", sa.String(length=36), nullable=False),
        sa.Column("user_id", sa.String(length=255), nullable=False),
        sa.Column("service", sa.String(length=100), nullable=True),
        sa.Column("staff", sa.String(length=100), nullable=True),
        sa.Column("customer_name", sa.String(length=255), nullable=True),
        sa.Column("starts_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("locked_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("lease_owner", sa.String(length=32), nullable=True),
        sa.Column("message_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("response", sa.String(length=16), nullable=True),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_appointment_reminder")),
        sa.UniqueConstraint("appointment_id", name=op.f("uq_appointment_reminder_appointment_id")),
    )
    op.create_index("ix_appointment_reminder_state_due", "appointment_reminder", ["state", "due_at"])
    op.create_index("ix_appointment_reminder_conversation", "appointment_reminder", ["conversation_id"])
    op.create_index("ix_appointment_reminder_message", "appointment_reminder", ["message_id"])


def downgrade() -> None:
    op.drop_index("ix_appointment_reminder_message", table_name="appointment_reminder")
    op.drop_index("ix_appointment_reminder_conversation", table_name="appointment_reminder")
    op.drop_index("ix_appointment_reminder_state_due", table_name="appointment_reminder")
    op.drop_table("appointment_reminder")
