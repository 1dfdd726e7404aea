"""bench/capacity.py: which benchmark records it trusts, and the arithmetic from costs to
cores, processes, memory and shards."""

import math
from typing import Any

import pytest

from bench.capacity import (
    Costs,
    Figure,
    Profile,
    Source,
    capacity,
    costs_for,
    load_of,
    newest,
    report,
    unit_limits,
)

SOURCE = Source("2026-12-05 00:00 UTC", "abc1234", "python bench/scenarios.py targeted")


def costs(heartbeat: float | None = None, **overrides: float) -> Costs:
    values = {
        "api_us_per_targeted_delivery": 60.0,
        "api_us_per_broadcast_delivery": 20.0,
        "api_ms_per_open": 0.5,
        "api_us_per_idle_stream_second": 1.0,
        "api_kib_per_idle_stream": 20.0,
        "api_base_mib": 100.0,
        "redis_us_per_stored_event": 50.0,
        "redis_us_per_broadcast_delivery": 0.5,
        "publisher_us_per_event": 60.0,
        "redis_connections_per_process": 4.0,
    } | overrides
    return Costs(
        **{name: Figure(value, SOURCE) for name, value in values.items()},
        api_us_per_heartbeat=None if heartbeat is None else Figure(heartbeat, SOURCE),
    )


def phase(rate: int, api_us: float, lost: int = 0) -> dict[str, Any]:
    return {
        "rate_target": rate,
        "lost": lost,
        "duplicated": 0,
        "server_cpu_us_per_delivery": api_us,
        "redis_cpu_us_per_delivery": api_us / 2,
        "publisher_cpu_us_per_event": api_us,
        "server_redis_connections_run": 2,
    }


def record(scenario: str, date: str, code: str, *phases: dict[str, Any], **extra: Any) -> Any:
    result = {
        "streams_opened": 10_000,
        "server_cpu_percent_idle": 1.6,
        "server_cpu_ms_per_open": 0.7,
        "kib_per_idle_stream": 20.0,
        "server_rss_mib_before_streams": 140.0,
        "phases": list(phases),
    }
    return {
        "bench": "scenarios",
        "scenario": scenario,
        "date": date,
        "code": code,
        "command": f"python bench/scenarios.py {scenario}",
        "results": {"ours": result},
    } | extra


def test_the_load_splits_deliveries_and_stores_a_broadcast_event_once() -> None:
    load = load_of(Profile(streams=100_000, broadcast_share=0.1, reconnect_minutes=30))
    assert load.targeted_deliveries == pytest.approx(1500)
    assert load.broadcast_deliveries == pytest.approx(166.667, rel=1e-4)
    assert load.stored_events == pytest.approx(1500 + 166.667 / 100_000, rel=1e-6)
    assert load.opens == pytest.approx(55.556, rel=1e-4)
    assert load.heartbeats == pytest.approx(3333.33, rel=1e-4)


def test_a_million_streams_from_the_costs_by_hand() -> None:
    result = capacity(Profile(streams=1_000_000), costs(), cluster=False)
    # deliveries 15,000 x 60 + 1,666.7 x 20; heartbeats 33,333 x 60; opens 555.6 x 500; idle 1e6
    assert result.api_cpu_us["deliveries"] == pytest.approx(933_333, rel=1e-5)
    assert result.api_cpu_us["heartbeats"] == pytest.approx(2_000_000, rel=1e-5)
    assert result.api_cpu_us["opens"] == pytest.approx(277_778, rel=1e-5)
    assert result.api_cpu_us["idle"] == pytest.approx(1_000_000)
    assert result.api_cores == 8  # 4.21 cores busy at 60 %
    assert result.api_processes == 100  # 10,000 streams each
    assert result.api_ram_gib == pytest.approx((1e6 * 20 / 1024 + 100 * 100) / 1024)
    # 15,000 events x 50 + 1,666.7 x 0.5; (33,333 lease refreshes + 555.6 opens x 3 calls) x 50
    assert result.redis_cpu_us["events"] == pytest.approx(750_833, rel=1e-5)
    assert result.redis_cpu_us["leases and opens"] == pytest.approx(1_750_000, rel=1e-5)
    assert result.redis_shards == 5 and not result.fits_one_redis
    assert result.publisher_cores == pytest.approx(0.9)
    assert result.redis_connections == 400
    assert result.proxy_connections == 2_000_000
    # a cluster's open makes 6 calls: the token, the buckets and the lease apart
    on_cluster = capacity(Profile(streams=1_000_000), costs(), cluster=True)
    assert on_cluster.redis_cpu_us["leases and opens"] == pytest.approx(1_833_333, rel=1e-5)


