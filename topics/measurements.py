"""measurements: the measurement cache's changelog. One message per measured (model, document,
context, anchor) pair, keyed by streamer.measurements.pair_key and sent to the partition of the
document's candidates record (so it needs the candidates topic's partition count). Compacted:
the latest value per key is all a restarted or newly assigned verify worker reads back.
"""

from __future__ import annotations

from .base import Record, TopicSpec


class Measured(Record):
    h_ctx: float
    nll_ctx: float


MEASUREMENTS = TopicSpec("measurements", Measured, key_field="", compacted=True)
