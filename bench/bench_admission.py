"""The API's CPU per stream-open admission (token, limits, lease), stepwise against one script.

    python bench/bench_admission.py [--opens 4000 --burst 200 --rounds 12]

Starts its own redis-server and admits ``--opens`` sse_tokens per run through
``StepwiseAdmission`` (GETDEL, two bucket scripts, the lease script) and ``ScriptedAdmission``
(one ``stream_open.lua`` call), ``--burst`` at a time as concurrent tasks on one batching
client, the two kinds alternating first over ``--rounds`` rounds. The limits are lifted so
every admission passes. Only the admission: no HTTP, subscription or catch-up. Prints one JSON
line: the median and every run's process CPU microseconds per admission of each kind (process
time, which other work on the machine disturbs less than the wall clock).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time

from api.auth.rate_limits import BUCKET_LUA, AbuseGuard, AbuseLimits, Rate
from api.auth.tokens import Claims, Principal, TokenService
from api.hub.leases import ACQUIRE_LUA, ConnectionRegistry
from api.hub.redis_batching import BatchingRedis
from api.preferences import PreferenceStore
from api.stream.admission import (
    OPEN_LUA,
    Admission,
    OpenChecks,
    ScriptedAdmission,
    StepwiseAdmission,
)
from progress.keys import KeyLayout
from progress.redis_server import RedisServer

UNLIMITED = AbuseLimits(
    per_ip={"stream": Rate(1e6, 10**7)},
    per_user={"stream": Rate(1e6, 10**7)},
    ban_after=10**6,
    strike_window_seconds=60,
    ban_seconds=300,
)
USERS = 500
KINDS = ("stepwise", "scripted")


class NoPlatform:
    """Admissions check no JWT."""

    async def verify(self, token: str) -> Claims:
        raise AssertionError(f"no JWT is checked here: {token}")


def admission(kind: str, client: BatchingRedis, tokens: TokenService) -> Admission:
    checks = OpenChecks(
        tokens,
        AbuseGuard(client, UNLIMITED),
        ConnectionRegistry(client, "bench", USERS, 90),
        PreferenceStore(client),
        streams_off=lambda _: False,
        any_streams_off=lambda: False,
        refused=lambda *_: None,
        max_connections_per_user=USERS,
    )
    if kind == "stepwise":
        return StepwiseAdmission(checks)
    return ScriptedAdmission(checks, client, KeyLayout())


async def run(url: str, kind: str, run_id: int, opens: int, burst: int) -> float:
    """CPU µs per admission of one run."""
    client = BatchingRedis.from_url(url, max_connections=3)
    for script in (OPEN_LUA, BUCKET_LUA, ACQUIRE_LUA):
        await client.script_load(script)
    tokens = TokenService(client, ttl=600, platform=NoPlatform())
    admit = admission(kind, client, tokens).admit
    expires = time.time() + 3600
    issued = [
        (await tokens.issue_sse_token(Principal(f"{kind}-{run_id}-{n % USERS}", None, expires)))[0]
        for n in range(opens)
    ]
    started = time.process_time()
    for first in range(0, opens, burst):
        await asyncio.gather(
            *(
                admit(token, None, f"10.0.{run_id % 250}.{n % 250}")
                for n, token in enumerate(issued[first : first + burst])
            )
        )
    spent = time.process_time() - started
    await client.aclose()
    return spent / opens * 1e6


def main() -> None:
    """Run the rounds and print the JSON line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--opens", type=int, default=4000)
    parser.add_argument("--burst", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=12)
    options = parser.parse_args()
    runs: dict[str, list[float]] = {kind: [] for kind in KINDS}
    with RedisServer() as server:
        for round_ in range(options.rounds):
            for kind in KINDS if round_ % 2 == 0 else KINDS[::-1]:
                run_id = round_ * len(KINDS) + KINDS.index(kind)
                cpu = asyncio.run(run(server.url, kind, run_id, options.opens, options.burst))
                runs[kind].append(round(cpu, 1))
    print(
        json.dumps(
            {
                "cpu_us_per_admission": {k: statistics.median(v) for k, v in runs.items()},
                "runs": runs,
                "opens": options.opens,
                "burst": options.burst,
            }
        )
    )


if __name__ == "__main__":
    main()
