"""``GET /api/v1/events/health``: the status every load balancer reads, and for admins the
operations report (connections, latency percentiles, top event types, stream memory in Redis,
slowest clients, backpressure)."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from api.errors import STORE_UNAVAILABLE
from api.services import ApiServices
from progress.errors import StoreUnavailable

log = logging.getLogger("api.health")


async def health(services: ApiServices) -> tuple[dict[str, Any], int]:
    """The public status and its HTTP status (503 when Redis does not answer).

    A database that does not answer, or a journal that still lacks events of an outage (they
    wait in the spill), makes the status ``degraded``, not 503: streams, history and tasks
    still work without it, and a 503 would take every instance out of rotation (or get it
    restarted) for an outage no instance can fix.
    """
    body: dict[str, Any] = {
        "instance_id": services.settings.instance_id,
        "uptime_seconds": round(time.monotonic() - services.started_at, 1),
        "connections": len(services.hub.connections),
        "subscribed_users": len(services.hub.subscribed_users()),
        "pubsub_link": "up" if services.hub.link_up else "down",
    }
    database_ping = asyncio.ensure_future(services.ping_database())  # alongside Redis's
    try:
        latency = await services.ping_redis()
    except StoreUnavailable as exc:
        latency, redis_error = None, exc
    database = await database_ping
    body["database"] = (
        {"reachable": False}
        if database is None
        else {"reachable": True, "latency_ms": round(database * 1000, 2)}
    )
    if latency is None:
        log.warning("health: %s", redis_error)  # the cause is for operators, not for every prober
        body |= {
            "status": "unavailable",
            "redis": {"reachable": False, "error": STORE_UNAVAILABLE},
        }
        return body, 503
    # Important events pushed while the database was down wait in the journal spill: "ok"
    # also means the journal holds them (a later Redis loss could not take them away).
    spilled = await services.journal_behind(database_up=database is not None)
    body["database"]["journal_spilled"] = spilled
    up = services.hub.link_up and database is not None and spilled == 0
    body |= {
        "status": "ok" if up else "degraded",
        "redis": {"reachable": True, "latency_ms": round(latency * 1000, 2)},
    }
    return body, 200


async def report(services: ApiServices) -> dict[str, Any]:
    """The operations report (admins only: it names users)."""
    metrics = services.metrics
    monitor = services.backpressure.monitor
    connections = list(services.hub.connections.values())
    slowest = sorted(connections, key=lambda c: c.queue_depth, reverse=True)[:10]
    now = time.monotonic()
    return {
        "connections": {
            "open": len(connections),
            "max": services.settings.max_connections_per_instance,
        },
        "delivery_latency_ms": percentiles(list(metrics.recent_latency)),
        "top_event_types": [
            {"type": kind, "relayed": count}
            for kind, count in metrics.relayed_by_type.most_common(5)
        ],
        "backpressure": {
            "saturated": monitor.saturated,
            "event_loop_lag_ms": round(monitor.lag * 1000, 1),
            "max_queue_depth": monitor.max_depth,
            "held_progress_updates": services.backpressure.pacer.holding,
        },
        "slowest_clients": [
            {
                "connection_id": c.id,
                "user_id": c.principal.user_id,
                "queue_depth": c.queue_depth,
                "delivered": c.delivered,
                "connected_seconds": round(now - c.connected_at, 1),
            }
            for c in slowest
        ],
        "redis_streams": await services.stream_memory.measure(),
    }


def percentiles(samples: list[float]) -> dict[str, float | int | None]:
    """p50/p95/p99/max in milliseconds of ``samples`` (seconds), and how many there were."""
    if not samples:
        return {"samples": 0, "p50": None, "p95": None, "p99": None, "max": None}
    ordered = sorted(samples)

    def at(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000, 2)

    return {
        "samples": len(ordered),
        "p50": at(0.50),
        "p95": at(0.95),
        "p99": at(0.99),
        "max": round(ordered[-1] * 1000, 2),
    }
