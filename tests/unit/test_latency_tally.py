"""The relay's histogram: Prometheus' cumulative ``le`` buckets from plain counts."""

from api.ops.metrics import LatencyTally


def test_a_sample_on_a_bound_counts_in_that_bucket_and_buckets_are_cumulative() -> None:
    tally = LatencyTally((0.01, 0.1, 1.0))
    for value in (0.005, 0.01, 0.05, 0.5, 3.0):
        tally.observe(value)
    assert tally.buckets() == [("0.01", 2.0), ("0.1", 3.0), ("1.0", 4.0), ("+Inf", 5.0)]
    assert tally.total == sum((0.005, 0.01, 0.05, 0.5, 3.0))
