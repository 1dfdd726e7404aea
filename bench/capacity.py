"""Issue 18: what 100,000 and 1,000,000 open streams need, from the measured per-unit costs.

    python bench/capacity.py [--events-per-stream-per-min 1] [--broadcast-share 0.1]
        [--reconnect-minutes 30] [--core-utilization 0.6] [--streams 100000,1000000]
        [--max-streams-per-process 10000] [--results docs/bench-results.jsonl]

Reads docs/bench-results.jsonl (written by bench/scenarios.py), takes for each target (``ours``
on one Redis, ``cluster`` on a 3-master Redis Cluster) the newest valid ``targeted``,
``broadcast`` and ``burst`` records (``targeted``: of those with the most streams; and a
``targeted`` run whose idle window holds heartbeats, for their cost), and prints markdown: the
per-unit costs with the record each comes from, then the capacity table. Nothing is measured
here; re-run it after new benchmark runs and paste its output into docs/scaling.md.

A record is valid when it has a command (runs of an older checkout, recorded for a before/after
comparison, carry none), no ``invalid`` mark, one API process, and a phase with nothing lost or
duplicated; of several such phases the one at the lowest rate is used (costs per event fall as
the rate rises, so this errs high). A ``targeted`` run whose idle window holds heartbeats
(``--heartbeat 5 --settle 15``) gives the cost of a heartbeat: its idle CPU per stream less that
of a run without heartbeats (of the same code and stream count when there is one), times the
heartbeat interval; it is never the source of the idle figure. All figures come from the 2-core
shared machine of docs/performance.md.
"""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

Record = dict[str, Any]

RESULTS = Path(__file__).resolve().parent.parent / "docs" / "bench-results.jsonl"
TARGETS = ("ours", "cluster")
TARGET_NAMES = {"ours": "one Redis", "cluster": "Redis Cluster"}
#: The API's defaults (api/settings.py): a heartbeat after 30 s of silence; a lease refreshed
#: at a third of its 90 s.
HEARTBEAT_SECONDS = 30.0
LEASE_REFRESH_SECONDS = 30.0
#: Redis calls of one open (api/stream/admission.py, api/stream/open.py): on one Redis, the
#: open's script (token, buckets, lease) and the STATE of the user's and the broadcast stream;
#: on a cluster, GETDEL of the token, two rate buckets and the lease instead of the script. Not
#: measured apart; each is costed as one stored event (an append of a batch: probably high, but
#: the open's script runs about 15 commands, so not surely).
REDIS_CALLS_PER_OPEN = 3
REDIS_CALLS_PER_OPEN_CLUSTER = 6
#: A cluster needs at least three masters.
MIN_CLUSTER_SHARDS = 3


@dataclass(frozen=True)
class Source:
    """The benchmark run a figure comes from."""

    date: str
    code: str
    command: str

    def label(self) -> str:
        return f"{self.date}, code `{self.code}`: `{self.command}`"


@dataclass(frozen=True)
class Figure:
    value: float
    source: Source


@dataclass(frozen=True)
class Costs:
    """The measured per-unit costs of one target (all CPU in µs unless the name says ms)."""

    api_us_per_targeted_delivery: Figure
    api_us_per_broadcast_delivery: Figure
    api_ms_per_open: Figure
    api_us_per_idle_stream_second: Figure
    #: None: no run with heartbeats in its idle window; a heartbeat is then costed as a
    #: targeted delivery (an estimate, which errs high).
    api_us_per_heartbeat: Figure | None
    api_kib_per_idle_stream: Figure
    api_base_mib: Figure
    redis_us_per_stored_event: Figure
    redis_us_per_broadcast_delivery: Figure
    publisher_us_per_event: Figure
    redis_connections_per_process: Figure


@dataclass(frozen=True)
class Profile:
    """The load: open streams, events each receives, reconnects, and the headroom kept."""

    streams: int
    events_per_stream_per_min: float = 1.0
    broadcast_share: float = 0.1
    reconnect_minutes: float = 30.0
    core_utilization: float = 0.6
    max_streams_per_process: int = 10_000


@dataclass(frozen=True)
class Load:
    """Rates that follow from a profile, per second."""

    targeted_deliveries: float
    broadcast_deliveries: float
    stored_events: float
    opens: float
    heartbeats: float
    lease_refreshes: float


@dataclass(frozen=True)
class Capacity:
    load: Load
    api_cpu_us: dict[str, float]
    api_cores: int
    api_processes: int
    api_ram_gib: float
    redis_cpu_us: dict[str, float]
    redis_shards: int
    fits_one_redis: bool
    publisher_cores: float
    redis_connections: int
    proxy_connections: int


