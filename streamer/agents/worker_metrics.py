"""Every worker's Prometheus endpoint: its own counters, and its stage's consumer lag."""

from __future__ import annotations

import threading

from entropylong_streamer import metrics
from entropylong_streamer.config import Config


def serve(cfg: Config, stage: str, stop: threading.Event | None = None) -> None:
    """Serve metrics on cfg.metrics (nothing when port is 0), the lag read every lag_interval_s."""
    if not cfg.metrics.port:
        return
    metrics.serve(cfg.metrics.host, cfg.metrics.port)

    def lag() -> int:
        from entropylong_streamer.status import collect

        return sum(row.lag for row in collect(cfg, {stage}))

    metrics.export_lag(stage, lag, cfg.metrics.lag_interval_s, stop or threading.Event())
