"""Issue 20: which path admits stream opens is decided once, by the client the services are
built on: one script on a single Redis; the stepwise checks on a Redis Cluster (the script
builds the user's keys from the token, undeclared keys of another slot a cluster refuses)."""

from __future__ import annotations

import asyncio

import pytest
import redis.asyncio

from api.auth.rate_limits import AbuseGuard, AbuseLimits, Rate
from api.auth.tokens import Claims, TokenService
from api.hub.cluster_batching import ClusterBatchingRedis
from api.hub.leases import ConnectionRegistry
from api.hub.redis_batching import BatchingRedis
from api.preferences import PreferenceStore
from api.stream.admission import (
    OpenChecks,
    ScriptedAdmission,
    StepwiseAdmission,
    admission_for,
)
from progress.keys import KeyLayout

pytestmark = pytest.mark.unit

LIMITS = AbuseLimits(
    per_ip={"stream": Rate(10, 50)},
    per_user={"stream": Rate(1, 10)},
    ban_after=20,
    strike_window_seconds=60,
    ban_seconds=300,
)


class NoPlatform:
    async def verify(self, token: str) -> Claims:
        raise AssertionError(f"no JWT is checked here: {token}")


def _checks(client: redis.asyncio.Redis | redis.asyncio.RedisCluster) -> OpenChecks:
    return OpenChecks(
        TokenService(client, platform=NoPlatform()),
        AbuseGuard(client, LIMITS),
        ConnectionRegistry(client, "api-1", 2, 90),
        PreferenceStore(client),
        streams_off=lambda _: False,
        any_streams_off=lambda: False,
        refused=lambda *_: None,
        max_connections_per_user=2,
    )


def _admission(
    client: redis.asyncio.Redis | redis.asyncio.RedisCluster, scripted: bool = True
) -> object:
    return admission_for(client, KeyLayout(), _checks(client), scripted)


def test_a_single_redis_admits_with_one_script_a_cluster_stepwise() -> None:
    async def build() -> tuple[object, object]:
        # Neither client connects: none sends a command.
        single = BatchingRedis.from_url("redis://127.0.0.1:1")
        cluster = ClusterBatchingRedis(host="127.0.0.1", port=1)
        try:
            assert isinstance(_admission(single, scripted=False), StepwiseAdmission)
            return _admission(single), _admission(cluster)
        finally:
            await single.aclose()
            await cluster.aclose()

    single, cluster = asyncio.run(build())
    assert isinstance(single, ScriptedAdmission)
    assert isinstance(cluster, StepwiseAdmission)


def test_a_layout_that_does_not_hold_the_user_id_as_is_is_refused_at_build() -> None:
    class HashedLayout(KeyLayout):
        def leases(self, user_id: str) -> str:
            return f"rt:{{u:{hash(user_id)}}}:conns"

    async def build() -> None:
        client = BatchingRedis.from_url("redis://127.0.0.1:1")
        try:
            with pytest.raises(ValueError, match="the user id once"):
                admission_for(client, HashedLayout(), _checks(client))
        finally:
            await client.aclose()

    asyncio.run(build())
