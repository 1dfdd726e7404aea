"""How late the event loop runs a due timer, sampled every 10 ms: the stalls behind the
delivery latency's tail (a GC pause, a long callback, a big batch) show here as one sample
each, with how long they held the loop. The backpressure monitor's 100 ms mean smooths them
away; this keeps the distribution (``sse_event_loop_delay_seconds``)."""

from __future__ import annotations

import asyncio
import time

from api.ops.metrics import LatencyTally


async def sample_loop_delay(tally: LatencyTally, period: float = 0.01) -> None:
    """Sleep ``period`` again and again; record how much later than due each wake-up came
    (100 wake-ups a second: about 0.1 % of a core)."""
    # perf_counter, not loop.time(): uvloop's clock counts whole milliseconds.
    while True:
        started = time.perf_counter()
        await asyncio.sleep(period)
        tally.observe(max(0.0, time.perf_counter() - started - period))
