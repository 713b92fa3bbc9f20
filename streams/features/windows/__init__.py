"""Event-time windows and the aggregations kept inside them: pure state, no I/O, no clock.

Faust's own windowed tables expire by wall clock even for event-time windows, cannot tell the
close handler what a window aggregated, and have no session windows (FIELD_NOTES.md). So the
windows live here as plain state that an agent drives with event times only, and that it keeps in
RocksDB between batches through `encode`/`decode` (an exact round trip: `decode(b).encode() == b`
and `decode(x.encode()) == x`).

One module per window kind, on a shared stored-state base (`stored`):

- `tumbling.TumblingWindows`: the per-partition `content_metrics` windows (CONTRACT.md, "Windows in
  content_metrics"): aligned to epoch multiples of the size, closed once the partition's
  watermark (the largest event time seen) reaches the window end plus the grace, each closed
  window returned exactly once; an event for a window that has closed is reported late and
  counted nowhere.
- `hopping.HoppingCounter`: per-key engagement velocity, the events of the last `size_ms` in `hop_ms`
  buckets; buckets expire by event time on `add`, never by wall clock.
- `sessions.Sessions`: per-user session windows split by an inactivity gap.
- `dwell.DwellStats`: count, sum, average, min, max exactly, and p50/p90/p99 from a mergeable DDSketch.

The encoded form is JSON (orjson, sorted keys) rather than pickle: it is stable across Python and
library versions, readable when debugging a RocksDB dump, and needs no trust in what is decoded.
"""
