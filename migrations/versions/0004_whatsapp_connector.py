"""whatsapp connector

Revision ID: 0004
Revises: 0001
Create Date: 2026-11-25 14:43:46.783483
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0004'
down_revision: str | None = '0001'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:

    op.create_table('whatsapp_inbound',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('wamid', sa.String(length=255), nullable=False),
    sa.Column('wa_id', sa.String(length=32), nullable=False),
    sa.Column('phone_number_id', sa.String(length=64), nullable=True),
    sa.Column('type', sa.String(length=32), nullable=False),
    sa.Column('text', sa.Text(), nullable=False),
    sa.Column('bot_text', sa.Text(), nullable=True),
    sa.Column('media_id', sa.String(length=255), nullable=True),
    sa.Column('mime_type', sa.String(length=255), nullable=True),
    sa.Column('raw', sa.JSON(), nullable=False),
    sa.Column('sent_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('received_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('next_attempt_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('locked_until', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('conversation_id', sa.String(length=36), nullable=True),
    sa.Column('message_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('processed_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_whatsapp_inbound')),
    sa.UniqueConstraint('wamid', name=op.f('uq_whatsapp_inbound_wamid'))
    )
    with op.batch_alter_table('whatsapp_inbound', schema=None) as batch_op:
        batch_op.create_index('ix_whatsapp_inbound_state_next', ['state', 'next_attempt_at'], unique=False)

    op.create_table('whatsapp_status',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('wamid', sa.String(length=255), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('recipient_id', sa.String(length=32), nullable=True),
    sa.Column('occurred_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('error_code', sa.Integer(), nullable=True),
    sa.Column('error_reason', sa.Text(), nullable=True),
    sa.Column('raw', sa.JSON(), nullable=False),
    sa.Column('received_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_whatsapp_status')),
    sa.UniqueConstraint('wamid', 'status', name=op.f('uq_whatsapp_status_wamid_status'))
    )
    op.create_table('whatsapp_contact',
    sa.Column('wa_id', sa.String(length=32), nullable=False),
    sa.Column('user_id', sa.String(length=128), nullable=False),
    sa.Column('profile_name', sa.String(length=256), nullable=True),
    sa.Column('conversation_id', sa.String(length=36), nullable=True),
    sa.Column('last_inbound_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['conversation_id'], ['conversation.id'], name=op.f('fk_whatsapp_contact_conversation_id_conversation'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('wa_id', name=op.f('pk_whatsapp_contact')),
    sa.UniqueConstraint('user_id', name=op.f('uq_whatsapp_contact_user_id'))
    )
    op.create_table('whatsapp_outbound',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('wamid', sa.String(length=255), nullable=True),
    sa.Column('wa_id', sa.String(length=32), nullable=False),
    sa.Column('conversation_id', sa.String(length=36), nullable=True),
    sa.Column('message_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('body', sa.JSON(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('status_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('error_code', sa.Integer(), nullable=True),
    sa.Column('error_reason', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['message_id'], ['message.id'], name=op.f('fk_whatsapp_outbound_message_id_message'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_whatsapp_outbound')),
    sa.UniqueConstraint('wamid', name=op.f('uq_whatsapp_outbound_wamid'))
    )
    with op.batch_alter_table('whatsapp_outbound', schema=None) as batch_op:
        batch_op.create_index('ix_whatsapp_outbound_conversation_id', ['conversation_id'], unique=False)




def downgrade() -> None:

    with op.batch_alter_table('whatsapp_outbound', schema=None) as batch_op:
        batch_op.drop_index('ix_whatsapp_outbound_conversation_id')

    op.drop_table('whatsapp_outbound')
    op.drop_table('whatsapp_contact')
    op.drop_table('whatsapp_status')
    with op.batch_alter_table('whatsapp_inbound', schema=None) as batch_op:
        batch_op.drop_index('ix_whatsapp_inbound_state_next')

    op.drop_table('whatsapp_inbound')

