"""The API's long-lived services, built in the lifespan and read by routes through ``deps``."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import anyio
import redis.asyncio
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from api.archive import Archive
from api.authz import Authorizer, NovelMembershipAuthorizer, RedisNovelAccess
from api.connection import StreamOptions
from api.fanout import Hub
from api.realtime import RealtimeModeStore
from api.registry import ConnectionRegistry
from api.security import TokenService
from api.settings import ApiSettings
from progress.keys import KeyLayout
from progress.redis_store import AsyncRedisEventStore, connect_async
from workers.contracts import open_audit_log


@dataclass
class ApiServices:
    """Everything routes call into; one per app."""

    settings: ApiSettings
    client: redis.asyncio.Redis
    pubsub_client: redis.asyncio.Redis
    store: AsyncRedisEventStore
    tokens: TokenService
    registry: ConnectionRegistry
    authorizer: Authorizer
    hub: Hub
    modes: RealtimeModeStore
    options: StreamOptions
    started_at: float = field(default_factory=time.monotonic)
    #: Set by sse-starlette when the server begins to shut down.
    shutdown_event: anyio.Event = field(default_factory=anyio.Event)
    #: The SQL audit of important events (replay beyond Redis, admin audit endpoints).
    archive: Archive | None = None

    @classmethod
    def build(cls, settings: ApiSettings, authorizer: Authorizer | None = None) -> ApiServices:
        """Create the clients (they connect lazily) and the services over them."""
        client = connect_async(settings.redis_url)
        # The hub notices a lost link itself and resyncs every stream; a silent reconnect
        # inside redis-py would hide the gap, so the pub/sub client never retries.
        pubsub_client = connect_async(
            settings.redis_url, retry=Retry(NoBackoff(), 0), socket_timeout=None
        )
        layout = KeyLayout(settings.key_prefix)
        registry = ConnectionRegistry(
            client,
            settings.instance_id,
            settings.max_connections_per_user,
            settings.lease_seconds,
            settings.key_prefix,
        )
        authorizer = authorizer or NovelMembershipAuthorizer(
            RedisNovelAccess(client, settings.key_prefix)
        )
        store = AsyncRedisEventStore(client, settings.store_settings())
        modes = RealtimeModeStore(client, settings.key_prefix)
        return cls(
            settings=settings,
            client=client,
            pubsub_client=pubsub_client,
            store=store,
            archive=Archive(
                open_audit_log(settings.database_url, settings.audit_encryption_keys), store
            ),
            tokens=TokenService(
                settings.jwt_secret,
                client,
                settings.key_prefix,
                settings.token_ttl_seconds,
                settings.expiry_notice_seconds,
            ),
            registry=registry,
            authorizer=authorizer,
            hub=Hub(pubsub_client, registry, layout, settings.lease_seconds, authorizer, modes),
            modes=modes,
            options=StreamOptions(
                heartbeat_seconds=settings.heartbeat_seconds,
                retry_ms=settings.retry_ms,
                queue_size=settings.queue_size,
                max_replay=settings.max_replay,
                expiry_notice_seconds=settings.expiry_notice_seconds,
                instance_id=settings.instance_id,
            ),
        )

    async def start(self) -> None:
        """Connect the hub's pub/sub link."""
        await self.hub.start()

    async def close(self) -> None:
        """End every stream and close the clients."""
        await self.hub.stop()
        await self.pubsub_client.aclose()
        await self.client.aclose()
        if self.archive is not None:
            self.archive.close()
