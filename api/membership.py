"""Invitations to read a novel: the invited user accepts or declines; only then does anything
of the novel reach them. The domain (``workers.contracts``) records the membership, then the
novel's readers in Redis follow, which is what the relay authorizes against."""

from __future__ import annotations

from anyio import from_thread, to_thread

from api.auth.authz import RedisNovelAccess
from workers import contracts


async def accept(access: RedisNovelAccess, novel_id: str, user_id: str) -> None:
    """``user_id`` accepts the invitation to ``novel_id`` (NovelNotFound when not invited)."""

    # The relay must already let the novel's events through when the commit makes the user a
    # recipient: an event written in between would be filtered from their live stream.
    def grant() -> None:
        from_thread.run(access.grant, user_id, novel_id)

    await to_thread.run_sync(contracts.accept_invitation, novel_id, user_id, grant)


async def leave(access: RedisNovelAccess, novel_id: str, user_id: str) -> None:
    """``user_id`` declines the invitation or stops reading (NovelNotFound when neither)."""
    if await to_thread.run_sync(contracts.leave_novel, novel_id, user_id):
        await access.revoke(user_id, novel_id)
