"""Prometheus metrics of a stage worker: records in/out/dead-lettered, batch latency, LM work.

Base units and _total counters, labelled by stage only. The LM figures come from the engine's own
counters, so they include window overlaps and exclude padding (counted apart).
"""

from __future__ import annotations

import logging
import threading
from collections import Counter as Counts
from collections.abc import Callable

from prometheus_client import Counter, Gauge, Histogram, start_http_server

log = logging.getLogger(__name__)

RECORDS = Counter("elong_records_total", "Records handled by a stage worker", ["stage", "outcome"])
BATCH_SECONDS = Histogram("elong_batch_seconds", "Wall time of one batch in the stage", ["stage"],
                          buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120))
LM_TOKENS = Counter("elong_lm_tokens_total", "Tokens run through the LM", ["stage"])
LM_PADDING = Counter("elong_lm_padding_tokens_total", "Padding run through the LM by batching", ["stage"])
LM_FLOPS = Counter("elong_lm_flops_total", "Forward FLOPs of the tokens run through the LM (services/flops.py)",
                   ["stage"])
LM_SECONDS = Counter("elong_lm_busy_seconds_total", "Wall time inside LM forwards", ["stage"])
STAGE_EVENTS = Counter("elong_stage_events_total", "A stage's own counts (anchors, queries, pairs, "
                       "leaks_excluded, dropped_<reason>, ...), from its Stats", ["stage", "event"])
LM_RATE = Gauge("elong_lm_tokens_per_second", "LM tokens per second of the last batch's wall time",
                ["stage"])


ANCHORS_PER_DOC = Histogram("elong_anchors_per_document", "Anchors the entropy stage took per document",
                            ["stage"], buckets=(0, 1, 2, 4, 8, 16, 32, 64, 128))
CANDIDATES_PER_ANCHOR = Histogram("elong_candidates_per_anchor", "Candidates retrieved per anchor", ["stage"],
                                  buckets=(0, 1, 2, 3, 5, 8, 13, 21))
DI = Histogram("elong_verify_di", "dI = (H - H') / H of every measured (context, anchor) pair", ["stage"],
               buckets=(-1.0, -0.5, -0.2, -0.1, 0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.8, 1.0))


def observe_outputs(stage: str, outputs: list) -> None:
    """Distributions read off a batch's output records (the stages themselves stay metric-free)."""
    for rec in outputs:
        if stage == "entropy":
            ANCHORS_PER_DOC.labels(stage).observe(len(rec.anchors))
        elif stage == "retrieval":
            per_anchor = Counts(t for c in rec.candidates for t in set(c.anchor_indices))
            for a in rec.anchors.anchors:
                CANDIDATES_PER_ANCHOR.labels(stage).observe(per_anchor[a.index])
        elif stage == "verify":
            for pair in rec.pairs:
                DI.labels(stage).observe(pair.d_i)


DOOR = Counter("elong_door_documents_total", "Ingest's decisions: admitted, a drop rule (exact_duplicate, "
               "near_duplicate, language, too_short, ...) or bad_row (dead-lettered)", ["outcome"])

READY = Gauge("elong_worker_ready", "1 once the worker has loaded what its stage needs (models, pool) "
              "and takes records", ["stage"])
BLOCKED = Gauge("elong_stage_blocked", "1 while the stage's worker waits out an outage of this kind (vector_store, "
                "broker, engine, filesystem, network): its batch uncommitted, tried again with back-off",
                ["stage", "reason"])
OUTAGE_RETRIES = Counter("elong_outage_retries_total", "Batches a stage ran again after an outage, by its kind",
                         ["stage", "reason"])
CONSUMER_LAG = Gauge("elong_consumer_lag_records", "Records in the stage's input topic its consumer group has "
                     "not committed yet (the whole group's lag: aggregate with max by stage)", ["stage"])


def serve(host: str, port: int) -> None:
    if port:
        start_http_server(port, addr=host)
        log.info("metrics on http://%s:%d/metrics", host, port)


def export_lag(stage: str, lag: Callable[[], int], interval_s: float, stop: threading.Event) -> threading.Thread:
    """Set the stage's lag gauge every interval_s seconds from lag() (a broker query) until stop."""

    def loop() -> None:
        while True:
            try:
                CONSUMER_LAG.labels(stage).set(lag())
            except Exception as exc:  # a broker hiccup costs one reading, never the worker
                log.warning("consumer lag of %s not read: %s", stage, exc)
            if stop.wait(interval_s):
                return

    thread = threading.Thread(target=loop, name=f"{stage}-lag", daemon=True)
    thread.start()
    return thread


