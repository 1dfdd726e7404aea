"""Issue 20 (target 1): on a single Redis, a stream open spends its sse_token, checks the ban and
both buckets and takes its lease in one script call (``api/stream/lua/stream_open.lua``), where
it used to send a GETDEL and three scripts in three round trips. What an operator sees in
``MONITOR``: one EVALSHA per open, the token's GETDEL inside it. Every refusal answers as on
the stepwise path (status, code, Retry-After, strikes, the token spent, the metrics)."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

import httpx
import pytest
import redis

from api.auth.rate_limits import BUCKET_LUA
from api.hub.leases import ACQUIRE_LUA
from api.stream.admission import OPEN_LUA
from progress.keys import KeyLayout
from progress.redis_server import RedisServer
from tests.servers import ApiServer

pytestmark = pytest.mark.integration

DB = 5
LAYOUT = KeyLayout()
LIMITS = {
    "SSE_MAX_CONNECTIONS_PER_USER": "2",
    "SSE_RATE_STREAM_USER_BURST": "3",
    "SSE_RATE_STREAM_USER_PER_SECOND": "0.01",
    "SSE_RATE_TOKEN_USER_BURST": "100",
    "SSE_RATE_TOKEN_USER_PER_SECOND": "100",
    # An address's bucket refills too slowly to matter within a test (each test its own).
    "SSE_RATE_STREAM_IP_BURST": "1000",
    "SSE_RATE_STREAM_IP_PER_SECOND": "0.01",
    "SSE_BAN_AFTER_STRIKES": "3",
    "SSE_BAN_SECONDS": "60",
}


def sha(script: str) -> str:
    return hashlib.sha1(script.encode()).hexdigest()


@pytest.fixture(scope="module")
def api(redis_server: RedisServer) -> Iterator[ApiServer]:
    # Its own database: MONITOR below counts this server's commands only.
    with ApiServer(f"{redis_server.url}/{DB}", **LIMITS) as server:
        yield server


@pytest.fixture
def db(redis_server: RedisServer) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(f"{redis_server.url}/{DB}")
    yield client
    client.close()


@contextmanager
def monitored(client: redis.Redis) -> Iterator[list[dict[str, Any]]]:
    """Every command Redis runs in the block (MONITOR), in order; Lua's marked ``lua``."""
    mark = "end-of-monitor"
    seen: list[dict[str, Any]] = []
    with client.monitor() as monitor:

        def read() -> None:
            for command in monitor.listen():
                if command["command"] == f"ECHO {mark}":
                    return
                seen.append(command)

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        try:
            yield seen
        finally:
            client.echo(mark)
            reader.join(10)


@contextmanager
def held_open(api: ApiServer, tokens: list[str]) -> Iterator[list[int]]:
    """Streams opened with ``tokens`` one after the other, held until the block ends; their
    statuses."""
    with httpx.Client(timeout=5) as client, ExitStack() as streams:
        yield [
            streams.enter_context(client.stream("GET", stream_url(api, token))).status_code
            for token in tokens
        ]


def stream_url(api: ApiServer, token: str) -> str:
    return f"{api.url}/api/v1/events/stream?sse_token={token}"


def client_from(address: str) -> httpx.Client:
    """HTTP from ``address`` (any 127.x.y.z is loopback): each test's strikes and ban are its
    own."""
    return httpx.Client(transport=httpx.HTTPTransport(local_address=address), timeout=5)


def open_from(address: str, api: ApiServer, token: str, **headers: str) -> httpx.Response:
    """An open that is expected to be refused (a 200 would hold the stream open)."""
    with client_from(address) as client:
        return client.get(stream_url(api, token), headers=headers)


def code(response: httpx.Response) -> tuple[int, str]:
    return response.status_code, response.json()["error"]["code"]


def strikes(db: redis.Redis, address: str) -> int:
    return int(db.get(LAYOUT.ip_strikes(address)) or 0)


def refusals(api: ApiServer, reason: str) -> float:
    """``sse_connections_refused_total`` for ``reason`` (0 before the first)."""
    for line in httpx.get(f"{api.url}/metrics").text.splitlines():
        if line.startswith("sse_connections_refused_total{") and f'reason="{reason}"' in line:
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_an_open_sends_one_script_for_token_limits_and_lease(
    api: ApiServer, db: redis.Redis, user_id: str
) -> None:
    opens = 10
    tokens = [api.sse_token(api.jwt(f"{user_id}-{n}")) for n in range(opens)]
    with monitored(db) as seen, held_open(api, tokens) as statuses:
        assert statuses == [200] * opens
    ours = [c for c in seen if c["db"] == DB]
    sent = [c["command"].split() for c in ours if c["client_type"] != "lua"]
    in_lua = [c["command"].split()[0].upper() for c in ours if c["client_type"] == "lua"]
    evalsha = [words[1] for words in sent if words[0].upper() == "EVALSHA"]
    assert evalsha.count(sha(OPEN_LUA)) == opens
    assert sha(BUCKET_LUA) not in evalsha and sha(ACQUIRE_LUA) not in evalsha
    assert not [words for words in sent if words[0].upper() == "GETDEL"]
    assert in_lua.count("GETDEL") == opens


def test_a_reused_token_is_refused_with_a_strike(
    api: ApiServer, db: redis.Redis, user_id: str
) -> None:
    token = api.sse_token(api.jwt(user_id))
    with (
        client_from("127.0.0.11") as client,
        client.stream("GET", stream_url(api, token)) as first,
    ):
        assert first.status_code == 200
    counted = refusals(api, "token_reused")
    again = open_from("127.0.0.11", api, token)
    assert code(again) == (401, "token_reused")
    assert strikes(db, "127.0.0.11") == 1
    assert refusals(api, "token_reused") == counted + 1


