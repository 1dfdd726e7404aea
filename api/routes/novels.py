"""Novels: start one, list them, read one, cancel its workflow, revise a chapter, accept or
leave a membership. Sync routes (thread pool): the domain behind ``workers.contracts`` talks
to the database and the broker synchronously."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, status
from pydantic import BaseModel, Field, field_validator

from api import membership
from api.deps import CurrentUser, Services, WritingUser
from api.errors import COMMON_ERRORS, ErrorBody
from api.text import Line, PathId, Text
from progress.events import Identifier
from workers import contracts

router = APIRouter(prefix="/api/v1/novels", tags=["novels"], responses=COMMON_ERRORS)


class NovelRequest(BaseModel):
    """What a writer asks for."""

    title: Line = Field(min_length=1, max_length=200)
    premise: Text = Field(min_length=1, max_length=5000)
    chapter_count: int = Field(ge=1, le=30)
    #: Invited, not added: each must accept before anything of the novel reaches them.
    members: list[Identifier] = Field(default_factory=list, max_length=50)


class NovelStarted(BaseModel):
    """The novel exists; its workflow runs as ``task_id``."""

    novel_id: str
    task_id: str


class ChapterOut(BaseModel):
    """A chapter as the UI shows it."""

    model_config = {"from_attributes": True}

    id: str
    number: int
    title: str
    summary: str
    status: str
    text: str


class NovelOut(BaseModel):
    """A novel with its chapters."""

    model_config = {"from_attributes": True}

    id: str
    owner_id: str
    title: str
    premise: str
    status: str
    chapter_count: int
    task_id: str | None
    created_at: datetime
    chapters: list[ChapterOut]


class ReviseRequest(BaseModel):
    """How to revise."""

    instructions: Text = Field(default="", max_length=2000)


#: The most chapters one batch revision may name (a novel has at most 30).
MAX_BATCH_CHAPTERS = 30


class BatchReviseRequest(BaseModel):
    """Which chapters to revise together, and how."""

    chapters: list[Annotated[int, Field(ge=1)]] = Field(min_length=1, max_length=MAX_BATCH_CHAPTERS)
    instructions: Text = Field(default="", max_length=2000)

    @field_validator("chapters")
    @classmethod
    def _each_once(cls, chapters: list[int]) -> list[int]:
        if len(set(chapters)) != len(chapters):
            raise ValueError("name each chapter once")
        return chapters


class TaskStarted(BaseModel):
    """A task was queued."""

    task_id: str


@router.post(
    "",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=NovelStarted,
    responses={
        429: {
            "model": ErrorBody,
            "description": "write budget spent (`rate_limited`) or too many chapters still "
            "being written (`too_many_active_chapters`); see Retry-After",
        }
    },
)
def start_novel(body: NovelRequest, principal: WritingUser, services: Services) -> NovelStarted:
    """Create a novel and start writing it; progress arrives on the event stream. ``members``
    are invited: nothing of the novel reaches them until they accept."""
    novel, task_id = contracts.start_novel(
        principal.user_id,
        principal.session_id,
        body.title,
        body.premise,
        body.chapter_count,
        body.members,
        services.settings.max_active_chapters_per_user,
    )
    return NovelStarted(novel_id=novel.id, task_id=task_id)


@router.get("", response_model=list[NovelOut])
def list_novels(principal: CurrentUser) -> list[NovelOut]:
    """The novels the caller owns or is a member of, newest first."""
    return [NovelOut.model_validate(n) for n in contracts.list_novels(principal.user_id)]


@router.get("/{novel_id}", response_model=NovelOut, responses={404: {"description": "no such"}})
def get_novel(novel_id: PathId, principal: CurrentUser) -> NovelOut:
    """One novel the caller may read; 404 for any other."""
    return NovelOut.model_validate(contracts.get_novel(novel_id, principal.user_id))


class WorkflowCancel(BaseModel):
    """The novel's status after a cancel request: ``cancelled``, or how it had already ended;
    each of its open tasks then sends ``task.progress-cancelled``."""

    novel_id: str
    status: str


@router.post(
    "/{novel_id}/cancel",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=WorkflowCancel,
    responses={404: {"description": "no such novel of the caller's"}},
)
def cancel_novel(novel_id: PathId, principal: WritingUser) -> WorkflowCancel:
    """Stop the workflow of one of the caller's own novels (its running and queued steps)."""
    return WorkflowCancel(
        novel_id=novel_id, status=contracts.cancel_novel(principal.user_id, novel_id)
    )


@router.post(
    "/{novel_id}/chapters/{number}/revise",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=TaskStarted,
    responses={404: {"description": "no such novel or chapter"}},
)
def revise_chapter(
    novel_id: PathId, number: int, body: ReviseRequest, principal: WritingUser
) -> TaskStarted:
    """Rewrite one chapter of the caller's novel."""
    task_id = contracts.revise_chapter(
        novel_id, number, principal.user_id, principal.session_id, body.instructions
    )
    return TaskStarted(task_id=task_id)


@router.post(
    "/{novel_id}/revisions",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=TaskStarted,
    responses={
        404: {"description": "no such novel of the caller's"},
        422: {
            "model": ErrorBody,
            "description": "no chapters, too many, a chapter twice (`validation_error`) or "
            "chapters the novel does not have (`unknown_chapters`)",
        },
    },
)
def revise_chapters(
    novel_id: PathId, body: BatchReviseRequest, principal: WritingUser
) -> TaskStarted:
    """Revise several chapters of the caller's novel in one task: one progress bar, and the
    chapter updates arrive merged, a few chapters per ``content.chapter-updated`` (R4.6)."""
    task_id = contracts.revise_chapters(
        novel_id, body.chapters, principal.user_id, principal.session_id, body.instructions
    )
    return TaskStarted(task_id=task_id)


class Membership(BaseModel):
    """The caller reads the novel from now on."""

    novel_id: str
    status: str = "accepted"


@router.post(
    "/{novel_id}/membership",
    response_model=Membership,
    responses={404: {"description": "no invitation to this novel"}},
)
async def accept_invitation(
    novel_id: PathId, principal: WritingUser, services: Services
) -> Membership:
    """Accept an invitation: the novel's content events reach the caller from now on, and
    they may read it (accepting again changes nothing)."""
    await membership.accept(services.novel_access, novel_id, principal.user_id)
    return Membership(novel_id=novel_id)


@router.delete(
    "/{novel_id}/membership",
    status_code=status.HTTP_204_NO_CONTENT,
    responses={404: {"description": "neither invited to nor a member of this novel"}},
)
async def leave_novel(novel_id: PathId, principal: WritingUser, services: Services) -> None:
    """Decline an invitation, or stop reading the novel (its events stop at once)."""
    await membership.leave(services.novel_access, novel_id, principal.user_id)
