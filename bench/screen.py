"""What the screen before exact verification saves and costs: the same documents built twice in one
run, every candidate measured exactly, and screened first (verify.screen), both cold.

The corpus is the constructed catalogue (streamer/lookalike_corpus.catalogue_corpus): every fact of
a citing document has exactly one source entry in the pool beside same-template lookalikes, near
copies and unrelated pages. With --filler-chars every document is a page of real prose (the
PostgreSQL manual, Debian's postgresql-doc-15) around its entry or its facts, so contexts are whole
documents of which the facts are a small part, the regime where verification dominates the cost
(--doc-chars puts the citing documents' facts among prose too).

Printed for each build: LM tokens (entropy, screen, verify), FLOPs and LM wall time per emitted
token and per verified dependency (the report's own figures), fact recall and precision (as
bench/dependencies.py), and the floor: every emitted token read once by the target model. Then
whether every pair both builds measured has the same measurement and verdict.

    .venv/bin/python bench/screen.py [--docs 8] [--page-chars 12000] [--doc-chars 0]
                                     [--screen-set verify.screen_threshold=0.1]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from corpora.lookalike_corpus import Catalogue, catalogue_corpus, write_catalogue_files
from debian_docs import fetch_pages, page_text
from dependencies import evaluate

from entropylong_streamer.batch import build
from entropylong_streamer.config import Config, load_config
from entropylong_streamer.demo_corpus import write_demo_corpus
from entropylong_streamer.pipeline import Pipeline
from entropylong_streamer.quality.report import RECORDS_FILE, build_figures, read_records, read_shard_set
from entropylong_streamer.registry import criterion
from entropylong_streamer.services.flops import FlopModel
from entropylong_streamer.topics import DependenciesRecord, Pair

WORK = Path(".elong/bench-screen")
SPECIFIC = ("verify.criterion='specific'", "verify.nll_threshold=0.3", "verify.span_tokens=1")


@dataclass
class Build:
    name: str
    cfg: Config
    records: list[DependenciesRecord]
    cost: dict
    stats: dict
    wall: float
    sample_lengths: list[int]


def run(name: str, cfg: Config, docs: Path, pool: Path, reuse: bool = False) -> Build:
    """One cold build: its own data dir (no measurement cache from the other), the models shared.
    reuse: read the previous build of this name where it was of the same corpus and settings."""
    out = WORK / name
    stamp = json.dumps({"config": cfg.model_dump(mode="json", exclude={"data_dir"}),
                        "docs": hashlib.sha256(docs.read_bytes()).hexdigest(),
                        "pool": hashlib.sha256(pool.read_bytes()).hexdigest()}, sort_keys=True)
    if reuse and (out / "stamp.json").exists() and (out / "stamp.json").read_text() == stamp:
        kept = json.loads((out / "build.json").read_text())
        print(f"{name}: the previous build of the same corpus and settings, read from {out}")
        return _read(name, cfg.copy_with({"data_dir": str((out / "data").resolve())}), out, kept["stats"],
                     kept["wall"])
    shutil.rmtree(out, ignore_errors=True)
    (out / "data").mkdir(parents=True)
    (out / "data" / "models").symlink_to((WORK / "models").resolve(), target_is_directory=True)
    cfg = cfg.copy_with({"data_dir": str((out / "data").resolve())})
    pipe = Pipeline(cfg, milvus_uri=str(out / "pool.db"))
    pipe.engine  # load the model before the clock starts  # noqa: B018
    t0 = time.perf_counter()
    report = build(cfg, [docs], [pool], out, pipeline=pipe, show_progress=False)
    wall = time.perf_counter() - t0
    (out / "build.json").write_text(json.dumps({"stats": report.stats, "wall": wall}))
    (out / "stamp.json").write_text(stamp)
    return _read(name, cfg, out, report.stats, wall)


def _read(name: str, cfg: Config, out: Path, stats: dict, wall: float) -> Build:
    records = list(read_records(out / RECORDS_FILE))
    shards = read_shard_set(out / "shards" / cfg.version("pack"))
    figures, _ = build_figures(cfg, records, shards, [], Pipeline(cfg).separator, max_docs=0)
    return Build(name, cfg, records, figures["cost"], stats, wall, [len(s) for s in shards.samples.values()])


def pairs_by_key(records: list[DependenciesRecord]) -> dict[tuple[str, str, int], Pair]:
    """Every measured pair by (document, context document, anchor): what two builds can be compared by."""
    out = {}
    for rec in records:
        doc_of = {c.context_id: c.context_doc_id for c in rec.contexts}
        for p in rec.pairs:
            out[(rec.doc_id, doc_of[p.context_id], p.anchor_index)] = p
    return out


def same_measurements(a: list[DependenciesRecord], b: list[DependenciesRecord]) -> tuple[int, float, int]:
    """Pairs both measured: how many, the largest |H' difference| and |NLL' difference|, and how
    many verdicts differ (the `specific` criterion's rivals are what the screen could change)."""
    pa, pb = pairs_by_key(a), pairs_by_key(b)
    both = pa.keys() & pb.keys()
    diff = max((max(abs(pa[k].h_ctx - pb[k].h_ctx), abs(pa[k].nll_ctx - pb[k].nll_ctx)) for k in both), default=0.0)
    return len(both), diff, sum(pa[k].accepted != pb[k].accepted for k in both)


def models_dir() -> Path:
    """The benches' converted models: the demo's where it ran, else built here once."""
    WORK.mkdir(parents=True, exist_ok=True)
    if not (WORK / "models").exists():
        demo = Path(".elong/demo/models").resolve()
        (WORK / "models").symlink_to(demo, target_is_directory=True) if demo.is_dir() else (WORK / "models").mkdir()
    return (WORK / "models").resolve()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--docs", type=int, default=8, help="citing documents")
    ap.add_argument("--page-chars", type=int, default=12000,
                    help="characters of prose around each catalogue entry (0: the bare catalogue)")
    ap.add_argument("--doc-chars", type=int, default=0, help="characters of prose around a citing document's facts")
    ap.add_argument("--noise", type=int, default=16, help="unrelated standard-library pages in the pool")
    ap.add_argument("--alpha", type=float, default=-1.0)
    ap.add_argument("--model", default="smollm2")
    ap.add_argument("--set", dest="sets", action="append", default=[], help="a setting of both builds")
    ap.add_argument("--reuse-exact", action="store_true",
                    help="read the exact build of the last run where its corpus and settings are the same")
    ap.add_argument("--screen-set", dest="screen_sets", action="append", default=[],
                    help="a setting of the screened build only (verify.screen_threshold=0.05, ...)")
    args = ap.parse_args()
    models_dir()
    catalogue = corpus(args)
    # the screen keeps every verdict exact under "specific" (the criterion it was built and measured for)
    base = load_config(None, [f"model.path={args.model!r}", f"entropy.alpha={args.alpha}", *SPECIFIC, *args.sets])
    docs, pool = write_catalogue_files(WORK / "corpus", catalogue)
    exact = run("exact", base, docs, pool, reuse=args.reuse_exact)
    screened = run("screened", base.copy_with({"verify.screen": "on"}).copy_with(_overrides(args.screen_sets)),
                   docs, pool)
    report(catalogue, exact, screened)


def corpus(args) -> Catalogue:
    with tempfile.TemporaryDirectory() as tmp:
        write_demo_corpus(Path(tmp) / "noise.jsonl", args.noise)
        noise = [json.loads(line)["text"] for line in (Path(tmp) / "noise.jsonl").read_text().splitlines()]
    filler = []
    if args.page_chars or args.doc_chars:
        pages = fetch_pages(Path(".elong/bench-templates"))  # shared with bench/templates.py
        filler = [page_text(p) for p in pages[400:]]
    catalogue = catalogue_corpus(args.docs, noise=noise, filler=filler, filler_chars=args.page_chars,
                                 doc_filler_chars=args.doc_chars)
    n_facts = sum(len(d.facts) for d in catalogue.docs)
    pages = (f"entries in pages of ~{args.page_chars:,} characters of PostgreSQL-manual prose, citing documents with "
             f"~{args.doc_chars:,}")
    print(f"{len(catalogue.docs)} citing documents, {n_facts} facts; pool: {len(catalogue.entries)} catalogue entries "
          f"(each source has >= 3 same-template lookalikes), {len(catalogue.near_copies)} near copies, "
          f"{len(catalogue.noise)} unrelated pages; {pages}")
    return catalogue


def _overrides(sets: list[str]) -> dict:
    out = {}
    for item in sets:
        key, _, value = item.partition("=")
        out[key] = json.loads(value)
    return out


def report(catalogue: Catalogue, exact: Build, screened: Build) -> None:
    flops = FlopModel.of_config(json.loads((WORK / "models" / exact.cfg.model.path / "config.json").read_text()))
    print(f"\n{'':<10}{'LM tok/emitted':>15}{'entropy':>9}{'screen':>9}{'verify':>9}{'GFLOP/emitted':>14}"
          f"{'ms/emitted':>11}{'LM tok/dep':>11}{'emitted':>9}{'deps':>6}{'fact recall':>12}{'fact prec.':>11}"
          f"{'sample prec.':>13}{'wall s':>8}")
    rows = {}
    for b in (exact, screened):
        c, e = b.cost, b.cost["emitted_tokens"]
        s = evaluate(catalogue, b.records, criterion(b.cfg), retrieved_only=False)
        rows[b.name] = (c, s)
        stage = {k: v["lm_tokens"] / e for k, v in c["stages"].items()}
        print(f"{b.name:<10}{c['per_emitted_token']['lm_tokens']:>15.2f}{stage.get('entropy', 0):>9.2f}"
              f"{stage.get('screen', 0):>9.2f}{stage.get('verify', 0):>9.2f}"
              f"{c['per_emitted_token']['flops'] / 1e9:>14.2f}"
              f"{1e3 * c['per_emitted_token']['seconds']:>11.2f}{c['per_dependency']['lm_tokens'] or 0:>11,.0f}{e:>9,}"
              f"{c['dependencies']:>6}{s.fact_recall:>12.3f}{s.fact_precision:>11.3f}{s.sample_precision:>13.3f}"
              f"{b.wall:>8.0f}")
    floor = sum(flops.forward(n, 0) for n in screened.sample_lengths) / max(sum(screened.sample_lengths), 1)
    (ce, se), (cs, ss) = rows["exact"], rows["screened"]
    ratio = ce["per_emitted_token"]["lm_tokens"] / cs["per_emitted_token"]["lm_tokens"]
    print(f"floor: 1.00 LM token and {floor / 1e9:.2f} GFLOP per emitted token (every emitted token read once)")
    v = screened.stats["verify"]
    print(f"screen: {v.get('contexts_screened', 0)} contexts screened, {v.get('contexts_screened_out', 0)} not "
          "measured, "
          f"{v.get('contexts_not_worth_screening', 0)} measured at once (their view would cost more than "
          f"{screened.cfg.verify.screen_max_share:.0%} of the exact forward); "
          f"{v.get('rival_pairs_measured', 0):,} pairs of removed contexts measured as the rivals of accepted ones")
    print(f"LM tokens per emitted token: exact / screened {ratio:.2f}x (goal >= 3); fact recall loss "
          f"{se.fact_recall - ss.fact_recall:+.3f} (goal <= 0.02); LM tokens in all: "
          f"{ce['total']['lm_tokens']:,.0f} -> {cs['total']['lm_tokens']:,.0f}")
    n, diff, verdicts = same_measurements(exact.records, screened.records)
    print(f"pairs both builds measured: {n:,}; largest |H' or NLL' difference| {diff:.1e}; verdicts differing "
          f"{verdicts}")


if __name__ == "__main__":
    main()
