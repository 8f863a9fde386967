"""The latest report's headline figures as Prometheus gauges, served by the packer (it owns the
shard set the report describes), so a dashboard shows data quality next to throughput."""

from __future__ import annotations

import json
import logging
from pathlib import Path

from prometheus_client import Gauge

from entropylong_streamer.config import Config

log = logging.getLogger(__name__)

REPORT_FILE = "report.json"

CE = Gauge("elong_quality_ce_nats", "Cross-entropy of the documents with their whole context, by context kind "
           "(verified, unverified, random) and tokens scored (all, anchors), from the latest report",
           ["condition", "tokens"])
GAP = Gauge("elong_quality_ce_gap_nats", "A baseline's CE minus the verified samples' CE with the whole context "
            "(> 0: the verified contexts inform more), from the latest report", ["baseline", "tokens"])
ACCEPTANCE = Gauge("elong_quality_acceptance_rate", "Accepted / measured (context, anchor) pairs, latest report")
DOCUMENTS = Gauge("elong_quality_documents_measured", "Documents the latest report's curves were measured on")
SAMPLE_TOKENS = Gauge("elong_quality_sample_tokens", "Tokens per sample (median, p90, max) of the latest report",
                      ["stat"])
DEPENDENCY_DISTANCE = Gauge("elong_quality_dependency_distance_tokens", "Tokens from a verified context's end to "
                            "its anchor in the samples (median, p90, max) of the latest report", ["stat"])
LM_PER_EMITTED = Gauge("elong_quality_lm_tokens_per_emitted_token", "LM tokens run per token of the samples, by "
                       "stage (entropy, verify), over the latest report's documents (floor: 1 in all)", ["stage"])
CREATED = Gauge("elong_quality_report_timestamp_seconds", "When the latest report was made (Unix time)")


def report_dir(cfg: Config) -> Path:
    """Where a stack's latest report lives."""
    return cfg.paths.reports(cfg.version("pack"))


class ReportGauges:
    """Sets the gauges from report.json whenever the file changed since the last look."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.seen: float | None = None

    def refresh(self) -> bool:
        try:
            mtime = self.path.stat().st_mtime
        except FileNotFoundError:
            return False
        if mtime == self.seen:
            return False
        self.seen = mtime
        try:
            report = json.loads(self.path.read_text())
            set_gauges(report)
        except (ValueError, KeyError, TypeError) as exc:  # a report of another layout: say so, keep running
            log.warning("quality report %s not shown in metrics: %s", self.path, exc)
            return False
        return True


def set_gauges(report: dict) -> None:
    h = report["headline"]
    ACCEPTANCE.set(h["acceptance_rate"])
    DOCUMENTS.set(h["documents_measured"])
    CREATED.set(report["created_unix"])
    cost = report.get("cost")  # reports written before costs were recorded have none
    if cost and cost["emitted_tokens"]:
        for stage, spent in cost["stages"].items():
            LM_PER_EMITTED.labels(stage).set(spent["lm_tokens"] / cost["emitted_tokens"])
    s = report["samples"]
    for gauge, dist in ((SAMPLE_TOKENS, s["tokens_per_sample"]),
                        (DEPENDENCY_DISTANCE, s["dependency_distance"]["from_context_end"])):
        if dist["count"]:
            for stat, value in (("median", dist["quantiles"]["50"]), ("p90", dist["quantiles"]["90"]),
                                ("max", dist["max"])):
                gauge.labels(stat).set(value)
    for tokens in ("all", "anchors"):
        for cond, value in (h.get(f"ce_{tokens}") or {}).items():
            if value is not None:
                CE.labels(cond, tokens).set(value)
        for base, value in (h.get(f"gap_{tokens}") or {}).items():
            if value is not None:
                GAP.labels(base, tokens).set(value)
