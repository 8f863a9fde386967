"""The quality report on a constructed corpus with SmolLM2: each report's facts appear in one other
document only (its entity's profile), so only that document can make them predictable."""

import json
from pathlib import Path

import numpy as np
import pytest
from prometheus_client import REGISTRY
from rich.console import Console

from bench.corpora.lookalike_corpus import write_corpus_files
from entropylong_streamer.batch import build
from entropylong_streamer.config import Config
from entropylong_streamer.pipeline import Pipeline
from entropylong_streamer.quality.command import run_report
from entropylong_streamer.quality.contexts import CONDITIONS
from entropylong_streamer.quality.figures import dependency_figures
from entropylong_streamer.quality.gauges import ReportGauges
from entropylong_streamer.quality.report import RECORDS_FILE, read_records
from entropylong_streamer.registry import criterion
from entropylong_streamer.services.shards import read_shard

pytestmark = pytest.mark.slow


BUILD_STATS: dict = {}  # the build's stage stats, filled by `built`


@pytest.fixture(scope="module")
def built(tmp_path_factory, model_cache):
    root = tmp_path_factory.mktemp("quality")
    cfg = Config().copy_with({
        "data_dir": str(root / "data"), "model.path": "smollm2", "model.max_tokens": 2048,
        "entropy.alpha": 1.0, "entropy.merge_distance": 4, "entropy.max_anchors": 8,
        "retrieval.top_k": 3, "retrieval.chunk_tokens": 128, "retrieval.chunk_overlap": 16,
        "verify.max_context_tokens": 128, "pack.seq_len": 2048, "pack.sequences_per_shard": 1,
        # the curves of one hop: deeper samples are the report's too (test_report_depth.py), but here only
        # lengthen what the curves measure
        "pack.depth": 1,
    })
    (root / "data").mkdir()
    (root / "data" / "models").symlink_to(model_cache, target_is_directory=True)
    docs, corpus = write_corpus_files(root, 4)  # 12 entities, 3 templates
    out = root / "out"
    pipe = Pipeline(cfg, milvus_uri=str(out / "pool.db"))
    BUILD_STATS.update(build(cfg, [docs], [corpus], out, show_progress=False, pipeline=pipe).stats)
    report, paths = run_report(cfg, Console(quiet=True), batch_dir=out, pipeline=pipe, show_progress=False)
    return cfg, out, report, paths, pipe


def test_the_verified_curve_falls_below_both_baselines(built):
    _, _, report, _, _ = built
    curves = report["curves"]
    assert curves["documents"] >= 8  # most reports found their profile
    full = curves["points"][-1]
    for where in ("all", "anchors"):
        ce = full[where]["ce"]
        assert ce["verified"] < ce["unverified"] < ce["random"], (where, ce)
        # context helps the verified samples most: CE falls from no context to the whole context
        assert curves["points"][0][where]["ce"]["verified"] - ce["verified"] > 1.0
    # with no context the three are one forward
    assert len({curves["points"][0]["all"]["ce"][c] for c in CONDITIONS}) == 1


def test_the_figures_agree_with_the_records_they_came_from(built):
    cfg, out, report, _, _ = built
    records = list(read_records(out / RECORDS_FILE))
    assert report["inputs"]["matched"] == len(records) == 12
    assert report["inputs"]["records_disagreeing_with_shard"] == 0
    records.sort(key=lambda r: r.doc_id)  # the report sums in document order: the same floats
    assert report["dependencies"] == json.loads(json.dumps(dependency_figures(records, criterion(cfg))))
    rows = [json.loads(line) for line in (out / "dependencies.jsonl").read_text().splitlines()]
    d = report["dependencies"]
    assert d["pairs"] == len(rows) and d["accepted_pairs"] == sum(r["accepted"] for r in rows)
    assert d["acceptance_rate"] == pytest.approx(sum(r["accepted"] for r in rows) / len(rows))
    accepted = [r["dI"] for r in rows if r["accepted"]]
    assert d["d_i"]["accepted"]["mean"] == pytest.approx(sum(accepted) / len(accepted))
    manifest = [json.loads(line) for line in next(out.glob("shards/*/manifest.jsonl")).read_text().splitlines()]
    s = report["samples"]
    assert s["samples"] == sum(e["samples"] for e in manifest) == 12
    assert s["contexts_per_sample"]["mean"] * s["samples"] == pytest.approx(sum(e["contexts"] for e in manifest))
    assert s["tokens_per_sample"]["mean"] * s["samples"] == pytest.approx(sum(e["tokens"] for e in manifest))
    # the distances of the pairs the samples hold, as dependencies.jsonl and the shards give them
    placed = sorted(r["distance_from_context_end"] for r in rows if r["in_sample"])
    assert all(r["accepted"] for r in rows if r["in_sample"]) and placed
    far = s["dependency_distance"]["from_context_end"]
    assert far["count"] == len(placed) and far["max"] == placed[-1]
    assert far["quantiles"]["50"] == pytest.approx(float(np.median(placed)))
    in_shards = sorted(a - end for e in manifest for seq in read_shard(Path(e["path"]))
                       for a, _, end in seq["dependencies"])
    assert in_shards == placed
    # What the LM work cost: every record's share, adding up to what the build's stages ran (cold).
    c = report["cost"]
    for stage in ("entropy", "verify"):
        assert c["stages"][stage]["lm_tokens"] == pytest.approx(BUILD_STATS[stage]["lm_tokens"])
        assert c["stages"][stage]["flops"] > 2 * 100e6 * c["stages"][stage]["lm_tokens"]  # SmolLM2: 106M body
    assert c["emitted_tokens"] == sum(e["tokens"] for e in manifest) and c["dependencies"] == len(placed)
    assert c["per_emitted_token"]["lm_tokens"] == pytest.approx(c["total"]["lm_tokens"] / c["emitted_tokens"])
    assert c["per_dependency"]["seconds"] == pytest.approx(c["total"]["seconds"] / len(placed))
    assert c["documents_without_costs"] == 0 and c["measurements_reused"] == 0