def load_of(profile: Profile) -> Load:
    """Deliveries split by kind; a broadcast event is stored once and reaches every stream."""
    deliveries = profile.streams * profile.events_per_stream_per_min / 60
    broadcast = deliveries * profile.broadcast_share
    targeted = deliveries - broadcast
    return Load(
        targeted_deliveries=targeted,
        broadcast_deliveries=broadcast,
        stored_events=targeted + broadcast / max(1, profile.streams),
        opens=profile.streams / (profile.reconnect_minutes * 60),
        heartbeats=profile.streams / HEARTBEAT_SECONDS,
        lease_refreshes=profile.streams / LEASE_REFRESH_SECONDS,
    )


def heartbeat_us(costs: Costs) -> float:
    """µs of API CPU per heartbeat: measured, else a targeted delivery's (a frame written)."""
    measured = costs.api_us_per_heartbeat
    return measured.value if measured else costs.api_us_per_targeted_delivery.value


def api_cpu_us(load: Load, streams: int, costs: Costs) -> dict[str, float]:
    """µs of API CPU per second by cause."""
    return {
        "deliveries": load.targeted_deliveries * costs.api_us_per_targeted_delivery.value
        + load.broadcast_deliveries * costs.api_us_per_broadcast_delivery.value,
        "heartbeats": load.heartbeats * heartbeat_us(costs),
        "opens": load.opens * costs.api_ms_per_open.value * 1000,
        "idle": streams * costs.api_us_per_idle_stream_second.value,
    }


def redis_cpu_us(load: Load, costs: Costs, cluster: bool = False) -> dict[str, float]:
    """µs of Redis CPU per second by cause, all nodes together. Lease refreshes and an open's
    calls are not measured apart: each call is costed as a stored event (an estimate)."""
    per_event = costs.redis_us_per_stored_event.value
    calls = REDIS_CALLS_PER_OPEN_CLUSTER if cluster else REDIS_CALLS_PER_OPEN
    return {
        "events": load.stored_events * per_event
        + load.broadcast_deliveries * costs.redis_us_per_broadcast_delivery.value,
        "leases and opens": (load.lease_refreshes + load.opens * calls) * per_event,
    }


def cores(us_per_second: dict[str, float]) -> float:
    return sum(us_per_second.values()) / 1e6


def capacity(profile: Profile, costs: Costs, cluster: bool) -> Capacity:
    """What ``profile`` needs at the measured ``costs``, each part run at most at
    ``core_utilization`` of its cores; a Redis shard (or the one Redis) is one core."""
    load = load_of(profile)
    api = api_cpu_us(load, profile.streams, costs)
    api_cores = math.ceil(cores(api) / profile.core_utilization)
    processes = max(1, api_cores, math.ceil(profile.streams / profile.max_streams_per_process))
    redis = redis_cpu_us(load, costs, cluster)
    shards = math.ceil(cores(redis) / profile.core_utilization)
    ram_mib = profile.streams * costs.api_kib_per_idle_stream.value / 1024
    ram_mib += processes * costs.api_base_mib.value
    return Capacity(
        load=load,
        api_cpu_us=api,
        api_cores=api_cores,
        api_processes=processes,
        api_ram_gib=ram_mib / 1024,
        redis_cpu_us=redis,
        redis_shards=max(MIN_CLUSTER_SHARDS, shards) if cluster else max(1, shards),
        fits_one_redis=shards <= 1,
        publisher_cores=load.stored_events * costs.publisher_us_per_event.value / 1e6,
        redis_connections=processes * math.ceil(costs.redis_connections_per_process.value),
        proxy_connections=2 * profile.streams,
    )


def unit_limits(costs: Costs, utilization: float) -> dict[str, float]:
    """What one API process or one Redis shard carries at ``utilization`` of its core, each
    kind of work alone (lease refreshes estimated as above)."""
    budget = utilization * 1e6  # µs of CPU per second
    per_idle_stream = (
        costs.api_us_per_idle_stream_second.value + heartbeat_us(costs) / HEARTBEAT_SECONDS
    )
    redis_event = costs.redis_us_per_stored_event.value
    return {
        "API process: targeted deliveries/s": budget / costs.api_us_per_targeted_delivery.value,
        "API process: broadcast deliveries/s": budget / costs.api_us_per_broadcast_delivery.value,
        "API process: opens/s": budget / (costs.api_ms_per_open.value * 1000),
        "API process: idle streams, with heartbeats": budget / per_idle_stream,
        "Redis shard: events stored/s": budget / redis_event,
        "Redis shard: open streams' lease refreshes (est.)": budget
        * LEASE_REFRESH_SECONDS
        / redis_event,
    }


