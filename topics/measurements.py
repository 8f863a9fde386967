"""The LM's measurement changelogs (streamer/measurements.py), both compacted: the latest value
per key is all a restarted or newly assigned worker reads back.

- measurements: one message per measured (model, document, context, anchor) pair, keyed by
  pair_key, sent to the partition of the document's candidates record.
- scores: one message per scored (model, document), keyed by scores_key, sent to the partition
  of the document's docs record.
Each is sent to its input record's partition, so it needs that topic's partition count.
"""

from __future__ import annotations

from .base import Record, TopicSpec


class Measured(Record):
    h_ctx: float
    nll_ctx: float


class Scored(Record):
    h_f32: bytes  # H per token, little-endian float32 (exact: anchors re-selected from it are too)
    nll_f32: bytes


MEASUREMENTS = TopicSpec("measurements", Measured, key_field="", compacted=True)
SCORES = TopicSpec("scores", Scored, key_field="", compacted=True)
