"""Fan-out: the one pub/sub link per process, the hub that routes events to local streams,
the leases, backpressure, and the batched Redis command client."""