# --- choosing the records ---------------------------------------------------------------


def clean_phases(result: Record) -> list[Record]:
    """Phases with figures and nothing lost or duplicated, lowest rate first."""
    phases = [
        p
        for p in result.get("phases") or []
        if p.get("server_cpu_us_per_delivery") is not None
        and p.get("lost") == 0
        and p.get("duplicated") == 0
    ]
    return sorted(phases, key=lambda p: float(p.get("rate_target") or 0))


def heartbeats_in_idle(result: Record) -> bool:
    return int(result.get("idle_heartbeats_per_stream") or 0) > 0


def usable(record: Record, scenario: str, target: str, heartbeats: bool = False) -> Record | None:
    """The target's result in a valid run of ``scenario`` (with heartbeats in its idle window
    when ``heartbeats``, else without), or None."""
    if record.get("bench") != "scenarios" or record.get("scenario") != scenario:
        return None
    if not record.get("command") or record.get("invalid"):
        return None
    if int(record.get("api_workers") or 1) != 1:  # the costs are those of one process
        return None
    result = (record.get("results") or {}).get(target)
    if not isinstance(result, dict) or result.get("invalid") or not result.get("streams_opened"):
        return None
    if result.get("open_failures"):  # CPU per open divides by the successful opens only
        return None
    if scenario != "burst" and not clean_phases(result):
        return None
    # Only a targeted run's idle figure is used; there heartbeats would be counted twice.
    if scenario == "targeted" and heartbeats_in_idle(result) != heartbeats:
        return None
    return result


def newest(
    records: Sequence[Record],
    scenario: str,
    target: str,
    heartbeats: bool = False,
    most_streams: bool = False,
) -> tuple[Record, Record] | None:
    """The newest valid (record, result) of ``scenario`` for ``target``; of equal dates the
    later line. ``most_streams``: of the runs with the most streams opened."""
    found = [
        (r, res) for r in records if (res := usable(r, scenario, target, heartbeats)) is not None
    ]
    if not found:
        return None
    if most_streams:
        widest = max(int(res["streams_opened"]) for _, res in found)
        found = [(r, res) for r, res in found if int(res["streams_opened"]) == widest]
    return max(enumerate(found), key=lambda item: (item[1][0]["date"], item[0]))[1]


def source_of(record: Record) -> Source:
    return Source(str(record["date"]), str(record["code"]), str(record["command"]))


def idle_us_per_stream_second(result: Record) -> float:
    return float(result["server_cpu_percent_idle"]) / 100 * 1e6 / int(result["streams_opened"])


def heartbeat_cost(
    records: Sequence[Record], target: str, fallback: tuple[Record, Record]
) -> Figure | None:
    """µs of API CPU per heartbeat from the newest run with heartbeats in its idle window,
    against the newest run without them of the same code and stream count (else
    ``fallback``); None without such a run."""
    with_beats = newest(records, "targeted", target, heartbeats=True, most_streams=True)
    if with_beats is None:
        return None
    record, result = with_beats
    same = [
        r
        for r in records
        if r.get("code") == record["code"]
        and (res := usable(r, "targeted", target)) is not None
        and res["streams_opened"] == result["streams_opened"]
    ]
    base = newest(same, "targeted", target) or fallback
    extra = idle_us_per_stream_second(result) - idle_us_per_stream_second(base[1])
    return Figure(max(0.0, extra) * float(record["heartbeat_s"]), source_of(record))


