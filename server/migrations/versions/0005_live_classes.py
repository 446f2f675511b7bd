"""live classes: sessions, teachers, attendance, polls, class chat

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('class_sessions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('circle_id', sa.String(length=12), nullable=False),
    sa.Column('title', sa.String(length=200), nullable=False),
    sa.Column('description', sa.Text(), nullable=False),
    sa.Column('scheduled_start', sa.DateTime(timezone=True), nullable=False),
    sa.Column('scheduled_end', sa.DateTime(timezone=True), nullable=False),
    sa.Column('state', sa.Enum('scheduled', 'live', 'ended', 'cancelled', name='class_state', native_enum=False, create_constraint=True, length=16), nullable=False),
    sa.Column('settings', sa.JSON(), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('ended_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('recap_post_id', sa.Integer(), nullable=True),
    sa.Column('created_by', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('chat_last_seq', sa.Integer(), server_default='0', nullable=False),
    sa.ForeignKeyConstraint(['circle_id'], ['circles.id'], name=op.f('fk_class_sessions_circle_id_circles'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['created_by'], ['users.id'], name=op.f('fk_class_sessions_created_by_users'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['recap_post_id'], ['posts.id'], name=op.f('fk_class_sessions_recap_post_id_posts'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_class_sessions'))
    )
    with op.batch_alter_table('class_sessions', schema=None) as batch_op:
        batch_op.create_index('ix_class_sessions_circle', ['circle_id', 'scheduled_start'], unique=False)

    op.create_table('attendance_intervals',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('session_id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('connection', sa.String(length=64), nullable=False),
    sa.Column('joined_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('left_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('reason', sa.String(length=16), nullable=True),
    sa.ForeignKeyConstraint(['session_id'], ['class_sessions.id'], name=op.f('fk_attendance_intervals_session_id_class_sessions'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_attendance_intervals_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_attendance_intervals'))
    )
    with op.batch_alter_table('attendance_intervals', schema=None) as batch_op:
        batch_op.create_index('ix_attendance_intervals_session', ['session_id', 'user_id', 'joined_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_attendance_intervals_user_id'), ['user_id'], unique=False)

    op.create_table('class_messages',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('session_id', sa.Integer(), nullable=False),
    sa.Column('seq', sa.Integer(), nullable=False),
    sa.Column('author_id', sa.Integer(), nullable=True),
    sa.Column('client_id', sa.String(length=64), nullable=False),
    sa.Column('body', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['author_id'], ['users.id'], name=op.f('fk_class_messages_author_id_users'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['session_id'], ['class_sessions.id'], name=op.f('fk_class_messages_session_id_class_sessions'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_class_messages')),
    sa.UniqueConstraint('session_id', 'author_id', 'client_id', name=op.f('uq_class_messages_session_id_author_id_client_id')),
    sa.UniqueConstraint('session_id', 'seq', name=op.f('uq_class_messages_session_id_seq'))
    )
    with op.batch_alter_table('class_messages', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_class_messages_author_id'), ['author_id'], unique=False)

    op.create_table('class_polls',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('session_id', sa.Integer(), nullable=False),
    sa.Column('question', sa.String(length=500), nullable=False),
    sa.Column('options', sa.JSON(), nullable=False),
    sa.Column('multiple', sa.Boolean(), nullable=False),
    sa.Column('correct', sa.JSON(), nullable=True),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('created_by', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('opened_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('closed_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['created_by'], ['users.id'], name=op.f('fk_class_polls_created_by_users'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['session_id'], ['class_sessions.id'], name=op.f('fk_class_polls_session_id_class_sessions'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_class_polls'))
    )
    with op.batch_alter_table('class_polls', schema=None) as batch_op:
        batch_op.create_index('ix_class_polls_session', ['session_id', 'id'], unique=False)

    op.create_table('class_teachers',
    sa.Column('session_id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['session_id'], ['class_sessions.id'], name=op.f('fk_class_teachers_session_id_class_sessions'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_class_teachers_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('session_id', 'user_id', name=op.f('pk_class_teachers'))
    )
    with op.batch_alter_table('class_teachers', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_class_teachers_user_id'), ['user_id'], unique=False)

    op.create_table('poll_answers',
    sa.Column('poll_id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('choice', sa.JSON(), nullable=False),
    sa.Column('answered_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['poll_id'], ['class_polls.id'], name=op.f('fk_poll_answers_poll_id_class_polls'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_poll_answers_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('poll_id', 'user_id', name=op.f('pk_poll_answers'))
    )
    with op.batch_alter_table('poll_answers', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_poll_answers_user_id'), ['user_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('poll_answers', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_poll_answers_user_id'))

    op.drop_table('poll_answers')
    with op.batch_alter_table('class_teachers', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_class_teachers_user_id'))

    op.drop_table('class_teachers')
    with op.batch_alter_table('class_polls', schema=None) as batch_op:
        batch_op.drop_index('ix_class_polls_session')

    op.drop_table('class_polls')
    with op.batch_alter_table('class_messages', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_class_messages_author_id'))

    op.drop_table('class_messages')
    with op.batch_alter_table('attendance_intervals', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_attendance_intervals_user_id'))
        batch_op.drop_index('ix_attendance_intervals_session')

    op.drop_table('attendance_intervals')
    with op.batch_alter_table('class_sessions', schema=None) as batch_op:
        batch_op.drop_index('ix_class_sessions_circle')

    op.drop_table('class_sessions')
