"""Near-duplicate documents: MinHash over word shingles (rensa), LSH bands, a Jaccard estimate.

Two documents whose shingle sets have Jaccard similarity J share a given band with probability
J^rows; with b bands they share at least one with 1 - (1 - J^rows)^b (the LSH S-curve). A shared
band only nominates a candidate: the estimate over the whole signature decides.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

import numpy as np

_WORD = re.compile(r"\w+")
SEED = 1  # fixed: signatures persisted in the door's index must stay comparable across runs


def shingles(text: str, n: int) -> list[str]:
    words = _WORD.findall(text.lower())
    if len(words) <= n:
        return [" ".join(words)] if words else [""]
    return [" ".join(words[i:i + n]) for i in range(len(words) - n + 1)]


def signature(text: str, n: int, permutations: int) -> np.ndarray:
    from rensa import RMinHash

    m = RMinHash(num_perm=permutations, seed=SEED)
    m.update(shingles(text, n))
    return np.asarray(m.digest(), dtype=np.uint32)


def band_keys(sig: np.ndarray, bands: int) -> list[int]:
    """One signed 64-bit key per band (SQLite's INTEGER), the band's index mixed in."""
    rows = len(sig) // bands
    return [int.from_bytes(hashlib.blake2b(sig[b * rows:(b + 1) * rows].tobytes(), digest_size=8,
                                           salt=b.to_bytes(8, "little")).digest(), "little", signed=True)
            for b in range(bands)]


def jaccard_estimate(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.mean(a == b))


def candidate_probability(j: float, bands: int, rows: int) -> float:
    """Probability that two documents of Jaccard j share at least one band."""
    return 1 - (1 - j**rows) ** bands


@dataclass(frozen=True)
class NearDuplicateRule:
    """When two texts are "the same document": the one rule of the door (which drops a near
    duplicate of any admitted document) and of retrieval (which never returns a chunk of a near
    duplicate of the document)."""

    shingle_words: int = 5
    permutations: int = 128
    threshold: float = 0.8

    def signature(self, text: str) -> np.ndarray:
        return signature(text, self.shingle_words, self.permutations)

    def same(self, a: np.ndarray, b) -> bool:
        b = np.asarray(b, dtype=np.uint32)
        return len(a) == len(b) and jaccard_estimate(a, b) >= self.threshold