def test_a_banned_address_is_refused_and_its_token_spent(
    api: ApiServer, db: redis.Redis, user_id: str
) -> None:
    forged = [open_from("127.0.0.12", api, f"forged-{n}").status_code for n in range(3)]
    assert forged == [401, 401, 403]  # the third strike bans
    token = api.sse_token(api.jwt(user_id))
    counted = refusals(api, "ip_banned")
    banned = open_from("127.0.0.12", api, token)
    assert code(banned) == (403, "ip_banned")
    assert refusals(api, "ip_banned") == counted + 1
    assert 50 <= int(banned.headers["retry-after"]) <= 60
    assert not db.exists(LAYOUT.leases(user_id))
    assert code(open_from("127.0.0.13", api, token)) == (401, "token_reused")


def test_the_cap_then_the_bucket_refuse_spending_the_token(
    api: ApiServer, db: redis.Redis, user_id: str
) -> None:
    jwt = api.jwt(user_id)
    with held_open(api, [api.sse_token(jwt), api.sse_token(jwt)]) as statuses:
        assert statuses == [200, 200]
        counted = refusals(api, "too_many_connections"), refusals(api, "rate_limited")
        full = open_from("127.0.0.14", api, api.sse_token(jwt))
        assert code(full) == (429, "too_many_connections")
        assert 5 <= int(full.headers["retry-after"]) <= 20
        assert strikes(db, "127.0.0.14") == 0
        # The refused open charged the user's bucket (burst 3), as it did before.
        token = api.sse_token(jwt)
        limited = open_from("127.0.0.14", api, token)
        assert code(limited) == (429, "rate_limited")
        assert int(limited.headers["retry-after"]) >= 1
        assert strikes(db, "127.0.0.14") == 1
        assert (refusals(api, "too_many_connections"), refusals(api, "rate_limited")) == (
            counted[0] + 1,
            counted[1] + 1,
        )
        assert db.zcard(LAYOUT.leases(user_id)) == 2
        assert code(open_from("127.0.0.15", api, token)) == (401, "token_reused")


def test_a_malformed_cursor_spends_the_token_and_takes_nothing(
    api: ApiServer, db: redis.Redis, user_id: str
) -> None:
    token = api.sse_token(api.jwt(user_id))
    refused = open_from("127.0.0.16", api, token, **{"Last-Event-ID": "v9,nope"})
    assert refused.status_code == 400
    assert not db.exists(LAYOUT.leases(user_id), LAYOUT.user_bucket(user_id, "stream"))
    assert code(open_from("127.0.0.16", api, token)) == (401, "token_reused")


def test_a_polling_rule_sends_opens_the_stepwise_way_charging_nothing(
    api: ApiServer, db: redis.Redis, user_id: str
) -> None:
    admin = {"Authorization": f"Bearer {api.jwt('operator', roles=('admin',))}"}
    config = f"{api.url}/api/v1/realtime/config"
    counted = refusals(api, "realtime_polling")
    assert httpx.put(config, json={"mode": "polling", "percent": 100}, headers=admin).is_success
    try:
        token = api.sse_token(api.jwt(user_id))
        with monitored(db) as seen:
            refused = open_from("127.0.0.17", api, token)
    finally:
        assert httpx.put(config, json={"mode": "sse", "percent": 100}, headers=admin).is_success
    assert code(refused) == (409, "realtime_polling")
    # The script would charge the buckets before knowing the user's mode: while a polling
    # rule holds, the token is spent on its own and nothing else is taken.
    sent = [c["command"].split() for c in seen if c["db"] == DB and c["client_type"] != "lua"]
    assert sha(OPEN_LUA) not in [words[1] for words in sent if words[0].upper() == "EVALSHA"]
    assert [words[0].upper() for words in sent].count("GETDEL") == 1
    assert not db.exists(LAYOUT.leases(user_id), LAYOUT.user_bucket(user_id, "stream"))
    assert not db.exists(LAYOUT.ip_bucket("127.0.0.17", "stream"))
    assert strikes(db, "127.0.0.17") == 0
    assert refusals(api, "realtime_polling") == counted + 1
    assert '"reason":"realtime_polling"' in api.log_text


def empty(db: redis.Redis, bucket: str) -> None:
    """No token left in ``bucket``, none refilled for a minute (its time set ahead)."""
    ahead_ms = (int(db.time()[0]) + 60) * 1000
    db.hset(bucket, mapping={"tokens": "0", "ts": ahead_ms})
    db.pexpire(bucket, 120_000)


@pytest.mark.parametrize("bucket", ["user", "address"])
def test_an_empty_bucket_refuses_with_a_strike_and_takes_no_lease(
    api: ApiServer, db: redis.Redis, user_id: str, bucket: str
) -> None:
    address = "127.0.0.18" if bucket == "user" else "127.0.0.19"
    if bucket == "user":
        empty(db, LAYOUT.user_bucket(user_id, "stream"))
    else:
        empty(db, LAYOUT.ip_bucket(address, "stream"))
    token = api.sse_token(api.jwt(user_id))
    counted = refusals(api, "rate_limited")
    limited = open_from(address, api, token)
    assert code(limited) == (429, "rate_limited")
    assert int(limited.headers["retry-after"]) >= 1
    assert strikes(db, address) == 1
    assert refusals(api, "rate_limited") == counted + 1
    # under the cap of 2, so only the bucket's refusal keeps the lease from being taken
    assert db.zcard(LAYOUT.leases(user_id)) == 0
    assert code(open_from(address, api, token)) == (401, "token_reused")
