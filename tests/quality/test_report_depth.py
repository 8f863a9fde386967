"""The report of multi-hop samples (pack.depth 2): per sample, its length, contexts by depth and every
verified edge's distance, read from the shards; each sample matched to its record by its depth-1 part."""

from rich.console import Console

from entropylong_streamer.config import Config
from entropylong_streamer.quality.command import lengths_line
from entropylong_streamer.quality.report import build_figures, read_shard_set
from entropylong_streamer.services.shards import ShardSet
from entropylong_streamer.stages.pack import PackStage
from entropylong_streamer.topics import Context, DependenciesRecord, Pair


def record(doc_id, tokens, context_doc, window, anchors, version):
    ctx = Context(context_id=context_doc, context_doc_id=context_doc, text="w", token_ids=list(window))
    pairs = [Pair(context_id=context_doc, anchor_index=a, char_start=0, char_end=1, h=2.0, h_ctx=0.5, nll=2.0,
                  nll_ctx=0.5, d_i=0.75, accepted=True) for a in anchors]
    return DependenciesRecord(doc_id=doc_id, text="t", token_ids=list(tokens), contexts=[ctx], pairs=pairs,
                              config_version=version)


def test_the_report_lists_each_samples_contexts_by_depth_and_its_edges(tmp_path):
    cfg = Config().copy_with({"pack.depth": 2, "pack.seq_len": 256, "pack.separator": 0})
    v = cfg.version("verify")
    b, c = range(200, 230), range(300, 320)
    records = [record("b", b, "c", c[:8], [9], v), record("d", range(1, 9), "b", b[5:15], [3, 6], v)]
    pack = PackStage(ShardSet(tmp_path, cfg.version("pack")), 256, (0,), cfg.pack.seed, 1, 60, "t", depth=2)
    pack.process(records)
    pack.flush()
    view = read_shard_set(tmp_path / cfg.version("pack"))
    report, _ = build_figures(cfg, records, view, [], (0,), max_docs=0)
    assert report["inputs"]["matched"] == 2 and report["inputs"]["records_disagreeing_with_shard"] == 0
    rows = {r["doc_id"]: r for r in report["samples"]["per_sample"]}
    # d: [sep c[:8] sep b[5:15] sep d] = positions 0, 1-8, 9, 10-19, 20, 21-28: c (ends at 9) resolves b's
    # token 9 (position 14); b (ends at 20) resolves d's tokens 3 and 6 (positions 24 and 27)
    assert rows["d"] == {"doc_id": "d", "tokens": 3 + 8 + 10 + 8, "documents": 3,
                         "contexts_by_depth": {"2": 1, "1": 1}, "edges": [[2, 14 - 9], [1, 24 - 20], [1, 27 - 20]]}
    assert rows["b"]["contexts_by_depth"] == {"1": 1} and rows["b"]["documents"] == 2
    s = report["samples"]
    assert s["contexts_by_depth"]["2"]["mean"] == 0.5 and s["edge_distance_by_depth"]["2"]["count"] == 1
    assert "by depth: 1: 1.0 contexts a sample" in lengths_line(s)
    Console(quiet=True).print(lengths_line(s))
