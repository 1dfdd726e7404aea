"""Issue 7: every metric moves when its event happens; JSON logs name connection, user and
instance. Real uvicorn, real Redis, real SSE clients, scraped over HTTP like Prometheus does."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable, Iterator

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from progress.events import TaskCompleted, TaskRetrying, TaskUpdated
from progress.redis_server import RedisServer
from progress.redis_store import RedisEventStore, connect
from tests.integration.test_sse_faults import (
    STUCK_MESSAGE,
    api_server,
    big_updates,
    drain,
    stuck_stream,
)
from tests.integration.test_sse_stream import open_stream
from tests.servers import ApiServer
from tests.sse_client import SseClient

pytestmark = pytest.mark.integration

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


@pytest.fixture(scope="module")
def api(redis_server: RedisServer) -> Iterator[ApiServer]:
    env = {"SSE_REDIS_PROBE_SECONDS": "0.2", "SSE_HEARTBEAT_SECONDS": "1"}
    with ApiServer(f"{redis_server.url}/0", **env) as server:
        yield server


@pytest.fixture
def store(redis_url: str) -> Iterator[RedisEventStore]:
    client = connect(redis_url)
    yield RedisEventStore(client)
    client.close()


def scrape(api: ApiServer) -> Samples:
    """Every sample of ``GET /metrics``, keyed by name and labels."""
    response = httpx.get(f"{api.url}/metrics", timeout=5)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    samples: Samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    """The sample's value (0 when absent: a labelled counter appears on first use)."""
    return samples.get((name, frozenset(labels.items())), 0.0)


