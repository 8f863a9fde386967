"""Every query of the Grafana dashboard names metrics the code exports, with their real suffixes."""

import json
import re
from pathlib import Path

from prometheus_client import REGISTRY

import entropylong_streamer.metrics  # noqa: F401  (registers the workers' and trainer's metrics)
import entropylong_streamer.quality.gauges  # noqa: F401  (registers the data-quality gauges)
import entropylong_streamer.services.pool  # noqa: F401  (registers the pool's metrics)

DASHBOARD = Path(__file__).resolve().parents[1] / "deploy" / "grafana" / "entropylong.json"
SUFFIXES = {"counter": ("_total", "_created"), "gauge": ("",), "histogram": ("_bucket", "_sum", "_count", "_created")}


def exported() -> dict[str, set[str]]:
    """Sample name -> label names, for every elong_ metric registered."""
    out: dict[str, set[str]] = {}
    for collector in list(REGISTRY._collector_to_names):  # describe() without observing anything
        for family in getattr(collector, "describe", lambda: [])():
            if family.name.startswith("elong_"):
                labels = set(getattr(collector, "_labelnames", ())) | ({"le"} if family.type == "histogram" else set())
                for suffix in SUFFIXES[family.type]:
                    out[family.name + suffix] = labels
    return out


def test_every_panel_queries_exported_metrics_and_labels():
    names = exported()
    panels = json.loads(DASHBOARD.read_text())["panels"]
    assert len(panels) >= 12
    for panel in panels:
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            expr = target["expr"]
            used = set(re.findall(r"\belong_[a-z_]+", expr))
            assert used, f"{panel['title']}: no elong_ metric in {expr}"
            for name in used:
                assert name in names, f"{panel['title']}: {name} is not exported"
                for label in re.findall(r"\b(\w+)\s*(?:=|!=|=~)\s*\"", expr):
                    assert label in names[name], f"{panel['title']}: {name} has no label {label}"
            for label in re.findall(r"by \(([^)]*)\)", expr):
                for lab in (x.strip() for x in label.split(",")):
                    assert any(lab in names[n] for n in used), f"{panel['title']}: nothing has label {lab}"
