"""One log line format for every worker process; counts in words."""

from __future__ import annotations

import logging

FORMAT = "[%(asctime)s] [%(process)d] [%(levelname)s] %(name)s: %(message)s"

def setup() -> None:
    logging.basicConfig(level=logging.INFO, format=FORMAT)
    # kafka-python logs every connection at INFO, and the lag gauge, status and the measurement
    # caches open one every few seconds: a worker's log was mostly that
    logging.getLogger("kafka").setLevel(logging.WARNING)


def counted(n: int, noun: str) -> str:
    """'1 bad row', '2 bad rows'."""
    return f"{n:,} {noun}{'' if n == 1 else 's'}"
