"""The domain tables on both backends: SQLite (the default) and a real PostgreSQL server."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import delete, func, inspect, select, text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from progress import migrate as journal_migrate
from progress.journal_tables import JournalBase
from progress.sql import make_engine, make_sessions, utcnow_naive
from workers.db import Chapter, Novel, NovelMember
from workers.migrate import alembic_config, upgrade
from workers.novels import IN_PROGRESS, NovelRepository, TooManyActiveChapters

pytestmark = pytest.mark.integration

DOMAIN_TABLES = {"novels", "novel_members", "chapters"}


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url)
    yield engine
    engine.dispose()


@pytest.fixture
def sessions(engine: Engine) -> sessionmaker[Session]:
    return make_sessions(engine)


def add_novel(
    sessions: sessionmaker[Session],
    *,
    owner: str = "owner-1",
    members: tuple[str, ...] = ("member-a", "member-b"),
    chapter_numbers: tuple[int, ...] = (3, 1, 2),
) -> str:
    """Store a novel with ``members`` and chapters added in the order given; its id."""
    with sessions() as session, session.begin():
        novel = Novel(
            owner_id=owner,
            title="The Long Night",
            premise="A lighthouse keeper finds a map.",
            chapter_count=len(chapter_numbers),
        )
        novel.members = [NovelMember(user_id=user) for user in members]
        novel.chapters = [
            Chapter(number=number, title=f"Chapter {number}", plan=f"plan {number}")
            for number in chapter_numbers
        ]
        session.add(novel)
        session.flush()
        return novel.id


def count(session: Session, model: type[Chapter] | type[NovelMember], novel_id: str) -> int:
    statement = select(func.count()).select_from(model).where(model.novel_id == novel_id)
    return int(session.scalar(statement) or 0)


def test_migration_creates_the_tables_and_is_idempotent(database_url: str, engine: Engine) -> None:
    assert DOMAIN_TABLES <= set(inspect(engine).get_table_names())

    upgrade(database_url)  # already at head: a no-op, not an error

    inspector = inspect(engine)
    assert DOMAIN_TABLES <= set(inspector.get_table_names())
    unique = [sorted(u["column_names"]) for u in inspector.get_unique_constraints("chapters")]
    assert ["novel_id", "number"] in unique
    with engine.connect() as connection:
        versions = connection.execute(text("SELECT version_num FROM alembic_version")).all()
    assert [row.version_num for row in versions] == ["0003"]
    assert "accepted_at" in {c["name"] for c in inspector.get_columns("novel_members")}


def test_members_from_before_invitations_become_pending(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'old.db'}"
    upgrade(url, "0002")
    engine = make_engine(url)
    with engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO novels (id, owner_id, title, premise, status, chapter_count, "
                "outline, created_at, updated_at) VALUES ('n1', 'owner', 't', 'p', 'done', 1, "
                "'', '2026-01-01', '2026-01-01')"
            )
        )
        connection.execute(text("INSERT INTO novel_members (novel_id, user_id) VALUES ('n1', 'm')"))
    upgrade(url)
    repo = NovelRepository(make_sessions(engine))
    assert repo.get("n1").readers() == ["owner"]
    assert [i.novel_id for i in repo.invitations("m")] == ["n1"]
    engine.dispose()


def test_novel_with_members_and_chapters_round_trips(sessions: sessionmaker[Session]) -> None:
    novel_id = add_novel(sessions)

    with sessions() as session:
        novel = session.get(Novel, novel_id)
        assert novel is not None
        # members are invited: the owner alone reads until one accepts
        assert novel.readers() == ["owner-1"]
        assert sorted(m.user_id for m in novel.members) == ["member-a", "member-b"]
        novel.members[0].accepted_at = utcnow_naive()
        assert novel.readers() == ["owner-1", novel.members[0].user_id]
        assert [chapter.number for chapter in novel.chapters] == [1, 2, 3]
        assert [chapter.title for chapter in novel.chapters] == [
            "Chapter 1",
            "Chapter 2",
            "Chapter 3",
        ]
        assert novel.status == "queued"
        assert novel.chapter_count == 3
        assert all(chapter.status == "pending" for chapter in novel.chapters)


def test_a_duplicate_chapter_number_is_rejected(sessions: sessionmaker[Session]) -> None:
    novel_id = add_novel(sessions, chapter_numbers=(1, 2))

    with sessions() as session:
        session.add(Chapter(novel_id=novel_id, number=2, title="again"))
        with pytest.raises(IntegrityError):
            session.commit()
        session.rollback()
        assert count(session, Chapter, novel_id) == 2

    other_id = add_novel(sessions, owner="owner-2", chapter_numbers=(1, 2))  # same numbers: fine
    with sessions() as session:
        assert count(session, Chapter, other_id) == 2


@pytest.mark.parametrize("how", ["orm", "sql"])
def test_deleting_a_novel_deletes_its_chapters_and_members(
    sessions: sessionmaker[Session], how: str
) -> None:
    doomed = add_novel(sessions)
    kept = add_novel(sessions, owner="owner-2")

    with sessions() as session, session.begin():
        if how == "orm":
            session.delete(session.get(Novel, doomed))
        else:  # the database's own ON DELETE CASCADE, without the ORM's help
            session.execute(delete(Novel).where(Novel.id == doomed))

    with sessions() as session:
        assert session.get(Novel, doomed) is None
        assert count(session, Chapter, doomed) == 0
        assert count(session, NovelMember, doomed) == 0
        assert count(session, Chapter, kept) == 3
        assert count(session, NovelMember, kept) == 2


def test_simultaneous_creations_cannot_pass_the_active_chapter_cap(
    sessions: sessionmaker[Session],
) -> None:
    repo = NovelRepository(sessions)
    for round_ in range(5):
        owner = f"busy-owner-{round_}"
        barrier = threading.Barrier(8)

        def attempt(_: int, owner: str = owner, barrier: threading.Barrier = barrier) -> bool:
            barrier.wait()
            try:
                repo.create(owner, "t", "p", 5, (), max_active_chapters=12)
            except TooManyActiveChapters:
                return False
            return True

        with ThreadPoolExecutor(8) as pool:
            outcomes = list(pool.map(attempt, range(8)))
        assert outcomes.count(True) == 2, round_
    finished = repo.list_readable("busy-owner-0")[0].id
    assert repo.move_if_in(finished, IN_PROGRESS, "done") is not None  # finished: room again
    repo.create("busy-owner-0", "t", "p", 5, (), max_active_chapters=12)


def test_a_step_ending_after_a_cancel_leaves_the_novel_cancelled(
    sessions: sessionmaker[Session],
) -> None:
    repo = NovelRepository(sessions)
    novel_id = repo.create("canceller", "t", "p", 2, ()).id
    assert repo.move_if_in(novel_id, IN_PROGRESS, "cancelled") == "queued"
    # The review that was finishing when the writer cancelled moves it no further.
    assert repo.move_if_in(novel_id, IN_PROGRESS, "done") is None
    assert repo.get(novel_id).status == "cancelled"


def test_the_journal_migration_keeps_tables_an_older_app_migration_created(tmp_path: Path) -> None:
    # Before the journal had migrations of its own, the app's revision 0002 created its tables.
    url = f"sqlite:///{tmp_path / 'before.db'}"
    command.upgrade(alembic_config(url), "head")
    engine = make_engine(url)
    JournalBase.metadata.create_all(engine)
    with engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO sse_event_audit (event_id, type, audience, payload, occurred_at, "
                "created_at, status, attempts) VALUES ('e1', 't', 'user', '{}', '2026-01-01', "
                "'2026-01-01', 'published', 1)"
            )
        )

    upgrade(url)  # the app's (at head already), then the journal's: stamped, not recreated

    assert journal_migrate.revisions(url)[0] == "p0001"
    with engine.connect() as connection:
        assert connection.execute(text("SELECT event_id FROM sse_event_audit")).scalars().all() == [
            "e1"
        ]
    engine.dispose()
