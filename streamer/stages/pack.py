"""Pack stage: dependencies -> samples -> 131,072-token sequences -> durable MDS shards.

The one stateful stage. It deduplicates by document within its shard set (one set per config
version), and its caller commits the offsets of buffered records only after flush() returned.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable

from entropylong_streamer.method.hops import Verified
from entropylong_streamer.method.packing import pack
from entropylong_streamer.method.samples import Piece, Sample, SampleTooLong, build_sample, sample_key
from entropylong_streamer.services.shards import ShardSet
from entropylong_streamer.services.verified_store import FILE as VERIFIED_FILE
from entropylong_streamer.services.verified_store import VerifiedStore, verified_record
from entropylong_streamer.topics import DependenciesRecord, ShardReady, VerifiedRecord

from .base import StageError, StageResult, Stats, run_batch

UINT32 = 1 << 32


def pieces_of(rec: DependenciesRecord) -> list[Piece]:
    """The record's verified contexts as pieces: each with its best dI and the anchors it resolves."""
    ids = (rec.token_ids, *(c.token_ids for c in rec.contexts))
    if any(t < 0 or t >= UINT32 for piece in ids for t in piece):
        raise StageError("bad_token_id: token ids must fit uint32")
    best: dict[str, float] = {}
    resolved: dict[str, list[int]] = {}
    for p in rec.pairs:
        if p.accepted:
            best[p.context_id] = max(best.get(p.context_id, p.d_i), p.d_i)
            resolved.setdefault(p.context_id, []).append(p.anchor_index)
    return [Piece(c.context_id, tuple(c.token_ids), best[c.context_id], tuple(resolved[c.context_id]),
                  "" if c.context_doc_id == c.context_id else c.context_doc_id)
            for c in rec.contexts if c.context_id in best]


def sample_from(rec: DependenciesRecord, separator: tuple[int, ...], seed: int, sample_tokens: int,
                known: Callable[[str], Verified | None] | None = None, depth: int = 1) -> Sample:
    """The document's sample: its verified contexts, best first, as many as sample_tokens holds (and,
    to `depth`, the verified contexts of those that `known` knows)."""
    sample = build_sample(rec.doc_id, tuple(rec.token_ids), pieces_of(rec), separator, seed, sample_tokens,
                          known, depth)
    return dataclasses.replace(sample, source_id=rec.source_id, url=rec.url, rescore=rec.rescore)


class PackStage:
    name = "pack"

    def __init__(self, shards: ShardSet, seq_len: int, separator: tuple[int, ...], seed: int,
                 sequences_per_shard: int, max_wait_s: float, domain: str, sample_tokens: int | None = None,
                 depth: int = 1) -> None:
        self.shards = shards
        self.depth = depth
        # what is known of the documents verification finished: the contexts of a sample's contexts
        self.known = VerifiedStore(shards.dir / VERIFIED_FILE) if depth > 1 else None
        # what this packer made known, for its peers: collected only where a loop publishes it (the verified
        # topic); None in batch mode, which knows every record already
        self.outbox: list[VerifiedRecord] | None = None
        self.seq_len = seq_len
        self.sample_tokens = min(sample_tokens or seq_len, seq_len)
        self.separator = separator
        self.seed = seed
        self.target_tokens = sequences_per_shard * seq_len
        self.max_wait_s = max_wait_s
        self.domain = domain
        self.buffer: dict[str, Sample] = {}  # by Sample.key
        self.documents: dict[str, dict] = {}  # the buffered samples' documents, by Sample.key
        self.flushed: list[Sample] = []  # the samples of the last shard, for its metrics
        self.first_buffered_at: float | None = None
        self.stats = Stats()

    def process(self, records: list[DependenciesRecord]) -> StageResult[DependenciesRecord, Sample]:
        """Build and buffer samples; duplicates (already in a shard or in the buffer) are skipped: the same
        document, unless a newer model version asked for it again (Sample.key)."""
        done = self.shards.sample_keys
        self.remember(records)

        def one(rec: DependenciesRecord) -> Sample | None:
            key = sample_key(rec.doc_id, rec.rescore)
            if key in done or key in self.buffer:
                self.stats["duplicates_skipped"] += 1
                return None
            try:
                sample = sample_from(rec, self.separator, self.seed, self.sample_tokens,
                                     self.known.get if self.known else None, self.depth)
            except SampleTooLong as exc:
                raise StageError(f"too_long: {exc}") from exc
            self.buffer[key] = sample
            self.documents[key] = {"doc_id": rec.doc_id, "text": rec.text, **rec.origin()}
            self.stats["contexts_packed"] += len(sample.context_ids)
            # verified contexts the sample had no room for (pack.sample_tokens): what limits its length
            self.stats["contexts_left_out"] += sample.offered - sample.direct
            return sample

        result = run_batch(self.name, records, one, self.stats)
        if self.buffer and self.first_buffered_at is None:
            self.first_buffered_at = time.monotonic()
        return result

    def remember(self, records: list[DependenciesRecord]) -> None:
        """Keep what later samples of more than one hop need of these documents (their bad records
        are the dead letters process() writes)."""
        if self.known is None:
            return
        good = []
        for rec in records:
            try:
                good.append(verified_record(rec, pieces_of(rec)))
            except StageError:
                continue
        self.known.add(good)
        if self.outbox is not None:
            self.outbox += good

    @property
    def buffered_tokens(self) -> int:
        return sum(len(s) for s in self.buffer.values())

    def should_flush(self) -> bool:
        if not self.buffer:
            return False
        waited = time.monotonic() - (self.first_buffered_at or time.monotonic())
        return self.buffered_tokens >= self.target_tokens or waited >= self.max_wait_s

    def flush(self) -> ShardReady | None:
        """Pack everything buffered into one durable shard. The caller commits offsets after this."""
        if not self.buffer:
            return None
        samples = [self.buffer[d] for d in sorted(self.buffer)]
        sequences = pack(samples, self.seq_len)
        entry = self.shards.write(sequences, self.domain, [self.documents[s.key] for s in samples])
        self.flushed = samples
        self.buffer.clear()
        self.documents.clear()
        self.first_buffered_at = None
        self.stats["shards"] += 1
        self.stats["sequences"] += entry["sequences"]
        self.stats["tokens"] += entry["tokens"]
        return shard_ready(self.shards.config_version, entry)


def shard_ready(config_version: str, entry: dict) -> ShardReady:
    """The shard-ready announcement of a durable shard, from its manifest entry."""
    return ShardReady(shard_id=entry["shard_id"], path=entry["path"], config_version=config_version,
                      sequences=entry["sequences"], samples=entry["samples"], tokens=entry["tokens"])