class BatchMeter:
    """Turns one batch's counts and the engine's counter deltas into metrics and a log line."""

    def __init__(self, stage: str, engine=None, stats: Counts | None = None) -> None:
        self.stage = stage
        self.engine = engine
        self.stats = stats
        self._last = self._engine_counts()
        self._last_stats = dict(stats or {})

    def _engine_counts(self) -> tuple[int, int, float, float]:
        e = self.engine
        if e is None:
            return 0, 0, 0.0, 0.0
        return e.lm_tokens, getattr(e, "padded_tokens", 0), getattr(e, "busy_seconds", 0.0), getattr(e, "flops", 0.0)

    def observe(self, n_in: int, n_out: int, n_dead: int, seconds: float) -> str:
        RECORDS.labels(self.stage, "in").inc(n_in)
        RECORDS.labels(self.stage, "out").inc(n_out)
        RECORDS.labels(self.stage, "dead_lettered").inc(n_dead)
        BATCH_SECONDS.labels(self.stage).observe(seconds)
        line = f"{self.stage}: {n_in} in, {n_out} out, {n_dead} dead-lettered in {seconds:.2f} s"
        if self.stats is not None:
            for event, value in self.stats.items():
                if event != "lm_tokens" and value != self._last_stats.get(event, 0):
                    STAGE_EVENTS.labels(self.stage, event).inc(value - self._last_stats.get(event, 0))
            self._last_stats = dict(self.stats)
        now = self._engine_counts()
        tokens, padding, busy, flops = (a - b for a, b in zip(now, self._last, strict=True))
        self._last = now
        if tokens:
            LM_TOKENS.labels(self.stage).inc(tokens)
            LM_PADDING.labels(self.stage).inc(padding)
            LM_SECONDS.labels(self.stage).inc(busy)
            LM_FLOPS.labels(self.stage).inc(flops)
            LM_RATE.labels(self.stage).set(tokens / seconds if seconds else 0.0)
            line += f"; {tokens:,} LM tokens at {tokens / seconds:,.0f} tokens/s"
        return line


TRAIN_LOSS = Gauge("elong_trainer_loss", "Mean training loss over the last shard's steps")
TRAIN_STEPS = Counter("elong_trainer_steps_total", "Optimizer steps taken")
TRAIN_TOKENS = Counter("elong_trainer_tokens_total", "Target tokens trained on")
TRAIN_SHARDS = Counter("elong_trainer_shards_total", "Shards trained on")
TRAIN_RATE = Gauge("elong_trainer_tokens_per_second", "Target tokens per second over the last shard")
SHARDS_BEHIND = Gauge("elong_trainer_shards_behind", "Announced shards the trainer has not reached yet")
LOSS_BY_POSITION = Gauge("elong_trainer_loss_by_position", "Last shard's mean loss of tokens whose offset "
                         "inside their sample is at least the bucket's lower edge", ["bucket"])
MODELS_PUBLISHED = Counter("elong_trainer_model_versions_published_total", "Model versions the trainer published")
MODEL_VERSION = Gauge("elong_model_version_shards", "Shards seen by the model version a scoring worker holds "
                      "(0: model.path itself)", ["stage"])
MODEL_VERSION_REFUSED = Counter("elong_model_version_refused_total", "Announced model versions a scoring worker "
                                "could not load (it kept the one it had)", ["stage"])


def observe_training(report, behind: int) -> None:
    """One trained shard (services.trainer.ShardTraining)."""
    if report.losses:
        TRAIN_LOSS.set(sum(report.losses) / len(report.losses))
    TRAIN_STEPS.inc(len(report.losses))
    TRAIN_TOKENS.inc(report.tokens)
    TRAIN_SHARDS.inc()
    TRAIN_RATE.set(report.tokens_per_second)
    SHARDS_BEHIND.set(behind)
    for edge, loss in report.loss_by_bucket().items():
        LOSS_BY_POSITION.labels(str(edge)).set(loss)


SHARDS = Counter("elong_shards_total", "Shards the packer made durable")
SHARD_TOKENS = Counter("elong_shard_tokens_total", "Tokens in the packer's shards (samples, separators included)")
SHARD_SAMPLES = Counter("elong_shard_samples_total", "Samples (a document with its contexts) in the packer's shards")
SHARD_FILL = Gauge("elong_shard_fill_ratio", "Tokens / (sequences x seq_len) of the last shard")
_TOKEN_BUCKETS = tuple(float(2**i) for i in range(4, 18))
SAMPLE_TOKENS = Histogram("elong_sample_tokens", "Tokens of each sample the packer made durable (contexts, "
                          "separators and the document)", buckets=_TOKEN_BUCKETS)
DEPENDENCY_DISTANCE = Histogram("elong_dependency_distance_tokens", "Tokens from a verified context's end to "
                                "the anchor it resolves, in the packed sample, per pair", buckets=_TOKEN_BUCKETS)


def observe_samples(samples) -> None:
    """The samples of one durable shard (method.samples.Sample)."""
    for s in samples:
        SAMPLE_TOKENS.observe(len(s))
        for d in s.dependencies:
            DEPENDENCY_DISTANCE.observe(d.from_end)


def observe_shard(entry: dict) -> None:
    """One durable shard (its manifest entry, services.shards)."""
    SHARDS.inc()
    SHARD_TOKENS.inc(entry["tokens"])
    SHARD_SAMPLES.inc(entry["samples"])
    SHARD_FILL.set(entry["fill_ratio"])
    RECORDS.labels("pack", "out").inc(entry["samples"])
