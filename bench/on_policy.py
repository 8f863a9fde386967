"""The scorer follows the trainer (policy.follow), in rounds: build the data set with the scoring model,
continue training that same model on its shards (trainer.model = model.path, from_scratch = false),
publish the version, score and verify the same documents again with it, and so on.

The corpus is the constructed catalogue (streamer/lookalike_corpus.catalogue_corpus), whose facts have
one known source each, so recall and precision of the dependencies are measured per version beside
what the issue asks: anchors per 1K document tokens, acceptance, mean dI of the accepted pairs and
the report's CE gap (unverified contexts against verified, each version measuring its own samples),
the LM tokens the re-scoring spent, and the trainer's tokens/s beside the scoring workers' (both on
these 2 cores, one after the other, each with every core).

    .venv/bin/python bench/on_policy.py [--docs 8] [--rounds 2] [--lr 1e-4] [--passes 2] [--alpha 1]
                                        [--engine vllm]
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path
from types import SimpleNamespace

from corpora.lookalike_corpus import write_catalogue_files
from dependencies import evaluate
from rich.console import Console
from screen import corpus, models_dir

from entropylong_streamer.batch import build
from entropylong_streamer.config import Config, load_config
from entropylong_streamer.pipeline import Pipeline
from entropylong_streamer.policy import announcement
from entropylong_streamer.quality.command import run_report
from entropylong_streamer.quality.report import RECORDS_FILE, read_records
from entropylong_streamer.registry import criterion
from entropylong_streamer.services.shards import read_manifest
from entropylong_streamer.services.trainer import RollingTrainer

WORK = Path(".elong/bench-on-policy")


def score_round(name: str, cfg: Config, docs: Path, pool: Path, version, catalogue, report_docs: int) -> dict:
    """Build the documents with the scoring model at `version` (None: model.path); its figures."""
    out = WORK / name
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    pipe = Pipeline(cfg, milvus_uri=str(out / "pool.db"), model_version=version)
    pipe.engine  # noqa: B018  loaded before the clock starts
    t0 = time.perf_counter()
    report = build(cfg, [docs], [pool], out, pipeline=pipe, show_progress=False)
    wall = time.perf_counter() - t0
    records = list(read_records(out / RECORDS_FILE))
    doc_tokens = sum(len(r.token_ids) for r in records)
    anchors = sum(len({p.anchor_index for p in r.pairs}) for r in records)
    pairs = [p for r in records for p in r.pairs]
    accepted = [p for p in pairs if p.accepted]
    quality = evaluate(catalogue, records, criterion(cfg), retrieved_only=False)
    found, _ = run_report(cfg, Console(quiet=True), batch_dir=out, pipeline=pipe, max_docs=report_docs,
                          show_progress=False, reuse_scores=False)
    head = found["headline"]
    stages = report.cost["stages"]
    scoring = {k: stages[k] for k in ("entropy", "verify") if k in stages}
    return {
        "name": name, "version": version.version if version else "base", "out": out, "wall": wall,
        "anchors_per_1k": 1000 * report.stats["entropy"].get("anchors", 0) / max(doc_tokens, 1),
        "measured_anchors": anchors, "pairs": len(pairs), "acceptance": len(accepted) / max(len(pairs), 1),
        "mean_di": sum(p.d_i for p in accepted) / max(len(accepted), 1),
        "recall": quality.fact_recall, "precision": quality.fact_precision,
        "ce_gap": (head.get("gap_all") or {}).get("unverified"), "ce_gap_anchors": (head.get("gap_anchors") or {}).get(
            "unverified"),
        "lm_tokens": sum(s["lm_tokens"] for s in scoring.values()),
        "lm_tokens_per_s": sum(s["lm_tokens"] for s in scoring.values()) / max(sum(s["seconds"] for s in
                                                                               scoring.values()), 1e-9),
        "emitted": report.cost["emitted_tokens"], "dependencies": report.cost["dependencies"],
        "shards": [e["path"] for e in read_manifest(out / "shards" / cfg.version("pack"))],
    }


def train_round(trainer: RollingTrainer, shards: list[str], tag: str) -> dict:
    tokens, seconds, losses = 0, 0.0, []
    for i, path in enumerate(shards):
        report = trainer.train_shard(f"{tag}/{i}", Path(path))
        tokens, seconds = tokens + report.tokens, seconds + report.seconds
        losses += report.losses
    version = trainer.publish_if_due()
    return {"tokens": tokens, "tokens_per_s": tokens / max(seconds, 1e-9), "loss_first": losses[0],
            "loss_last": losses[-1], "version": version}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--docs", type=int, default=8, help="citing documents")
    ap.add_argument("--page-chars", type=int, default=0, help="PostgreSQL-manual prose around each entry")
    ap.add_argument("--noise", type=int, default=16)
    ap.add_argument("--rounds", type=int, default=2, help="versions trained and published after the base")
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--passes", type=int, default=2, help="passes over each shard")
    ap.add_argument("--report-docs", type=int, default=8, help="documents the report's CE curves measure")
    ap.add_argument("--alpha", type=float, default=1.0, help="entropy.alpha (the anchors' threshold)")
    ap.add_argument("--engine", default="transformers", choices=("transformers", "vllm"))
    ap.add_argument("--set", dest="sets", action="append", default=[])
    args = ap.parse_args()
    models_dir()
    WORK.mkdir(parents=True, exist_ok=True)
    if not (WORK / "models").exists():
        (WORK / "models").symlink_to(models_dir(), target_is_directory=True)
    catalogue = corpus(SimpleNamespace(docs=args.docs, page_chars=args.page_chars, doc_chars=0, noise=args.noise))
    docs, pool = write_catalogue_files(WORK / "corpus", catalogue)
    cfg = load_config(None, [
        f"data_dir={str(WORK.resolve())!r}", "model.path='smollm2'", f"model.engine={args.engine!r}",
        f"entropy.alpha={args.alpha}", "trainer.model='smollm2'", "trainer.from_scratch=false", f"trainer.lr={args.lr}",
        "trainer.warmup_steps=0", f"trainer.passes_per_shard={args.passes}", "trainer.mix_earlier=0",
        "trainer.gradient_checkpointing=true", "pack.seq_len=2048", "pack.sequences_per_shard=1",
        "policy.follow=true", "trainer.publish_every=1", *args.sets])
    shutil.rmtree(WORK / "trainer", ignore_errors=True)
    shutil.rmtree(WORK / "versions", ignore_errors=True)
    rows, trained = [], []
    version = None
    trainer = None
    for r in range(args.rounds + 1):
        row = score_round(f"round{r}", cfg, docs, pool, version, catalogue, args.report_docs)
        rows.append(row)
        print(f"round {r} ({row['version']}): {row['pairs']} pairs, acceptance {row['acceptance']:.3f}, "
              f"{row['lm_tokens']:,.0f} LM tokens in {row['wall']:.0f} s", flush=True)
        if r == args.rounds:
            break
        if trainer is None:  # loaded once: it keeps its optimizer state across rounds
            trainer = RollingTrainer(cfg.trainer, cfg.paths.models, WORK / "trainer", WORK / "versions")
        # a version after each round's shards, whatever their number
        trainer.cfg = cfg.trainer.model_copy(update={"publish_every": len(trainer.consumed) + len(row["shards"])})
        t = train_round(trainer, row["shards"], f"round{r}")
        trained.append(t)
        version = announcement(t["version"], cfg.version("pack"))
        print(f"trained {t['tokens']:,} tokens at {t['tokens_per_s']:,.0f} tokens/s, loss {t['loss_first']:.3f} -> "
              f"{t['loss_last']:.3f}; published {version.version}", flush=True)
    print_table(rows, trained)
    (WORK / "results.json").write_text(json.dumps({"rows": [{k: v for k, v in r.items() if k not in ("out",)}
                                                            for r in rows],
                                                   "trained": [{k: v for k, v in t.items() if k != "version"}
                                                               for t in trained]}, default=str, indent=1))


def print_table(rows: list[dict], trained: list[dict]) -> None:
    def gap(x):
        return "-" if x is None else f"{x:+.3f}"

    print(f"\n{'version':<20}{'anchors/1K':>11}{'pairs':>7}{'accept':>8}{'mean dI':>9}{'recall':>8}{'prec.':>7}"
          f"{'CE gap':>8}{'at anch.':>9}{'deps':>6}{'emitted':>9}{'LM tokens':>11}{'LM tok/s':>10}")
    for r in rows:
        print(f"{r['version']:<20}{r['anchors_per_1k']:>11.1f}{r['pairs']:>7}{r['acceptance']:>8.3f}"
              f"{r['mean_di']:>9.3f}{r['recall']:>8.3f}{r['precision']:>7.3f}{gap(r['ce_gap']):>8}"
              f"{gap(r['ce_gap_anchors']):>9}{r['dependencies']:>6}{r['emitted']:>9,}{r['lm_tokens']:>11,.0f}"
              f"{r['lm_tokens_per_s']:>10,.0f}")
    rescoring = sum(r["lm_tokens"] for r in rows[1:])
    print(f"re-scoring: {rescoring:,.0f} LM tokens over {len(rows) - 1} versions "
          f"({rescoring / max(rows[0]['lm_tokens'], 1):.2f}x the first build's {rows[0]['lm_tokens']:,.0f})")
    for i, t in enumerate(trained):
        ratio = t["tokens_per_s"] / max(rows[i]["lm_tokens_per_s"], 1e-9)
        print(f"trainer, round {i}: {t['tokens_per_s']:,.0f} target tokens/s (forward + backward) beside the "
              f"scoring LM's {rows[i]['lm_tokens_per_s']:,.0f} LM tokens/s (forward only): {ratio:.2f}x")


if __name__ == "__main__":
    main()
