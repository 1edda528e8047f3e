"""conversation review: flags, annotations and the decision log

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06 14:40:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIGINT = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "review_flag",
        sa.Column("message_id", BIGINT, nullable=False),
        sa.Column("conversation_id", sa.String(length=36), nullable=False),
        sa.Column("flagged_by", sa.String(length=128), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["conversation_id"],
            ["conversation.id"],
            name=op.f("fk_review_flag_conversation_id_conversation"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["message_id"], ["message.id"], name=op.f("fk_review_flag_message_id_message"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("message_id", name=op.f("pk_review_flag")),
    )
    op.create_table(
        "review_annotation",
        sa.Column("message_id", BIGINT, nullable=False),
        sa.Column("conversation_id", sa.String(length=36), nullable=False),
        sa.Column("decision", sa.String(length=16), nullable=False),
        sa.Column("intent", sa.String(length=128), nullable=True),
        sa.Column("entities", sa.JSON(), nullable=True),
        sa.Column("predicted_intent", sa.String(length=128), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("reviewed_by", sa.String(length=128), nullable=False),
        sa.Column("reviewed_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["conversation_id"],
            ["conversation.id"],
            name=op.f("fk_review_annotation_conversation_id_conversation"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["message_id"], ["message.id"], name=op.f("fk_review_annotation_message_id_message"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("message_id", name=op.f("pk_review_annotation")),
    )
    op.create_index(
        "ix_review_annotation_decision_reviewed_at", "review_annotation", ["decision", "reviewed_at"], unique=False
    )
    op.create_table(
        "review_decision",
        sa.Column("id", BIGINT, autoincrement=True, nullable=False),
        sa.Column("message_id", BIGINT, nullable=False),
        sa.Column("conversation_id", sa.String(length=36), nullable=False),
        sa.Column("decision", sa.String(length=16), nullable=False),
        sa.Column("intent", sa.String(length=128), nullable=True),
        sa.Column("entities", sa.JSON(), nullable=True),
        sa.Column("predicted_intent", sa.String(length=128), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("actor", sa.String(length=128), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["conversation_id"],
            ["conversation.id"],
            name=op.f("fk_review_decision_conversation_id_conversation"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["message_id"], ["message.id"], name=op.f("fk_review_decision_message_id_message"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_review_decision")),
    )
    op.create_index("ix_review_decision_message_id_id", "review_decision", ["message_id", "id"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_review_decision_message_id_id", table_name="review_decision")
    op.drop_table("review_decision")
    op.drop_index("ix_review_annotation_decision_reviewed_at", table_name="review_annotation")
    op.drop_table("review_annotation")
    op.drop_table("review_flag")