def test_outputs_json_plots_and_gauges(built):
    _, _, report, paths, _ = built
    assert json.loads(paths[0].read_text()) == json.loads(json.dumps(report))
    # one row per sample: its length, its contexts by depth, each verified edge's depth and distance
    rows = report["samples"]["per_sample"]
    assert sum(r["tokens"] for r in rows) == report["samples"]["tokens_per_sample"]["mean"] * len(rows)
    assert [sum(r["contexts_by_depth"].values()) for r in rows if r["contexts_by_depth"]]
    assert sum(len(r["edges"]) for r in rows) == report["samples"]["dependency_distance"]["from_context_end"]["count"]
    pngs = [p for p in paths if p.suffix == ".png"]
    assert {p.name for p in pngs} == {"ce_vs_context_all.png", "ce_vs_context_anchors.png", "d_i.png",
                                     "lengths.png"}
    assert all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and p.stat().st_size > 10_000 for p in pngs)
    gauges = ReportGauges(paths[0])
    assert gauges.refresh() and not gauges.refresh()  # read once, again only when the file changes
    h = report["headline"]
    assert REGISTRY.get_sample_value("elong_quality_acceptance_rate") == h["acceptance_rate"]
    assert REGISTRY.get_sample_value("elong_quality_ce_gap_nats", {"baseline": "random", "tokens": "all"}) == \
        pytest.approx(h["gap_all"]["random"])
    assert REGISTRY.get_sample_value("elong_quality_ce_nats", {"condition": "verified", "tokens": "anchors"}) == \
        pytest.approx(h["ce_anchors"]["verified"])
    far = report["samples"]["dependency_distance"]["from_context_end"]
    assert REGISTRY.get_sample_value("elong_quality_dependency_distance_tokens", {"stat": "max"}) == far["max"]
    assert REGISTRY.get_sample_value("elong_quality_sample_tokens", {"stat": "median"}) == \
        report["samples"]["tokens_per_sample"]["quantiles"]["50"]
    c = report["cost"]
    assert REGISTRY.get_sample_value("elong_quality_lm_tokens_per_emitted_token", {"stage": "verify"}) == \
        pytest.approx(c["stages"]["verify"]["lm_tokens"] / c["emitted_tokens"])


def test_a_missing_shard_set_is_a_clear_error(tmp_path, built):
    cfg, out, _, _, _ = built
    (tmp_path / RECORDS_FILE).write_bytes((out / RECORDS_FILE).read_bytes())
    with pytest.raises(FileNotFoundError, match="no shard set"):
        run_report(cfg, Console(quiet=True), batch_dir=tmp_path,
                   pipeline=Pipeline(cfg, milvus_uri=str(out / "pool.db")))



def test_the_plan_is_kept_and_the_no_context_scores_are_read_not_run(built):
    _, _, report, _, _ = built
    c = report["curves"]
    assert c["status"] == "done" and c["left_out_documents"] == 0 and c["left_out_lengths"] == []
    # every measured document's [sep D] forward came from the entropy stage's scores file
    assert c["lm_tokens_reused"] >= c["documents"] * 2
    assert 0 < c["lm_tokens"] <= c["lm_tokens_planned"] <= c["max_lm_tokens"]


class _Interrupted(Pipeline):
    @property
    def engine(self):  # as if the user pressed Ctrl-C while the model loads
        raise KeyboardInterrupt


def test_the_figures_are_written_before_any_lm_work(built, tmp_path):
    cfg, out, report, _, pipe = built
    interrupted = _Interrupted(cfg, milvus_uri=str(out / "pool.db"))
    interrupted.__dict__["pool"] = pipe.pool  # the fixture's open pool (one client per milvus-lite file)
    with pytest.raises(KeyboardInterrupt):
        run_report(cfg, Console(quiet=True), batch_dir=out, pipeline=interrupted, out=tmp_path, show_progress=False)
    written = json.loads((tmp_path / "report.json").read_text())
    assert written["curves"]["status"] == "pending" and written["curves"]["points"] == []
    for part in ("dependencies", "samples", "inputs"):
        assert written[part] == json.loads(json.dumps(report[part]))
    assert (tmp_path / "lengths.png").exists() and (tmp_path / "d_i.png").exists()


def test_a_budget_too_small_for_one_document_says_so(built, tmp_path):
    cfg, out, report, _, pipe = built
    small, _ = run_report(cfg, Console(quiet=True), batch_dir=out, pipeline=pipe, out=tmp_path, show_progress=False,
                          max_lm_tokens=10)
    assert small["curves"]["status"].startswith("over budget") and small["curves"]["points"] == []
    assert small["curves"]["left_out_documents"] == report["curves"]["documents"]
    assert small["dependencies"] == report["dependencies"]
