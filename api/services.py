"""The API's long-lived services, built in the lifespan and read by routes through ``deps``."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from dataclasses import dataclass, field

import anyio
from redis.exceptions import RedisError

from api.auth.authz import Authorizer, NovelMembershipAuthorizer, RedisNovelAccess
from api.auth.client_ip import Network, parse_networks
from api.auth.platform_jwt import platform_verifier
from api.auth.rate_limits import BUCKET_LUA, STRIKE_LUA, WRITE, AbuseGuard, AbuseLimits, Rate
from api.auth.tokens import TokenService
from api.event_meta import EventMeta
from api.hub.backpressure import Backpressure, BackpressureSettings
from api.hub.cluster_batching import ClusterBatchingRedis
from api.hub.hub import Hub
from api.hub.leases import ACQUIRE_LUA, HEARTBEAT_LUA, REFRESH_LUA, RELEASE_LUA, ConnectionRegistry
from api.hub.redis_batching import BatchingRedis
from api.hub.sharded_link import link_address
from api.ops.metrics import ApiMetrics
from api.ops.redis_health import RedisHealth
from api.ops.redis_memory import StreamMemory
from api.preferences import PreferenceStore
from api.realtime_mode import RealtimeModeStore, mode_for, polls_anyone
from api.settings import ApiSettings
from api.stream.admission import OPEN_LUA, Admission, OpenChecks, admission_for, log_refusal
from api.stream.archive import Archive
from api.stream.connection import StreamOptions
from api.stream.response import OpenStreams
from api.stream.shared_replay import SharedReplayStore
from progress.keys import KeyLayout
from progress.redis_store import STATE_LUA, AsyncClient, AsyncRedisEventStore, connect_async
from workers.contracts import SchemaOutdated, ensure_schema, open_audit_log

log = logging.getLogger("api.services")

#: Scripts every stream open runs: loaded at start, or the first burst of opens would each
#: fail its EVALSHA (NOSCRIPT) and load the script again.
_OPEN_SCRIPTS = (
    BUCKET_LUA,
    STRIKE_LUA,
    ACQUIRE_LUA,
    REFRESH_LUA,
    RELEASE_LUA,
    HEARTBEAT_LUA,
    STATE_LUA,
    OPEN_LUA,
)


@dataclass
class ApiServices:
    """Everything routes call into; one per app."""

    settings: ApiSettings
    client: AsyncClient
    store: AsyncRedisEventStore
    tokens: TokenService
    registry: ConnectionRegistry
    authorizer: Authorizer
    hub: Hub
    modes: RealtimeModeStore
    options: StreamOptions
    metrics: ApiMetrics
    guard: AbuseGuard
    backpressure: Backpressure
    preferences: PreferenceStore
    stream_memory: StreamMemory
    #: The store streams replay from: broadcast pages shared by simultaneous resumes.
    replay_store: SharedReplayStore
    #: Who may read which novel, in Redis (kept in step with accepted memberships).
    novel_access: RedisNovelAccess
    #: Admits stream opens: token, limits and lease (one script on a single Redis).
    admission: Admission
    #: Whether Redis answers: opens and sse_token requests are refused at once while not.
    redis_health: RedisHealth = field(init=False)
    trusted_proxies: tuple[Network, ...] = ()
    started_at: float = field(default_factory=time.monotonic)
    #: Set when the server begins to shut down (api.stream.response.supervise_streams).
    shutdown_event: anyio.Event = field(default_factory=anyio.Event)
    _probe: asyncio.Task[None] | None = None
    _heartbeat: asyncio.Task[None] | None = None
    _database_probe: asyncio.Task[None] | None = None
    _drain: asyncio.Future[int] | None = None
    #: The tasks writing open streams (stuck writes and the shutdown grace end them).
    open_streams: OpenStreams = field(default_factory=OpenStreams)
    #: The SQL audit of important events (replay beyond Redis, admin audit endpoints).
    archive: Archive | None = None

    @classmethod
    def build(cls, settings: ApiSettings, authorizer: Authorizer | None = None) -> ApiServices:
        """Create the clients (they connect lazily) and the services over them."""
        # A small pool, auto-pipelined: commands queued while its connections are busy go out
        # together on the next free one, so a burst of opens costs a few round trips on a few
        # connections, not one connection per open. On a cluster, such a pool per master.
        client = connect_async(
            settings.redis_url,
            max_connections=settings.redis_pool_size,
            client_class=BatchingRedis,
            cluster_class=functools.partial(
                ClusterBatchingRedis, node_connections=settings.redis_pool_size
            ),
            socket_connect_timeout=settings.redis_connect_timeout_seconds,
        )
        layout = KeyLayout(settings.key_prefix)
        registry = ConnectionRegistry(
            client,
            settings.instance_id,
            settings.max_connections_per_user,
            settings.lease_seconds,
            settings.key_prefix,
            settings.instance_alive_seconds,
        )
        novel_access = RedisNovelAccess(client, settings.key_prefix)
        authorizer = authorizer or NovelMembershipAuthorizer(novel_access)
        store = AsyncRedisEventStore(client, settings.store_settings())
        modes = RealtimeModeStore(client, settings.key_prefix)
        metrics = ApiMetrics(settings.instance_id, settings.max_connections_per_instance)
        backpressure = Backpressure(
            _backpressure_settings(settings),
            lambda: (c.queue_depth for c in hub.connections.values()),
            on_coalesced=lambda n: metrics.coalesced("relay", n),
            on_lag=metrics.loop_delay.observe,
        )
        hub = Hub(
            link_address(settings.redis_url),
            registry,
            layout,
            settings.lease_seconds,
            authorizer,
            modes=modes,
            backpressure=backpressure,
            on_routed=lambda meta: _routed(metrics, backpressure, meta),
            linger_seconds=settings.subscription_linger_seconds,
        )
        backpressure.dispatch = hub.dispatch
        metrics.watch(backpressure)
        tokens = TokenService(
            client,
            settings.key_prefix,
            settings.token_ttl_seconds,
            settings.expiry_notice_seconds,
            platform=platform_verifier(settings),
        )
        guard = AbuseGuard(
            client,
            _abuse_limits(settings),
            settings.key_prefix,
            on_refused=lambda action, reason, ip: _log_refusal(metrics, action, reason, ip),
            on_error=metrics.rate_limiter_error,
        )
        preferences = PreferenceStore(client, settings.key_prefix)
        open_checks = OpenChecks(
            tokens,
            guard,
            registry,
            preferences,
            streams_off=lambda user: mode_for(user, hub.mode_rule, settings.enabled) == "polling",
            any_streams_off=lambda: polls_anyone(hub.mode_rule, settings.enabled),
            refused=functools.partial(log_refusal, metrics, settings.instance_id),
            max_connections_per_user=settings.max_connections_per_user,
        )
        return cls(
            settings=settings,
            client=client,
            store=store,
            archive=Archive(
                open_audit_log(
                    settings.database_url,
                    settings.audit_encryption_keys,
                    settings.audit_allow_dev_key,
                ),
                store,
            ),
            tokens=tokens,
            registry=registry,
            authorizer=authorizer,
            hub=hub,
            modes=modes,
            options=StreamOptions(
                heartbeat_seconds=settings.heartbeat_seconds,
                retry_ms=settings.retry_ms,
                queue_size=settings.queue_size,
                max_replay=settings.max_replay,
                expiry_notice_seconds=settings.expiry_notice_seconds,
                instance_id=settings.instance_id,
            ),
            metrics=metrics,
            guard=guard,
            backpressure=backpressure,
            preferences=preferences,
            stream_memory=StreamMemory(client, settings.key_prefix),
            trusted_proxies=parse_networks(settings.trusted_proxies),
            replay_store=SharedReplayStore(client, settings.store_settings()),
            novel_access=novel_access,
            admission=admission_for(client, layout, open_checks, settings.open_script),
        )

    def __post_init__(self) -> None:
        settings = self.settings
        self.redis_health = RedisHealth(
            self.store.ping,
            settings.redis_probe_seconds,
            settings.redis_down_probe_seconds,
            settings.redis_ping_timeout_seconds,
            on_ping=self.metrics.redis_ping,
        )
        if isinstance(self.client, BatchingRedis):
            self.client.on_unreachable = self.redis_health.failed

    async def start(self) -> None:
        """Check the database schema (SchemaOutdated: do not serve); connect the hub's pub/sub
        link; start backpressure sampling, the Redis and database probes and this instance's
        heartbeat."""
        try:
            await anyio.to_thread.run_sync(ensure_schema, self.settings.database_url)
        except SchemaOutdated as exc:
            log.critical("not starting: %s", exc)
            raise
        await self.hub.start()
        for script in _OPEN_SCRIPTS:
            await self.client.script_load(script)
        await self.registry.heartbeat()
        self.backpressure.start()
        self._probe = asyncio.create_task(self.redis_health.run(), name="redis-probe")
        self._heartbeat = asyncio.create_task(self._heartbeat_forever(), name="heartbeat")
        if self.archive is not None:
            self._database_probe = asyncio.create_task(
                self._probe_database_forever(self.archive), name="database-probe"
            )

    async def close(self) -> None:
        """End every stream and close the clients."""
        for task in (self._probe, self._heartbeat, self._database_probe):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        await self.backpressure.stop()
        await self.hub.stop()
        if self.redis_health.up:
            # This run's leases stop counting now, not when its heartbeat would have lapsed.
            with contextlib.suppress(RedisError, OSError):
                await self.registry.heartbeat(alive=False)
        await self.client.aclose()
        if self.archive is not None:
            self.archive.close()

    async def ping_redis(self) -> float:
        """One PING (bounded by SSE_REDIS_PING_TIMEOUT_SECONDS), recorded in the metrics;
        StoreUnavailable at once while Redis is taken for down, or when it does not answer."""
        self.redis_health.check()
        return await self.redis_health.probe()

    async def ping_database(self) -> float | None:
        """Seconds a ``SELECT 1`` took (recorded in the metrics); None when the database did
        not answer within ``SSE_DATABASE_PING_TIMEOUT_SECONDS`` or none is configured."""
        if self.archive is None:
            return None
        seconds = await self.archive.ping(self.settings.database_ping_timeout_seconds)
        self.metrics.database_ping(seconds)
        return seconds

    async def journal_spilled(self) -> int | None:
        """How many journal records wait in the spill (``rt:journal-pending``): important
        events pushed while the database was down and not in the audit table yet; None when
        Redis did not say."""
        key = KeyLayout(self.settings.key_prefix).journal_pending()
        try:
            return int(await self.client.hlen(key))
        except (RedisError, OSError):
            return None

    async def _drain_spill(self, archive: Archive) -> int:
        # Callers while a drain runs share it (it goes on if they stop waiting); raises what
        # the database or Redis raise (nothing leaves the spill then).
        if self._drain is None or self._drain.done():
            settings = self.settings
            self._drain = asyncio.ensure_future(
                archive.drain_spill(settings.redis_url, settings.store_settings())
            )
            self._drain.add_done_callback(_retrieve)
        return await asyncio.shield(self._drain)

    async def journal_behind(self, database_up: bool) -> int | None:
        """Journal records still in the spill; with the database up, after a drain (bounded
        by ``SSE_DATABASE_PING_TIMEOUT_SECONDS``), so health says "ok" only once the journal
        holds every important event pushed during an outage. None when Redis did not say."""
        spilled = await self.journal_spilled()
        archive = self.archive
        if not spilled or not database_up or archive is None:
            return spilled
        try:
            await asyncio.wait_for(
                self._drain_spill(archive), self.settings.database_ping_timeout_seconds
            )
        except Exception as exc:  # slow, or the database or Redis failed again: say so
            log.warning("could not write the journal spill (%s: %s)", type(exc).__name__, exc)
        return await self.journal_spilled()

    async def _probe_database_forever(self, archive: Archive) -> None:
        # Workers spill journal records while the database is down and drain them on their
        # own schedule; the API drains as soon as it sees the database (back) up (and health
        # does when it finds records waiting: see journal_behind).
        spilled_since_drain = True
        while True:
            if await self.ping_database() is None:
                spilled_since_drain = True
            elif spilled_since_drain:
                try:
                    await self._drain_spill(archive)
                    spilled_since_drain = False
                except Exception as exc:  # Redis or the database failed again: next probe
                    log.warning(
                        "could not write the journal spill (%s: %s)", type(exc).__name__, exc
                    )
            await asyncio.sleep(self.settings.database_probe_seconds)

    async def _heartbeat_forever(self) -> None:
        while True:
            await asyncio.sleep(self.settings.instance_heartbeat_seconds)
            try:
                await self.registry.heartbeat()
            except (RedisError, OSError) as exc:
                log.debug("heartbeat failed: %s", exc)


def _retrieve(done: asyncio.Future[int]) -> None:
    # A drain nobody waited for to the end: read its outcome so asyncio does not log it.
    if not done.cancelled():
        done.exception()


def _backpressure_settings(settings: ApiSettings) -> BackpressureSettings:
    return BackpressureSettings(
        lag_seconds=settings.backpressure_lag_seconds,
        queue_depth=settings.backpressure_queue_depth,
        fanout_lag_seconds=settings.backpressure_fanout_lag_seconds,
        recover_seconds=settings.backpressure_recover_seconds,
        progress_interval=settings.backpressure_progress_interval_seconds,
        max_progress_interval=settings.backpressure_max_progress_interval_seconds,
        enabled=settings.backpressure_enabled,
    )


def _routed(metrics: ApiMetrics, backpressure: Backpressure, meta: EventMeta) -> None:
    metrics.routed(meta)
    backpressure.routed(meta.occurred_at)


def _abuse_limits(settings: ApiSettings) -> AbuseLimits:
    s = settings
    return AbuseLimits(
        per_ip={
            "sse_token": Rate(s.rate_token_ip_per_second, s.rate_token_ip_burst),
            "stream": Rate(s.rate_stream_ip_per_second, s.rate_stream_ip_burst),
        },
        per_user={
            "sse_token": Rate(s.rate_token_user_per_second, s.rate_token_user_burst),
            "stream": Rate(s.rate_stream_user_per_second, s.rate_stream_user_burst),
            WRITE: Rate(s.rate_write_user_per_second, s.rate_write_user_burst),
        },
        ban_after=s.ban_after_strikes,
        strike_window_seconds=s.ban_strike_window_seconds,
        ban_seconds=s.ban_seconds,
    )


def _log_refusal(metrics: ApiMetrics, action: str, reason: str, ip: str) -> None:
    if action == "stream":
        metrics.refused(reason)
    elif action == "sse_token":
        metrics.token_refused(reason)
    log.warning(f"{action} refused: {reason}", extra={"reason": reason, "client_ip": ip})