def test_cpu_sets_the_process_count_once_it_needs_more_than_the_stream_cap() -> None:
    profile = Profile(streams=100_000, events_per_stream_per_min=60, broadcast_share=0)
    result = capacity(profile, costs(), cluster=False)
    # 100,000 deliveries/s x 60 us = 6 cores, plus heartbeats, opens and idle
    assert result.api_cores == math.ceil((6e6 + 2e5 + 27_778 + 1e5) / 1e6 / 0.6) == 11
    assert result.api_processes == 11


def test_a_cluster_has_at_least_three_shards_and_one_redis_at_least_one() -> None:
    small = Profile(streams=1_000)
    assert capacity(small, costs(), cluster=True).redis_shards == 3
    one = capacity(small, costs(), cluster=False)
    assert one.redis_shards == 1 and one.fits_one_redis


def test_newest_skips_runs_without_a_command_marked_invalid_or_with_losses() -> None:
    records = [
        record("targeted", "2026-12-05 10:00 UTC", "good", phase(2000, 40)),
        record("targeted", "2026-12-05 11:00 UTC", "before", phase(2000, 40), command=None),
        record("targeted", "2026-12-05 11:00 UTC", "broken", phase(2000, 40), invalid="why"),
        record("targeted", "2026-12-05 12:00 UTC", "lossy", phase(2000, 40, lost=3)),
        record("broadcast", "2026-12-05 13:00 UTC", "other", phase(20, 18)),
    ]
    found = newest(records, "targeted", "ours")
    assert found is not None and found[0]["code"] == "good"
    assert newest(records, "targeted", "cluster") is None


def test_of_equal_dates_the_later_line_wins() -> None:
    records = [
        record("burst", "2026-12-05 14:20 UTC", "first"),
        record("burst", "2026-12-05 14:20 UTC", "second"),
        record("burst", "2026-12-05 14:19 UTC", "older"),
    ]
    found = newest(records, "burst", "ours")
    assert found is not None and found[0]["code"] == "second"


def test_costs_take_the_lowest_rate_phase_and_fall_back_on_the_ramp_without_a_burst() -> None:
    records = [
        record("targeted", "2026-12-05 10:00 UTC", "t", phase(10_000, 26), phase(2000, 62)),
        record("broadcast", "2026-12-05 10:01 UTC", "b", phase(20, 18.5)),
    ]
    found = costs_for(records, "ours")
    assert found is not None
    assert found.api_us_per_targeted_delivery.value == 62
    assert found.redis_us_per_stored_event.value == 31
    assert found.api_us_per_broadcast_delivery.value == 18.5
    assert found.api_us_per_broadcast_delivery.source.code == "b"
    assert found.api_ms_per_open.value == 0.7 and found.api_ms_per_open.source.code == "t"
    assert found.api_us_per_idle_stream_second.value == pytest.approx(1.6)  # 1.6 % / 10,000
    burst = record("burst", "2026-12-05 09:00 UTC", "u")
    burst["results"]["ours"]["server_cpu_ms_per_open"] = 0.45
    two_processes = record("burst", "2026-12-05 09:30 UTC", "w", api_workers=2)
    with_burst = [*records, burst, two_processes]
    found = costs_for(with_burst, "ours")
    assert found is not None and found.api_ms_per_open.value == 0.45
    assert found.api_ms_per_open.source.code == "u"  # not the newer run of two processes


