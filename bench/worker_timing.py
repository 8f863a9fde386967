"""What the streaming benchmarks share: wait for a worker's output records on a topic."""

from __future__ import annotations

import time


def receive(cons, n: int, worker, timeout: float = 1800) -> tuple[list[bytes], float]:
    """n records' values from the consumer and the latest of their broker timestamps (seconds).

    Polled once a second while nothing comes: a tight poll loop here would take CPU from the
    worker being measured. Fails if the worker dies or time runs out.
    """
    values: list[bytes] = []
    last = 0.0
    deadline = time.monotonic() + timeout
    while len(values) < n:
        assert worker.alive(), worker.log_tail()
        assert time.monotonic() < deadline, f"{worker.name} did not finish"
        polled = [r for rs in cons.poll(timeout_ms=10, max_records=500).values() for r in rs]
        if not polled:
            time.sleep(1.0)
        values += [r.value for r in polled]
        last = max([last, *(r.timestamp / 1000 for r in polled)])
    return values, last
