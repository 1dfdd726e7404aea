"""Issue 6: group commit shares transactions between callers and reports each one's outcome."""

from __future__ import annotations

import threading

import pytest

from progress.group_commit import GroupCommitter

pytestmark = pytest.mark.unit


def test_callers_that_arrive_together_share_one_commit_and_each_returns_after_it() -> None:
    commits: list[list[int]] = []
    release = threading.Event()

    def commit(items: list[int]) -> None:
        commits.append(items)
        release.wait(5)  # the first commit holds the thread while the others queue up

    committer = GroupCommitter(commit, max_wait=0)
    threads = [threading.Thread(target=committer.submit, args=([n],)) for n in range(6)]
    for thread in threads:
        thread.start()
    while sum(map(len, commits)) + sum(len(items) for items, _ in committer._queue) < 6:
        threading.Event().wait(0.001)
    release.set()
    for thread in threads:
        thread.join()
    committer.close()

    assert sorted(n for items in commits for n in items) == list(range(6))
    assert len(commits) < 6


def test_a_failed_commit_raises_in_every_caller_of_that_batch() -> None:
    def commit(_: list[int]) -> None:
        raise OSError("database is locked")

    committer = GroupCommitter(commit, max_wait=0)
    with pytest.raises(OSError, match="locked"):
        committer.submit([1])
    committer.close()


def test_deferred_items_are_committed_by_close() -> None:
    committed: list[int] = []
    committer = GroupCommitter(committed.extend, max_wait=0.5)

    committer.defer([1, 2])
    committer.defer([3])
    committer.close()

    assert committed == [1, 2, 3]
