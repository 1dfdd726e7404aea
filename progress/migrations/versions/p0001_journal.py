"""The journal of important events: sse_event_audit and sse_event_audit_streams

Revision ID: p0001
Revises:

Create-if-absent: a database the application migrated before the journal had migrations of
its own (the novel app's revision 0002 created these tables) already holds them, identical;
this revision then only records itself in ``progress_alembic_version``.
"""

import sqlalchemy as sa
from alembic import op

revision = "p0001"
down_revision = None
branch_labels = None
depends_on = None

_BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    existing = set(sa.inspect(op.get_bind()).get_table_names())
    if "sse_event_audit" not in existing:
        _create_audit()
    if "sse_event_audit_streams" not in existing:
        _create_streams()


def _create_audit() -> None:
    op.create_table(
        "sse_event_audit",
        sa.Column("id", _BIG_ID, primary_key=True, autoincrement=True),
        sa.Column("event_id", sa.String(36), nullable=False, unique=True),
        sa.Column("type", sa.String(64), nullable=False),
        sa.Column("user_id", sa.String(64), nullable=True, index=True),
        sa.Column("session_id", sa.String(64), nullable=True),
        sa.Column("audience", sa.String(16), nullable=False),
        sa.Column("task_id", sa.String(64), nullable=True),
        sa.Column("novel_id", sa.String(64), nullable=True),
        sa.Column("chapter_id", sa.String(64), nullable=True),
        sa.Column("workflow_id", sa.String(64), nullable=True),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("sealed", sa.Text(), nullable=True),
        sa.Column("occurred_at", sa.DateTime(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False, index=True),
        sa.Column("published_at", sa.DateTime(), nullable=True),
        sa.Column("status", sa.String(16), nullable=False, index=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
    )


def _create_streams() -> None:
    op.create_table(
        "sse_event_audit_streams",
        sa.Column(
            "audit_id",
            _BIG_ID,
            sa.ForeignKey("sse_event_audit.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("stream", sa.String(70), primary_key=True),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("stream_ms", sa.BigInteger(), nullable=True),
        sa.Column("stream_seq", sa.BigInteger(), nullable=True),
    )
    op.create_index(
        "ix_sse_audit_streams_replay",
        "sse_event_audit_streams",
        ["stream", "stream_ms", "stream_seq"],
    )


def downgrade() -> None:
    op.drop_index("ix_sse_audit_streams_replay", "sse_event_audit_streams")
    op.drop_table("sse_event_audit_streams")
    op.drop_table("sse_event_audit")