def costs_from(
    targeted: tuple[Record, Record],
    broadcast: tuple[Record, Record],
    burst: tuple[Record, Record] | None,
    heartbeat: Figure | None = None,
) -> Costs:
    """The per-unit costs from a target's targeted, broadcast and (when run) burst records; the
    open's cost falls back on the targeted run's ramp."""
    t_src, t_res = source_of(targeted[0]), targeted[1]
    t_phase = clean_phases(t_res)[0]
    b_src, b_phase = source_of(broadcast[0]), clean_phases(broadcast[1])[0]
    o_src, o_res = (source_of(burst[0]), burst[1]) if burst else (t_src, t_res)
    idle_us = idle_us_per_stream_second(t_res)
    return Costs(
        api_us_per_targeted_delivery=Figure(t_phase["server_cpu_us_per_delivery"], t_src),
        api_us_per_broadcast_delivery=Figure(b_phase["server_cpu_us_per_delivery"], b_src),
        api_ms_per_open=Figure(o_res["server_cpu_ms_per_open"], o_src),
        api_us_per_idle_stream_second=Figure(idle_us, t_src),
        api_us_per_heartbeat=heartbeat,
        api_kib_per_idle_stream=Figure(t_res["kib_per_idle_stream"], t_src),
        api_base_mib=Figure(t_res["server_rss_mib_before_streams"], t_src),
        redis_us_per_stored_event=Figure(t_phase["redis_cpu_us_per_delivery"], t_src),
        redis_us_per_broadcast_delivery=Figure(b_phase["redis_cpu_us_per_delivery"], b_src),
        publisher_us_per_event=Figure(t_phase["publisher_cpu_us_per_event"], t_src),
        redis_connections_per_process=Figure(t_phase["server_redis_connections_run"], t_src),
    )


def costs_for(records: Sequence[Record], target: str) -> Costs | None:
    """The target's costs, or None when it has no valid targeted or broadcast run."""
    # Memory and idle CPU per stream read lower at fewer streams: the runs nearest the cap.
    targeted = newest(records, "targeted", target, most_streams=True)
    broadcast = newest(records, "broadcast", target)
    if targeted is None or broadcast is None:
        return None
    heartbeat = heartbeat_cost(records, target, targeted)
    return costs_from(targeted, broadcast, newest(records, "burst", target), heartbeat)


def read_records(path: Path) -> list[Record]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


# --- markdown -----------------------------------------------------------------------------

COST_ROWS = (
    ("API CPU per targeted delivery", "api_us_per_targeted_delivery", "{:.1f} µs"),
    ("API CPU per broadcast delivery", "api_us_per_broadcast_delivery", "{:.1f} µs"),
    ("API CPU per open", "api_ms_per_open", "{:.3f} ms"),
    ("API CPU per idle stream (no heartbeat)", "api_us_per_idle_stream_second", "{:.2f} µs/s"),
    ("API CPU per heartbeat", "api_us_per_heartbeat", "{:.1f} µs"),
    ("API memory per idle stream", "api_kib_per_idle_stream", "{:.1f} KiB"),
    ("API process before streams", "api_base_mib", "{:.0f} MiB"),
    ("Redis CPU per stored event (all nodes)", "redis_us_per_stored_event", "{:.1f} µs"),
    ("Redis CPU per broadcast delivery", "redis_us_per_broadcast_delivery", "{:.2f} µs"),
    ("publisher CPU per stored event", "publisher_us_per_event", "{:.1f} µs"),
    ("Redis connections per API process", "redis_connections_per_process", "{:.0f}"),
)


def costs_table(costs: dict[str, Costs]) -> list[str]:
    """The per-unit costs, one column per target, each cell naming its run by number."""
    sources: list[Source] = []
    lines = ["| per unit | " + " | ".join(TARGET_NAMES[t] for t in costs) + " |"]
    lines.append("|---" * (len(costs) + 1) + "|")
    for name, attribute, fmt in COST_ROWS:
        cells = []
        for target_costs in costs.values():
            figure: Figure | None = getattr(target_costs, attribute)
            if figure is None:
                cells.append("not measured: a targeted delivery's (est.)")
                continue
            if figure.source not in sources:
                sources.append(figure.source)
            cells.append(f"{fmt.format(figure.value)} [{sources.index(figure.source) + 1}]")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines.append("")
    lines += [f"- [{n}] {source.label()}" for n, source in enumerate(sources, 1)]
    return lines


API_CAUSES = {
    "deliveries": "API cores busy: deliveries",
    "heartbeats": "… heartbeats",
    "opens": "… opens",
    "idle": "… idle streams",
}
REDIS_CAUSES = {"events": "Redis cores busy: events", "leases and opens": "… leases, opens (est.)"}


