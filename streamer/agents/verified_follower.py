"""Every packer's copy of the verified topic (pack.depth > 1): read whole, all partitions and no
consumer group, into the packer's store before each batch, so a sample uses what any packer made
known. Its own writes come back too; the store keeps one row per document."""

from __future__ import annotations

import logging

from entropylong_streamer.config import Config
from entropylong_streamer.services.verified_store import VerifiedStore
from entropylong_streamer.topics import VERIFIED, RecordError, VerifiedRecord

from .changelog_cache import ChangelogCache

log = logging.getLogger(__name__)


class VerifiedFollower(ChangelogCache):
    def __init__(self, cfg: Config, store: VerifiedStore, version: str) -> None:
        super().__init__(cfg, VERIFIED, lambda r: r, lambda r: r)
        self.store, self.version = store, version
        self._fresh: list[VerifiedRecord] = []

    def _apply(self, key: bytes | None, value: bytes | None) -> int:
        try:
            rec = VERIFIED.decode(value)
        except RecordError as exc:  # not ours: a sample holds fewer hops, nothing else
            log.warning("skipping a bad verified record: %s", exc)
            return 0
        if rec.config_version == self.version:  # another version's documents belong to another shard set
            self._fresh.append(rec)
        return 1

    def catch_up_all(self) -> int:
        """Read what every partition gained since last time (all of it the first time); returns how many."""
        read = self.catch_up(set(self._consumer.partitions_for_topic(self.topic) or ()))
        self.store.add(self._fresh)
        self._fresh = []
        return read
