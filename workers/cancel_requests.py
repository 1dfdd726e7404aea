"""Cancel requests: ``rt:cancel:<id>`` (a task's id, or a novel's for its whole workflow) holds
the user id of who asked, for a day."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import redis

from progress.errors import StoreUnavailable
from workers import resources

_TTL_SECONDS = 24 * 3600


def request_cancel(target_id: str, user_id: str) -> None:
    """Ask the task (or every step of the novel) ``target_id`` to stop, on behalf of
    ``user_id``; StoreUnavailable when Redis does not answer."""
    with _translated():
        client = resources.redis_client()
        client.set(resources.layout().cancel(target_id), user_id, ex=_TTL_SECONDS)


def askers(target_ids: Sequence[str]) -> list[str | None]:
    """Who asked each of ``target_ids`` to stop ("" when unknown), None where nobody did.

    One GET per id in one pipeline: on Redis Cluster the keys live in different slots, which
    MGET refuses; the cluster pipeline sends one round trip per node. StoreUnavailable when
    Redis does not answer."""
    with _translated():
        pipe = resources.redis_client().pipeline(transaction=False)
        for target_id in target_ids:
            pipe.get(resources.layout().cancel(target_id))
        values = pipe.execute()
    return [None if value is None else _text(value) for value in values]


@contextmanager
def _translated() -> Iterator[None]:
    try:
        yield
    except (redis.ConnectionError, redis.TimeoutError) as exc:
        raise StoreUnavailable(f"Redis unavailable: {exc}") from exc


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
