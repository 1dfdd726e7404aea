"""novel_members.accepted_at: a member is an invitation until the invited user accepts

Existing member rows become pending invitations (``accepted_at`` NULL): they were added by the
novel's owner alone, and a member must be someone who agreed. Those users stop receiving the
novel's events and reading it until they accept (POST /api/v1/novels/{id}/membership).

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("novel_members") as batch:
        batch.add_column(sa.Column("accepted_at", sa.DateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("novel_members") as batch:
        batch.drop_column("accepted_at")
