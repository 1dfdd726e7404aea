"""Latency percentiles against open connections, from docs/bench-results.jsonl.

    python bench/plot.py [--results docs/bench-results.jsonl] [--out docs/latency-vs-streams.png]

Takes every ``targeted`` (and ``two-process``) line bench/scenarios.py recorded, the first
publishing phase of each target at ``--rate`` events/s (2,000), and draws p50 / p99 latency
(log scale) against the number of streams that were open, one colour per target (the latest
run per target and stream count wins). Runs marked invalid are left out. Needs matplotlib
(the ``bench`` extra).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
COLOURS = {"ours": "tab:blue", "ours x2": "tab:cyan", "naive": "tab:red", "nchan": "tab:green"}


def points(path: Path, rate: float) -> dict[str, dict[int, dict[str, float]]]:
    """target -> streams -> {"p50", "p99", "rate"} of the runs at ``rate`` events/s (later
    lines replace earlier ones)."""
    found: dict[str, dict[int, dict[str, float]]] = {}
    for line in path.read_text().splitlines():
        run = json.loads(line)
        if run.get("scenario") not in ("targeted", "two-process"):
            continue
        for target, result in run["results"].items():
            if "invalid" in result:  # a run found broken afterwards (see performance.md)
                continue
            phases = result.get("phases")
            if not phases or phases[0].get("latency_ms_p99") is None:
                continue
            if phases[0]["rate_target"] != rate:
                continue
            name = f"{target} x{run['api_workers']}" if run["api_workers"] > 1 else target
            found.setdefault(name, {})[result["streams_opened"]] = {
                "p50": phases[0]["latency_ms_p50"],
                "p99": phases[0]["latency_ms_p99"],
                "rate": phases[0]["rate_achieved"],
            }
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--results", type=Path, default=ROOT / "docs" / "bench-results.jsonl")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "latency-vs-streams.png")
    parser.add_argument("--rate", type=float, default=2000, help="events/s of the runs drawn")
    options = parser.parse_args()
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(8, 5))
    for target, by_streams in sorted(points(options.results, options.rate).items()):
        streams = sorted(by_streams)
        colour = COLOURS.get(target, "tab:gray")
        for key, style in (("p50", ":"), ("p99", "-")):
            values = [by_streams[n][key] for n in streams]
            axes.plot(streams, values, style, marker="o", color=colour, label=f"{target} {key}")
    axes.set_yscale("log")
    axes.set_xlabel("open streams (one user each)")
    axes.set_ylabel("end-to-end latency, ms (log)")
    axes.set_title(
        f"Targeted events, {options.rate:,.0f}/s: latency against open streams (2 shared cores)"
    )
    axes.grid(True, which="both", alpha=0.3)
    axes.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(options.out, dpi=110)
    print(options.out)


if __name__ == "__main__":
    main()