def capacity_rows(result: Capacity, cluster: bool) -> list[tuple[str, str]]:
    """One column of the capacity table: (row name, cell)."""
    load = result.load
    if cluster or result.fits_one_redis:
        redis = f"**{result.redis_shards}**"
    else:
        redis = f"**more than one Redis** ({result.redis_shards} cores)"
    return [
        ("deliveries/s", f"{load.targeted_deliveries + load.broadcast_deliveries:,.0f}"),
        ("events stored/s", f"{load.stored_events:,.0f}"),
        ("opens/s (reconnects)", f"{load.opens:,.0f}"),
        *((API_CAUSES[k], f"{us / 1e6:.2f}") for k, us in result.api_cpu_us.items()),
        ("**API cores** (busy ÷ utilization)", f"**{result.api_cores}**"),
        ("**API processes** (cores, or streams ÷ cap)", f"**{result.api_processes}**"),
        ("API RAM, GiB", f"{result.api_ram_gib:.1f}"),
        *((REDIS_CAUSES[k], f"{us / 1e6:.2f}") for k, us in result.redis_cpu_us.items()),
        ("**Redis shards** (one core each)", redis),
        ("publisher cores busy (workers' senders)", f"{result.publisher_cores:.2f}"),
        ("Redis connections of the API", f"{result.redis_connections:,}"),
        ("proxy connections (client + upstream)", f"{result.proxy_connections:,}"),
    ]


def capacity_table(profiles: Iterable[Profile], costs: dict[str, Costs]) -> list[str]:
    """One column per (stream count, target)."""
    columns: list[tuple[str, list[tuple[str, str]]]] = []
    for profile in profiles:
        for target, target_costs in costs.items():
            cluster = target == "cluster"
            result = capacity(profile, target_costs, cluster)
            name = f"{profile.streams:,}, {TARGET_NAMES[target]}"
            columns.append((name, capacity_rows(result, cluster)))
    lines = ["| open streams | " + " | ".join(name for name, _ in columns) + " |"]
    lines.append("|---" * (len(columns) + 1) + "|")
    for index, (row, _) in enumerate(columns[0][1]):
        lines.append(f"| {row} | " + " | ".join(cells[index][1] for _, cells in columns) + " |")
    return lines


def limits_table(costs: dict[str, Costs], utilization: float) -> list[str]:
    """One unit's limits, one column per target."""
    limits = {target: unit_limits(c, utilization) for target, c in costs.items()}
    lines = [
        f"| one unit at {utilization:.0%} of a core | "
        + " | ".join(TARGET_NAMES[t] for t in costs)
        + " |",
        "|---" * (len(costs) + 1) + "|",
    ]
    for row in next(iter(limits.values())):
        lines.append(f"| {row} | " + " | ".join(f"{v[row]:,.0f}" for v in limits.values()) + " |")
    return lines


def assumptions(profile: Profile) -> str:
    return (
        f"Load: each open stream receives {profile.events_per_stream_per_min:g} event(s)/min, "
        f"{profile.broadcast_share:.0%} of deliveries broadcast; every stream reconnects once "
        f"per {profile.reconnect_minutes:g} min; every part run at "
        f"{profile.core_utilization:.0%} of its cores; at most "
        f"{profile.max_streams_per_process:,} streams per API process; a heartbeat every "
        f"{HEARTBEAT_SECONDS:g} s and a lease refresh every {LEASE_REFRESH_SECONDS:g} s per stream."
    )


def report(records: Sequence[Record], profiles: Sequence[Profile]) -> list[str]:
    costs = {t: c for t in TARGETS if (c := costs_for(records, t)) is not None}
    if not costs:
        return ["No valid targeted and broadcast runs in the results file."]
    lines = ["### Measured costs", ""] + costs_table(costs)
    lines += ["", "### What one unit carries", ""]
    lines += limits_table(costs, profiles[0].core_utilization)
    lines += ["", "### Capacity", "", assumptions(profiles[0]), ""]
    return lines + capacity_table(profiles, costs)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--results", type=Path, default=RESULTS)
    parser.add_argument("--streams", default="100000,1000000", help="comma-separated")
    parser.add_argument("--events-per-stream-per-min", type=float, default=1.0)
    parser.add_argument("--broadcast-share", type=float, default=0.1)
    parser.add_argument("--reconnect-minutes", type=float, default=30.0)
    parser.add_argument("--core-utilization", type=float, default=0.6)
    parser.add_argument("--max-streams-per-process", type=int, default=10_000)
    args = parser.parse_args(argv)
    profiles = [
        Profile(
            streams=int(count),
            events_per_stream_per_min=args.events_per_stream_per_min,
            broadcast_share=args.broadcast_share,
            reconnect_minutes=args.reconnect_minutes,
            core_utilization=args.core_utilization,
            max_streams_per_process=args.max_streams_per_process,
        )
        for count in args.streams.split(",")
    ]
    print("\n".join(report(read_records(args.results), profiles)))


if __name__ == "__main__":
    main()