def test_the_report_names_the_run_of_every_figure() -> None:
    records = [
        record("targeted", "2026-12-05 10:00 UTC", "t", phase(2000, 62)),
        record("broadcast", "2026-12-05 10:01 UTC", "b", phase(20, 18.5)),
    ]
    text = "\n".join(report(records, [Profile(streams=100_000)]))
    assert "- [1] 2026-12-05 10:00 UTC, code `t`" in text
    assert "- [2] 2026-12-05 10:01 UTC, code `b`" in text
    assert "| 100,000, one Redis |" in text
    assert report([], [Profile(streams=1)]) == [
        "No valid targeted and broadcast runs in the results file."
    ]


def test_one_unit_carries_its_core_budget_divided_by_the_cost() -> None:
    limits = unit_limits(costs(), utilization=0.6)
    assert limits["API process: targeted deliveries/s"] == pytest.approx(10_000)  # 600,000 / 60
    assert limits["API process: broadcast deliveries/s"] == pytest.approx(30_000)
    assert limits["API process: opens/s"] == pytest.approx(1_200)
    # without a measured heartbeat, one costs a targeted delivery: 1 + 60 / 30 µs/s per stream
    assert limits["API process: idle streams, with heartbeats"] == pytest.approx(200_000)
    measured = unit_limits(costs(heartbeat=30.0), utilization=0.6)
    assert measured["API process: idle streams, with heartbeats"] == pytest.approx(300_000)
    assert limits["Redis shard: events stored/s"] == pytest.approx(12_000)
    assert limits["Redis shard: open streams' lease refreshes (est.)"] == pytest.approx(360_000)


def test_a_heartbeat_costs_the_idle_cpu_it_adds_against_the_run_without_heartbeats() -> None:
    def idle_run(date: str, code: str, percent: float, heartbeat_s: float) -> Any:
        run = record("targeted", date, code, phase(2000, 50), heartbeat_s=heartbeat_s)
        run["results"]["ours"]["server_cpu_percent_idle"] = percent
        run["results"]["ours"]["idle_heartbeats_per_stream"] = int(15 // heartbeat_s)
        return run

    broadcast = record("broadcast", "2026-12-05 10:00 UTC", "b", phase(20, 18.5))
    records = [
        broadcast,
        idle_run("2026-12-05 10:01 UTC", "old", 3.0, 30),  # another code: not the pair
        idle_run("2026-12-05 10:02 UTC", "new", 1.4, 30),
        idle_run("2026-12-05 10:03 UTC", "new", 7.4, 5),
    ]
    found = costs_for(records, "ours")
    assert found is not None and found.api_us_per_heartbeat is not None
    # 10,000 streams: (7.4 - 1.4) % of a core is 6 µs/s per stream; one heartbeat per 5 s
    assert found.api_us_per_heartbeat.value == pytest.approx(30.0)
    assert found.api_us_per_heartbeat.source.date == "2026-12-05 10:03 UTC"
    # the run with heartbeats is never the idle figure's source
    assert found.api_us_per_idle_stream_second.value == pytest.approx(1.4)
    without = costs_for(records[:3], "ours")
    assert without is not None and without.api_us_per_heartbeat is None


def test_the_targeted_run_is_the_newest_of_those_with_the_most_streams() -> None:
    at_cap = record("targeted", "2026-12-05 10:00 UTC", "cap", phase(2000, 50))
    fewer = record("targeted", "2026-12-05 11:00 UTC", "few", phase(10_000, 26))
    fewer["results"]["ours"]["streams_opened"] = 2000
    broadcast = record("broadcast", "2026-12-05 10:01 UTC", "b", phase(20, 18.5))
    found = costs_for([at_cap, fewer, broadcast], "ours")
    assert found is not None and found.api_us_per_targeted_delivery.source.code == "cap"
