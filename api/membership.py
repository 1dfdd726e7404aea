"""Invitations to read a novel: the invited user accepts or declines; only then does anything
of the novel reach them. The domain (``workers.contracts``) records the membership, then the
novel's readers in Redis follow, which is what the relay authorizes against."""

from __future__ import annotations

from anyio import to_thread

from api.authz import RedisNovelAccess
from workers import contracts


async def accept(access: RedisNovelAccess, novel_id: str, user_id: str) -> None:
    """``user_id`` accepts the invitation to ``novel_id`` (NovelNotFound when not invited)."""
    await to_thread.run_sync(contracts.accept_invitation, novel_id, user_id)
    # After the commit: a failure here leaves an accepted member who is not yet a reader,
    # and accepting again (idempotent) completes it.
    await access.grant(user_id, novel_id)


async def leave(access: RedisNovelAccess, novel_id: str, user_id: str) -> None:
    """``user_id`` declines the invitation or stops reading (NovelNotFound when neither)."""
    if await to_thread.run_sync(contracts.leave_novel, novel_id, user_id):
        await access.revoke(user_id, novel_id)
