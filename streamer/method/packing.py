"""Best-fit-decreasing packing of whole samples into fixed-length sequences."""

from __future__ import annotations

from dataclasses import dataclass, field

from .samples import Sample


@dataclass
class Sequence:
    capacity: int
    samples: list[Sample] = field(default_factory=list)
    used: int = 0

    @property
    def free(self) -> int:
        return self.capacity - self.used

    def token_ids(self) -> list[int]:
        return [t for s in self.samples for t in s.token_ids]

    def spans(self) -> list[tuple[int, int]]:
        """[start, end) of every sample: the trainer's document mask, one span per whole sample."""
        out, start = [], 0
        for s in self.samples:
            out.append((start, start + len(s)))
            start += len(s)
        return out


def pack(samples: list[Sample], seq_len: int) -> list[Sequence]:
    """Each sample goes to the open sequence it fills most tightly; deterministic for a given input."""
    sequences: list[Sequence] = []
    for sample in sorted(samples, key=lambda s: (-len(s), s.doc_id)):
        if len(sample) > seq_len:
            raise ValueError(f"sample {sample.doc_id} has {len(sample)} tokens > sequence length {seq_len}")
        fits = [q for q in sequences if q.free >= len(sample)]
        target = min(fits, key=lambda q: q.free) if fits else None
        if target is None:
            target = Sequence(seq_len)
            sequences.append(target)
        target.samples.append(sample)
        target.used += len(sample)
    return sequences
