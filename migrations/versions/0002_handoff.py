"""handoff transitions and assignments

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25 14:39:29.182609
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0002'
down_revision: str | None = '0001'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:

    op.create_table('conversation_handoff',
    sa.Column('conversation_id', sa.String(length=36), nullable=False),
    sa.Column('reason', sa.String(length=64), nullable=True),
    sa.Column('requested_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('claimed_by', sa.String(length=128), nullable=True),
    sa.Column('claimed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('fallback_streak', sa.Integer(), nullable=False),
    sa.Column('bot_sync', sa.Enum('pause', 'resume', name='bot_sync', native_enum=False, length=16), nullable=True),
    sa.ForeignKeyConstraint(['conversation_id'], ['conversation.id'], name=op.f('fk_conversation_handoff_conversation_id_conversation'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('conversation_id', name=op.f('pk_conversation_handoff'))
    )
    with op.batch_alter_table('conversation_handoff', schema=None) as batch_op:
        batch_op.create_index('ix_conversation_handoff_requested_at', ['requested_at'], unique=False)

    op.create_table('handoff_transition',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('conversation_id', sa.String(length=36), nullable=False),
    sa.Column('from_state', sa.Enum('bot', 'pending_human', 'with_human', name='handoff_state', native_enum=False, length=32), nullable=False),
    sa.Column('to_state', sa.Enum('bot', 'pending_human', 'with_human', name='handoff_state', native_enum=False, length=32), nullable=False),
    sa.Column('actor', sa.String(length=128), nullable=False),
    sa.Column('reason', sa.String(length=64), nullable=False),
    sa.Column('note', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['conversation_id'], ['conversation.id'], name=op.f('fk_handoff_transition_conversation_id_conversation'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_handoff_transition'))
    )
    with op.batch_alter_table('handoff_transition', schema=None) as batch_op:
        batch_op.create_index('ix_handoff_transition_conversation_id_id', ['conversation_id', 'id'], unique=False)




def downgrade() -> None:

    with op.batch_alter_table('handoff_transition', schema=None) as batch_op:
        batch_op.drop_index('ix_handoff_transition_conversation_id_id')

    op.drop_table('handoff_transition')
    with op.batch_alter_table('conversation_handoff', schema=None) as batch_op:
        batch_op.drop_index('ix_conversation_handoff_requested_at')

    op.drop_table('conversation_handoff')

