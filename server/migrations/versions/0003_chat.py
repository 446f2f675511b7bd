"""chat

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('chat_messages',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('circle_id', sa.String(length=12), nullable=False),
    sa.Column('seq', sa.Integer(), nullable=False),
    sa.Column('author_id', sa.Integer(), nullable=True),
    sa.Column('client_id', sa.String(length=64), nullable=False),
    sa.Column('body', sa.Text(), nullable=False),
    sa.Column('mentions', sa.JSON(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('edited_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('deleted_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['author_id'], ['users.id'], name=op.f('fk_chat_messages_author_id_users'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['circle_id'], ['circles.id'], name=op.f('fk_chat_messages_circle_id_circles'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_chat_messages')),
    sa.UniqueConstraint('circle_id', 'author_id', 'client_id', name=op.f('uq_chat_messages_circle_id_author_id_client_id')),
    sa.UniqueConstraint('circle_id', 'seq', name=op.f('uq_chat_messages_circle_id_seq'))
    )
    with op.batch_alter_table('chat_messages', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_chat_messages_author_id'), ['author_id'], unique=False)

    with op.batch_alter_table('circle_members', schema=None) as batch_op:
        batch_op.add_column(sa.Column('joined_seq', sa.Integer(), server_default='0', nullable=False))
        batch_op.add_column(sa.Column('last_read_seq', sa.Integer(), server_default='0', nullable=False))

    with op.batch_alter_table('circles', schema=None) as batch_op:
        batch_op.add_column(sa.Column('chat_last_seq', sa.Integer(), server_default='0', nullable=False))
        batch_op.add_column(sa.Column('chat_read_only', sa.Boolean(), server_default=sa.false(), nullable=False))


def downgrade() -> None:
    with op.batch_alter_table('circles', schema=None) as batch_op:
        batch_op.drop_column('chat_read_only')
        batch_op.drop_column('chat_last_seq')

    with op.batch_alter_table('circle_members', schema=None) as batch_op:
        batch_op.drop_column('last_read_seq')
        batch_op.drop_column('joined_seq')

    with op.batch_alter_table('chat_messages', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_chat_messages_author_id'))

    op.drop_table('chat_messages')
