"""sse_event_audit: no longer the application's (kept so the revision chain stays whole)

Revision ID: 0002
Revises: 0001

The journal's tables are the progress library's own now: ``progress/migrations`` (revision
``p0001``, version table ``progress_alembic_version``) creates them, and accepts databases
where an earlier version of this revision already did.
"""

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
