"""The stage registry: one chain of topics and versions that every consumer of it reads."""

from typer.testing import CliRunner

from entropylong_streamer import registry
from entropylong_streamer.cli import app
from entropylong_streamer.config import Config
from entropylong_streamer.replay import plan
from entropylong_streamer.status import stage_groups


def test_each_stage_reads_what_an_earlier_stage_writes_at_the_version_it_expects():
    cfg = Config()
    for i, spec in enumerate(registry.STAGES):
        writers = [s for s in registry.STAGES[:i] if s.sink == spec.source]
        if spec.consumes is None:
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
