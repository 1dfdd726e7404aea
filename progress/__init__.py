"""Live, throttled progress events for Celery tasks, stored in Redis Streams.

app = Celery("myapp", broker=...)
progress.install(app)    # signals, the SQL journal if DATABASE_URL is set, beat entries

@app.task(bind=True)
@progress.report_progress(estimated_seconds=30)
def draft_chapter(self, chapter_id): ...
    progress.update(40, "Writing scene 2", stage="drafting")

with progress.acting_as(user_id, session_id):
    draft_chapter.delay(chapter_id)

with progress.acting_as(user_id, workflow_id=book_id):   # one workflow.progress bar for all
    chain(outline.si(book_id), group(draft_chapter.si(c) for c in ids)).delay()

progress.publish({"type": "system.notification", "audience": "broadcast", ...})
"""

from progress.errors import (
    Cancelled,
    InvalidCursor,
    InvalidEvent,
    NotInTask,
    ProgressError,
    StoreUnavailable,
)
from progress.events import Event, parse_event
from progress.identity import Identity, acting_as
from progress.installation import install
from progress.reporter import report_progress, update
from progress.runtime import (
    cancel_workflow,
    configure,
    get_reporter,
    publish,
    shutdown,
    workflow_snapshot,
)
from progress.settings import JournalSettings, ProgressSettings

__all__ = [
    "Cancelled",
    "Event",
    "Identity",
    "InvalidCursor",
    "InvalidEvent",
    "JournalSettings",
    "NotInTask",
    "ProgressError",
    "ProgressSettings",
    "StoreUnavailable",
    "acting_as",
    "cancel_workflow",
    "configure",
    "get_reporter",
    "install",
    "parse_event",
    "publish",
    "report_progress",
    "shutdown",
    "update",
    "workflow_snapshot",
]
