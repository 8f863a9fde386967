"""The stage registry: one chain of topics and versions that every consumer of it reads."""

import yaml
from typer.testing import CliRunner

from entropylong_streamer import deploy_workers, registry
from entropylong_streamer.cli import app
from entropylong_streamer.config import Config
from entropylong_streamer.replay import plan
from entropylong_streamer.status import stage_groups


def test_each_stage_reads_what_an_earlier_stage_writes_at_the_version_it_expects():
    cfg = Config()
    for i, spec in enumerate(registry.STAGES):
        writers = [s for s in registry.STAGES[:i] if s.sink == spec.source]
        if spec.upstream is None:
            assert not writers or all(w.sink is None or w.sink != spec.source for w in writers)
            continue
        assert writers, f"{spec.name} reads {spec.source.name}, which no earlier stage writes"
        assert spec.consumes(cfg) in {w.version(cfg) for w in writers}


def test_consumer_groups_are_distinct_and_change_only_downstream_of_a_changed_parameter():
    base = Config()
    groups = {s.name: s.group(base) for s in registry.STAGES}
    assert len(set(groups.values())) == len(groups)
    changed = base.copy_with({"verify.epsilon": 0.3})
    moved = {s.name for s in registry.STAGES if s.group(changed) != groups[s.name]}
    assert moved == {"verify", "pack"}  # the trainer keeps one group for every version
    rows = {r.stage: r.start for r in plan(base, changed)}
    assert rows == {"entropy": "unchanged", "index": "unchanged", "retrieval": "unchanged", "verify": "origin",
                    "pack": "latest", "trainer": "restart"}


def test_status_rows_follow_the_registry_and_its_switches():
    cfg = Config()
    assert [s for s, _, _ in stage_groups(cfg)] == list(registry.NAMES)
    off = cfg.copy_with({"retrieval.index_live_docs": False})
    assert "index" not in [s for s, _, _ in stage_groups(off)]


def test_an_unknown_worker_stage_is_refused_with_the_known_ones():
    result = CliRunner().invoke(app, ["worker", "nope"])
    assert result.exit_code == 2
    assert "unknown stage 'nope'" in result.output and all(n in result.output for n in registry.NAMES)


def test_a_stage_version_is_derived_from_its_entry_alone(monkeypatch):
    """One entry declares a stage: a downstream stage's version chains from its upstream's and its own
    settings, with no version method written for it anywhere."""
    audit = registry.StageSpec("audit", registry.stage("verify").sink, None, upstream="verify",
                               settings=lambda cfg: (cfg.pack.seed,))
    monkeypatch.setattr(registry, "STAGES", (*registry.STAGES, audit))
    base = Config()
    assert audit.consumes(base) == base.version("verify")
    assert base.version("audit") == audit.version(base) != base.version("verify")
    assert Config().copy_with({"verify.epsilon": 0.3}).version("audit") != audit.version(base)  # upstream moved
    assert Config().copy_with({"pack.seed": 7}).version("audit") != audit.version(base)  # its own setting
    assert Config().copy_with({"pack.depth": 3}).version("audit") == audit.version(base)  # neither
    assert audit.group(base) == f"{base.kafka.topic_prefix}audit-{audit.version(base)}"


def test_a_registered_stage_is_deployed_by_compose_and_kubernetes(monkeypatch):
    """The workers of deploy/ are rendered from the registry: a new entry is a new Deployment and service."""
    audit = registry.StageSpec("audit", registry.stage("verify").sink, None, upstream="verify",
                               workload=registry.Workload("Audits verified dependencies.", cpu="1"))
    monkeypatch.setattr(registry, "STAGES", (*registry.STAGES, audit))
    deployments = {d["metadata"]["name"]: d for d in yaml.safe_load_all(deploy_workers.render_workers())}
    assert set(deployments) == {f"elong-{name}" for name in (*registry.NAMES, "audit")}
    (worker,) = deployments["elong-audit"]["spec"]["template"]["spec"]["containers"]
    assert worker["args"][:2] == ["worker", "audit"] and worker["resources"]["requests"]["cpu"] == "1"
    services = yaml.safe_load(deploy_workers.render_compose())["services"]
    assert services["audit"]["command"][:2] == ["worker", "audit"]
    assert {n for n in registry.NAMES} <= set(services)
