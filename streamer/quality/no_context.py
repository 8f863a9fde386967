"""The curves' no-context point, read instead of run: the entropy stage scored every document as
[sep D] with the same model and windows, which is exactly the curves' L = 0 forward. Its scores are
in batch mode's cache file (data_dir/scores.msgpack) or in the stack's scores topic."""

from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np

from entropylong_streamer.config import Config
from entropylong_streamer.measurements import MemoryCache, scores_key, token_digest, unpack_scores
from entropylong_streamer.topics import SCORES, RecordError

from .contexts import Prefixes

NoContext = Callable[[Prefixes], np.ndarray | None]


def key_of(model_key: str, p: Prefixes) -> bytes:
    return scores_key(model_key, p.doc_id, token_digest(p.doc))


def from_cache(cache: MemoryCache, model_key: str) -> NoContext:
    def nll(p: Prefixes) -> np.ndarray | None:
        found = cache.get(key_of(model_key, p))
        return None if found is None else unpack_scores(found)[1]

    return nll


def from_topic(cfg: Config, model_key: str, docs: Iterable[Prefixes]) -> NoContext:
    """One pass over the scores topic, keeping only these documents' scores."""
    from .report import topic_messages

    wanted = {key_of(model_key, p) for p in docs}
    kept = MemoryCache()
    for msg in topic_messages(cfg, SCORES):
        if msg.key in wanted:
            try:
                m = SCORES.decode(msg.value)
            except RecordError:
                continue  # not ours: this document's L = 0 is measured instead
            kept.put([(msg.key, (m.h_f32, m.nll_f32))])
    return from_cache(kept, model_key)
