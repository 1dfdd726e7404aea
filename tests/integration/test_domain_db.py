"""The domain tables on both backends: SQLite (the default) and a real PostgreSQL server."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import delete, func, inspect, select, text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from workers.db import Chapter, Novel, NovelMember, make_engine, make_sessions
from workers.migrate import upgrade

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
    assert [row.version_num for row in versions] == ["0002"]


def test_novel_with_members_and_chapters_round_trips(sessions: sessionmaker[Session]) -> None:
    novel_id = add_novel(sessions)

    with sessions() as session:
        novel = session.get(Novel, novel_id)
        assert novel is not None
        readers = novel.readers()
        assert readers[0] == "owner-1"
        assert sorted(readers[1:]) == ["member-a", "member-b"]
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
