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


def check_expr(title: str, expr: str, names: dict[str, set[str]]) -> None:
    """expr names exported elong_ metrics, with labels they have."""
    used = set(re.findall(r"\belong_[a-z_]+", expr))
    assert used, f"{title}: no elong_ metric in {expr}"
    for name in used:
        assert name in names, f"{title}: {name} is not exported"
        for label in re.findall(r"\b(\w+)\s*(?:=|!=|=~)\s*\"", expr):
            assert label in names[name], f"{title}: {name} has no label {label}"
    for label in re.findall(r"by \(([^)]*)\)", expr):
        for lab in (x.strip() for x in label.split(",")):
            assert any(lab in names[n] for n in used), f"{title}: nothing has label {lab}"


def test_every_panel_queries_exported_metrics_and_labels():
    names = exported()
    panels = json.loads(DASHBOARD.read_text())["panels"]
    assert len(panels) >= 12
    for panel in panels:
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            check_expr(panel["title"], target["expr"], names)


def test_the_alerts_query_exported_metrics_and_kubernetes_ships_the_same_rules():
    import yaml

    deploy = DASHBOARD.parents[1]
    groups = yaml.safe_load((deploy / "prometheus" / "alerts.yml").read_text())["groups"]
    rules = [r for g in groups for r in g["rules"]]
    assert {r["alert"] for r in rules} >= {"ElongStageBlocked", "ElongDeadLetters"}
    for rule in rules:
        check_expr(rule["alert"], rule["expr"], exported())
    (k8s_rule,) = [d for d in yaml.safe_load_all((deploy / "k8s" / "monitoring.yaml").read_text())
                   if d and d["kind"] == "PrometheusRule"]
    assert k8s_rule["spec"]["groups"] == groups
    assert "alerts.yml" in yaml.safe_load((deploy / "prometheus" / "prometheus.yml").read_text())["rule_files"]
