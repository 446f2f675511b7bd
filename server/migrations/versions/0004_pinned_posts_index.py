"""an index for pinned posts: the first feed page no longer scans the circle's posts

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('posts', schema=None) as batch_op:
        batch_op.create_index('ix_posts_pinned', ['circle_id', 'pinned_at'], unique=False,
                              sqlite_where=sa.text('pinned_at IS NOT NULL'),
                              postgresql_where=sa.text('pinned_at IS NOT NULL'))


def downgrade() -> None:
    with op.batch_alter_table('posts', schema=None) as batch_op:
        batch_op.drop_index('ix_posts_pinned', sqlite_where=sa.text('pinned_at IS NOT NULL'),
                            postgresql_where=sa.text('pinned_at IS NOT NULL'))
