"""events outbox, feedback, sessions, customer profiles

Revision ID: 0003
Revises: 0001
Create Date: 2026-11-25 14:44:41.887163
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0003'
down_revision: str | None = '0001'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:

    op.create_table('customer_profile',
    sa.Column('user_id', sa.String(length=128), nullable=False),
    sa.Column('channel', sa.String(length=32), nullable=True),
    sa.Column('last_conversation_id', sa.String(length=36), nullable=True),
    sa.Column('last_intent', sa.String(length=128), nullable=True),
    sa.Column('last_intent_confidence', sa.Float(), nullable=True),
    sa.Column('last_intent_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('contact', sa.JSON(), nullable=True),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('user_id', name=op.f('pk_customer_profile'))
    )
    op.create_table('outbox_event',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('event_id', sa.String(length=36), nullable=False),
    sa.Column('type', sa.String(length=64), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('conversation_id', sa.String(length=36), nullable=True),
    sa.Column('user_id', sa.String(length=128), nullable=True),
    sa.Column('channel', sa.String(length=32), nullable=True),
    sa.Column('payload', sa.JSON(), nullable=False),
    sa.Column('occurred_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('published_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_outbox_event')),
    sa.UniqueConstraint('event_id', name=op.f('uq_outbox_event_event_id'))
    )
    with op.batch_alter_table('outbox_event', schema=None) as batch_op:
        batch_op.create_index('ix_outbox_event_published_at_id', ['published_at', 'id'], unique=False)
        batch_op.create_index('ix_outbox_event_type_occurred_at', ['type', 'occurred_at'], unique=False)

    op.create_table('conversation_session',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('conversation_id', sa.String(length=36), nullable=False),
    sa.Column('channel', sa.String(length=32), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('last_message_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('messages', sa.Integer(), nullable=False),
    sa.Column('ended_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['conversation_id'], ['conversation.id'], name=op.f('fk_conversation_session_conversation_id_conversation'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_conversation_session'))
    )
    with op.batch_alter_table('conversation_session', schema=None) as batch_op:
        batch_op.create_index('ix_conversation_session_conversation_id_ended_at', ['conversation_id', 'ended_at'], unique=False)
        batch_op.create_index('ix_conversation_session_ended_at_last_message_at', ['ended_at', 'last_message_at'], unique=False)
        batch_op.create_index('ix_conversation_session_started_at', ['started_at'], unique=False)

    op.create_table('feedback',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('conversation_id', sa.String(length=36), nullable=False),
    sa.Column('user_id', sa.String(length=128), nullable=False),
    sa.Column('channel', sa.String(length=32), nullable=False),
    sa.Column('rating', sa.Integer(), nullable=False),
    sa.Column('comment', sa.Text(), nullable=True),
    sa.Column('source', sa.String(length=16), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint('rating >= 1 AND rating <= 5', name=op.f('ck_feedback_rating_range')),
    sa.ForeignKeyConstraint(['conversation_id'], ['conversation.id'], name=op.f('fk_feedback_conversation_id_conversation'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_feedback')),
    sa.UniqueConstraint('conversation_id', name=op.f('uq_feedback_conversation_id'))
    )
    with op.batch_alter_table('feedback', schema=None) as batch_op:
        batch_op.create_index('ix_feedback_created_at', ['created_at'], unique=False)




def downgrade() -> None:

    with op.batch_alter_table('feedback', schema=None) as batch_op:
        batch_op.drop_index('ix_feedback_created_at')

    op.drop_table('feedback')
    with op.batch_alter_table('conversation_session', schema=None) as batch_op:
        batch_op.drop_index('ix_conversation_session_started_at')
        batch_op.drop_index('ix_conversation_session_ended_at_last_message_at')
        batch_op.drop_index('ix_conversation_session_conversation_id_ended_at')

    op.drop_table('conversation_session')
    with op.batch_alter_table('outbox_event', schema=None) as batch_op:
        batch_op.drop_index('ix_outbox_event_type_occurred_at')
        batch_op.drop_index('ix_outbox_event_published_at_id')

    op.drop_table('outbox_event')
    op.drop_table('customer_profile')

