"""Regression (issue 18, found by the cluster failover test): after the pub/sub link comes
back, every stream is told to catch up (RESYNC) before the new link's first live event reaches
it. The hub used to read the realtime mode first; a live event read during that await went
straight to a parked stream, its cursor jumped past the gap, and the catch-up that followed
started after it: the events stored while the link was down were lost to that stream."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import pytest
import uvloop

from api.auth.authz import NovelMembershipAuthorizer, RedisNovelAccess
from api.hub.hub import Hub
from api.hub.leases import ConnectionRegistry
from api.hub.pubsub_link import RedisAddress
from api.realtime_mode import ModeRule, RealtimeModeStore
from api.stream.connection import Signal
from api.stream.delivery import Delivery
from progress.events import TaskUpdated
from progress.keys import KeyLayout
from progress.redis_server import RedisServer
from progress.redis_store import AsyncRedisEventStore, connect_async

pytestmark = pytest.mark.integration


@dataclass
class Principal:
    user_id: str


@dataclass(eq=False)
class Recorder:
    """Stands for a stream: records what the hub offers it, in order."""

    principal: Principal
    id: str = "c-1"
    offered: list[str] = field(default_factory=list)

    def offer(self, item: Delivery | Signal) -> None:
        self.offered.append("live" if isinstance(item, Delivery) else str(item.value))


class SlowModes(RealtimeModeStore):
    """The mode read after a reconnect takes long (as on a cluster after a failover)."""

    slow = False

    async def get(self) -> ModeRule:
        if self.slow:
            await asyncio.sleep(1.0)
        return await super().get()


def test_resync_reaches_every_stream_before_the_new_links_first_live_event(
    user_id: str,
) -> None:
    with RedisServer() as server:
        uvloop.run(_scenario(server, user_id))


async def _scenario(server: RedisServer, user_id: str) -> None:
    url = f"{server.url}/0"
    client = connect_async(url)
    modes = SlowModes(client)
    registry = ConnectionRegistry(client, "i-1", 5, 30)
    authorizer = NovelMembershipAuthorizer(RedisNovelAccess(client))
    hub = Hub(RedisAddress.from_url(url), registry, KeyLayout(), 30, authorizer, modes=modes)
    await hub.start()
    stream = Recorder(Principal(user_id))
    try:
        await hub.attach(stream)  # type: ignore[arg-type]
        modes.slow = True
        await client.execute_command("CLIENT", "KILL", "TYPE", "pubsub")
        deadline = asyncio.get_running_loop().time() + 10
        while Signal.RESYNC.value not in stream.offered:
            assert asyncio.get_running_loop().time() < deadline, stream.offered
            # Live events keep coming while the hub reconnects (it reads the mode slowly).
            await AsyncRedisEventStore(client).append(
                TaskUpdated(user_id=user_id, task_id="t", percent=1)
            )
            await asyncio.sleep(0.05)
        # Nothing was offered before the link dropped: the first item after it is RESYNC.
        assert stream.offered[0] == Signal.RESYNC.value, stream.offered
    finally:
        await hub.stop()
        await client.aclose()