def wait_until(check: Callable[[], bool], timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def flood_until(store: RedisEventStore, user: str, done: Callable[[], bool]) -> None:
    """Big updates of distinct tasks (nothing to coalesce) to a client that does not read,
    100 at a time, until ``done()``."""
    for start in range(0, 3000, 100):
        for batch in range(start, start + 100, 10):
            store.append_many(big_updates(user, batch, 10))
            time.sleep(0.02)
        if done():
            return
    raise AssertionError("3,000 big events did not get there")


def big_retries(user: str, start: int, count: int) -> list[tuple[TaskRetrying, tuple[()]]]:
    """Big retries of distinct tasks: backpressure holds only progress updates."""
    return [
        (
            TaskRetrying(
                user_id=user,
                task_id=f"r{n}",
                error_type="Timeout",
                message=STUCK_MESSAGE,
                attempt=1,
            ),
            (),
        )
        for n in range(start, start + count)
    ]


def percents_of(client: SseClient) -> list[float]:
    return [e.json["percent"] for e in client.events if e.event == "task.progress-updated"]


def instance(api: ApiServer) -> str:
    return str(httpx.get(f"{api.url}/api/v1/events/health", timeout=5).json()["instance_id"])


def test_a_stream_moves_the_connection_relay_and_latency_metrics(
    api: ApiServer, store: RedisEventStore, user_id: str
) -> None:
    me = instance(api)
    before = scrape(api)
    client = open_stream(api, api.jwt(user_id))
    opened = scrape(api)
    assert value(opened, "sse_connections_open", instance_id=me) == (
        value(before, "sse_connections_open", instance_id=me) + 1
    )
    assert value(opened, "sse_connections_opened_total", instance_id=me) == (
        value(before, "sse_connections_opened_total", instance_id=me) + 1
    )
    store.append(TaskUpdated(user_id=user_id, task_id="t1", percent=50))
    store.append(TaskCompleted(user_id=user_id, task_id="t1", duration_seconds=1))
    client.wait_for(lambda events: any(e.event == "task.progress-completed" for e in events))
    relayed = scrape(api)
    for kind, group in (
        ("task.progress-updated", "progress"),
        ("task.progress-completed", "terminal"),
    ):
        assert value(relayed, "sse_events_relayed_total", type=kind) == (
            value(before, "sse_events_relayed_total", type=kind) + 1
        )
        assert value(relayed, "sse_delivery_latency_seconds_count", group=group) == (
            value(before, "sse_delivery_latency_seconds_count", group=group) + 1
        )
    assert value(relayed, "sse_fanout_lag_seconds_count") >= (
        value(before, "sse_fanout_lag_seconds_count") + 2
    )
    # a healthy loop on a 2-core box delivers within the histogram's 1 s bucket
    assert value(relayed, "sse_delivery_latency_seconds_bucket", group="terminal", le="1.0") >= 1
    assert value(relayed, "sse_connection_queue_depth_max") == 0
    assert value(relayed, "sse_backpressure_active") == 0

    client.close()
    wait_until(
        lambda: (
            value(scrape(api), "sse_connections_closed_total", instance_id=me, reason="client_gone")
            == value(before, "sse_connections_closed_total", instance_id=me, reason="client_gone")
            + 1
        )
    )
    assert value(scrape(api), "sse_connections_open", instance_id=me) == value(
        before, "sse_connections_open", instance_id=me
    )
    lines = [json.loads(line) for line in api.log_text.splitlines() if line.startswith("{")]
    mine = [line for line in lines if line.get("user_id") == user_id]
    steps = {line["message"]: line for line in mine}
    for step in ("stream opened", "stream closed"):
        assert steps[step]["instance_id"] == me
        assert steps[step]["connection_id"] == client.events[0].json["connection_id"]
    assert steps["stream closed"]["reason"] == "client_gone"


def test_refusals_are_counted_by_reason(api: ApiServer, user_id: str) -> None:
    me = instance(api)
    before = scrape(api)
    jwt = api.jwt(user_id)
    first, second = open_stream(api, jwt), open_stream(api, jwt)
    third = SseClient(f"{api.url}/api/v1/events/stream?sse_token={api.sse_token(jwt)}")
    try:
        assert third.wait_open() == 429
        garbage = SseClient(f"{api.url}/api/v1/events/stream?sse_token=garbage")
        assert garbage.wait_open() == 401
        bad = httpx.post(
            f"{api.url}/api/v1/auth/sse-token", headers={"Authorization": "Bearer nope"}
        )
        assert bad.status_code == 401
    finally:
        for client in (first, second, third):
            client.close()
    after = scrape(api)
    for reason in ("too_many_connections", "token_malformed"):
        assert value(after, "sse_connections_refused_total", instance_id=me, reason=reason) == (
            value(before, "sse_connections_refused_total", instance_id=me, reason=reason) + 1
        )
    assert value(after, "sse_token_requests_refused_total", reason="token_malformed") == (
        value(before, "sse_token_requests_refused_total", reason="token_malformed") + 1
    )
    assert value(after, "http_responses_total", code="4xx") >= (
        value(before, "http_responses_total", code="4xx") + 3
    )


def test_a_resume_counts_a_history_replay_and_its_size(
    api: ApiServer, store: RedisEventStore, user_id: str
) -> None:
    jwt = api.jwt(user_id)
    client = open_stream(api, jwt)
    cursor = client.last_id
    client.close()
    for percent in (10, 20, 30):
        store.append(TaskUpdated(user_id=user_id, task_id=f"r{percent}", percent=percent))
    before = scrape(api)
    resumed = open_stream(api, jwt, cursor)
    resumed.close()
    after = scrape(api)
    assert value(after, "sse_history_replays_total", outcome="replay") == (
        value(before, "sse_history_replays_total", outcome="replay") + 1
    )
    assert value(after, "sse_history_replay_events_sum") == (
        value(before, "sse_history_replay_events_sum") + 3
    )


def test_redis_round_trips_are_probed(api: ApiServer) -> None:
    before = scrape(api)
    wait_until(
        lambda: (
            value(scrape(api), "sse_redis_rtt_seconds_count")
            >= value(before, "sse_redis_rtt_seconds_count") + 3
        )
    )
    assert value(scrape(api), "sse_redis_up") == 1


def test_the_event_loop_delay_is_sampled_ten_times_a_second(api: ApiServer) -> None:
    before = scrape(api)
    started = time.monotonic()
    count = "sse_event_loop_delay_seconds_count"
    wait_until(lambda: value(scrape(api), count) >= value(before, count) + 5)
    # 5 samples of the monitor's 100 ms timer take at least 0.4 s: a timer of its own, or a
    # busier one, costs an idle process CPU (100 wake-ups a second cost 0.5-0.8 % of a core).
    assert time.monotonic() - started >= 0.4


def test_the_process_cpu_and_memory_are_exported(api: ApiServer) -> None:
    scraped = scrape(api)
    assert value(scraped, "process_resident_memory_bytes") > 10_000_000
    assert value(scraped, "process_cpu_seconds_total") > 0
    assert value(scraped, "process_start_time_seconds") > 0


def test_a_slow_client_is_counted_and_saturation_is_shown_until_it_is_gone(
    redis_url: str, store: RedisEventStore, user_id: str
) -> None:
    env = {
        "SSE_QUEUE_SIZE": "400",
        "SSE_BACKPRESSURE_QUEUE_DEPTH": "50",
        "SSE_BACKPRESSURE_RECOVER_SECONDS": "0.5",
    }
    with api_server(redis_url, **env) as api:
        me = instance(api)
        stuck_user, watcher = f"{user_id}-stuck", f"{user_id}-watcher"
        watching = open_stream(api, api.jwt(watcher))
        stuck: socket.socket = stuck_stream(api, stuck_user)
        try:
            # once the socket buffers are full its queue passes 50: the instance saturates
            flood_until(
                store, stuck_user, lambda: value(scrape(api), "sse_backpressure_active") == 1
            )
            assert value(scrape(api), "sse_connection_queue_depth_max") >= 50
            refused = SseClient(
                f"{api.url}/api/v1/events/stream?sse_token={api.sse_token(api.jwt(user_id))}"
            )
            assert refused.wait_open() == 429
            assert json.loads(refused.body)["error"]["code"] == "overloaded"
            assert refused.response_headers is not None
            assert int(refused.response_headers["retry-after"]) >= 1
            # while saturated, a burst of one task's updates is relayed coalesced: the first at
            # once, the newest when the window closes, nothing between
            for percent in range(1, 11):
                store.append(TaskUpdated(user_id=watcher, task_id="w", percent=percent))
            events = watching.wait_for(lambda _: 10 in percents_of(watching), timeout=5)
            assert percents_of(watching) == [1, 10], percents_of(watching)
            assert value(scrape(api), "sse_progress_coalesced_total", where="relay") == 8
            # the end of a task is never held, and drops the updates held for it (both fall
            # inside the window the release of 10 opened)
            store.append(TaskUpdated(user_id=watcher, task_id="w2", percent=1))
            store.append(TaskUpdated(user_id=watcher, task_id="w2", percent=50))
            store.append(TaskCompleted(user_id=watcher, task_id="w2", duration_seconds=1))
            events = watching.wait_for(
                lambda events: any(e.event == "task.progress-completed" for e in events)
            )
            assert [e.event for e in events if e.event.startswith("task.")][-1:] == [
                "task.progress-completed"
            ]
            assert percents_of(watching) == [1, 10]
            assert value(scrape(api), "sse_progress_coalesced_total", where="relay") == 10
            # events that are never held or coalesced (retries of distinct tasks): past its
            # queue of 400 it is closed as a slow client, which it learns once it reads again
            for start in range(1000, 1600, 10):
                store.append_many(big_retries(stuck_user, start, 10))
                time.sleep(0.01)
            _, ended = drain(stuck, time.monotonic() + 15)
            assert ended
            wait_until(
                lambda: value(scrape(api), "sse_slow_client_disconnects_total", instance_id=me) == 1
            )
        finally:
            stuck.close()
            watching.close()
        after = scrape(api)
        assert (
            value(after, "sse_connections_closed_total", instance_id=me, reason="slow_client") == 1
        )
        assert (
            value(after, "sse_connections_refused_total", instance_id=me, reason="overloaded") == 1
        )
        # the load is gone: it recovers by itself and takes new streams again
        wait_until(lambda: value(scrape(api), "sse_backpressure_active") == 0)
        open_stream(api, api.jwt(user_id)).close()


def test_redis_down_shows_in_the_metrics_and_requests_are_refused(user_id: str) -> None:
    with RedisServer() as redis_server:
        env = {"SSE_REDIS_PROBE_SECONDS": "0.2"}
        with ApiServer(f"{redis_server.url}/0", **env) as api:
            jwt = api.jwt(user_id)
            token = api.sse_token(jwt)
            wait_until(lambda: value(scrape(api), "sse_redis_up") == 1)
            before = scrape(api)
            redis_server.stop()
            wait_until(lambda: value(scrape(api), "sse_redis_up") == 0)
            # a token could not be spent: none is issued while Redis is down
            issued = httpx.post(
                f"{api.url}/api/v1/auth/sse-token",
                headers={"Authorization": f"Bearer {jwt}"},
                timeout=10,
            )
            assert issued.status_code == 503
            stream = httpx.get(f"{api.url}/api/v1/events/stream?sse_token={token}", timeout=10)
            assert stream.status_code == 503
            after = scrape(api)
            assert value(after, "http_responses_total", code="5xx") >= (
                value(before, "http_responses_total", code="5xx") + 2
            )
            redis_server.start()
            wait_until(lambda: value(scrape(api), "sse_redis_up") == 1)
