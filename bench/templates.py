"""Knowledge or page chrome? Dependencies found on real documentation with its navigation kept.

Debian's postgresql-doc-15 package (fetched with `apt-get download`, unpacked with `dpkg -x`, no
root needed) holds the PostgreSQL manual as HTML pages. Each page becomes text with resiliparse
keeping everything (main_content=False): the "Prev / Up / Home / Next" bars, section headings and
footers stay, as they do in crawled pages. A pool of pages is indexed; a few target pages go
through entropy, retrieval and verification twice: without template detection and with it
(retrieval.template_min_docs). The second run measures nothing new (the measurement cache).

For each run: acceptance, mean dI of the accepted pairs, and the share of accepted dependencies
whose anchor lies on a line that recurs in >= 10 pool documents, counted here exactly over the
whole pool (independently of the pipeline's own incremental counts).

    .venv/bin/python bench/templates.py [--pool 320] [--targets 6] [--set K=V ...]
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from collections import Counter
from pathlib import Path

from debian_docs import PACKAGE, fetch_pages, index_once, page_text

from entropylong_streamer.config import load_config
from entropylong_streamer.measurements import MemoryCache
from entropylong_streamer.method.dependency import Criterion
from entropylong_streamer.method.templates import split_lines
from entropylong_streamer.pipeline import Pipeline
from entropylong_streamer.sources import doc_id_for
from entropylong_streamer.topics import DependenciesRecord, Doc

CRITERIA = {
    "paper (dI > 0.4)": Criterion(0.4),
    "entropy+loss 0.2": Criterion(0.4, "entropy+loss", 0.2),
    "loss 0.5": Criterion(0.4, "loss", 0.5),
    "specific 0.3 (default)": Criterion(0.4, "specific", 0.3),
    "specific 0.2": Criterion(0.4, "specific", 0.2),
    "specific 0.3, 2 sources": Criterion(0.4, "specific", 0.3, max_sources=2),
    "specific 0.3, 3 sources": Criterion(0.4, "specific", 0.3, max_sources=3),
}
WORK = Path(".elong/bench-templates").resolve()


def recurring_line_counts(texts: list[str]) -> Counter:
    """In how many documents each (normalised) line occurs."""
    counts: Counter = Counter()
    for text in texts:
        counts.update(split_lines(text).distinct())
    return counts


def summarize(name: str, deps: list[DependenciesRecord], counts: Counter, min_docs: int, verify_stats) -> None:
    pairs = [p for rec in deps for p in rec.pairs]
    accepted = [(rec, p) for rec in deps for p in rec.pairs if p.accepted]
    lines = {rec.doc_id: split_lines(rec.text) for rec in deps}
    on_template = [p for rec, p in accepted
                   if counts[lines[rec.doc_id].hash_of_token(p.char_start, p.char_end)] >= min_docs]
    anchors = {(rec.doc_id, p.anchor_index, p.char_start, p.char_end) for rec in deps for p in rec.pairs}
    template_anchors = sum(counts[lines[d].hash_of_token(a, b)] >= min_docs for d, _, a, b in anchors)
    share = len(on_template) / max(len(accepted), 1)
    mean_d_i = sum(p.d_i for _, p in accepted) / max(len(accepted), 1)
    print(f"{name:<28}{len(pairs):>7}{len(accepted):>9}{len(accepted) / max(len(pairs), 1):>9.3f}{mean_d_i:>9.2f}"
          f"{share:>10.1%}{template_anchors:>7}/{len(anchors):<6}{verify_stats.get('lm_tokens', 0):>10,}"
          f"{verify_stats.get('template_pairs_kept_apart', 0):>8}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pool", type=int, default=320, help="pool pages (>= 300)")
    ap.add_argument("--targets", type=int, default=6)
    ap.add_argument("--min-chars", type=int, default=1000)
    ap.add_argument("--max-chars", type=int, default=4000)
    ap.add_argument("--target-max-chars", type=int, default=2200, help="shorter targets keep verification cheap")
    ap.add_argument("--model", default="smollm2")
    ap.add_argument("--set", dest="sets", action="append", default=[])
    args = ap.parse_args()
    cfg = load_config(None, [f"model.path={args.model!r}", f"data_dir={str(WORK)!r}", *args.sets])
    min_docs = cfg.retrieval.template_min_docs or 10
    texts = [t for t in (page_text(p) for p in fetch_pages(WORK)) if args.min_chars <= len(t) <= args.max_chars]
    # Targets: every k-th short page; the pool: the other pages, in the package's order.
    short = [t for t in texts if len(t) <= args.target_max_chars]
    targets = short[:: max(1, len(short) // args.targets)][: args.targets]
    pool = [t for t in texts if t not in targets][: args.pool]
    counts = recurring_line_counts(pool + targets)
    recurring = sum(n >= min_docs for n in counts.values())
    print(f"{PACKAGE}: {len(texts)} pages of {args.min_chars}-{args.max_chars} characters; pool {len(pool)}, "
          f"targets {len(targets)} ({sum(map(len, targets)):,} characters); {recurring} distinct lines recur in "
          f">= {min_docs} documents")
    pool_db = WORK / "pool.db"
    pipe = Pipeline(cfg, milvus_uri=str(pool_db))
    docs = [Doc(doc_id=doc_id_for(t), text=t) for t in targets]
    t0 = time.perf_counter()
    pool_docs = [Doc(doc_id=doc_id_for(t), text=t) for t in pool] + docs
    index_once(pipe, pool_docs, WORK)
    anchors = pipe.stage("entropy").process(docs).outputs
    print(f"index + entropy {time.perf_counter() - t0:.0f} s; {sum(len(a.anchors) for a in anchors)} anchors")
    cache = MemoryCache.load(WORK / "measurements.msgpack")
    runs: list[tuple[str, list[DependenciesRecord]]] = []
    print(f"{'run':<28}{'pairs':>7}{'accepted':>9}{'rate':>9}{'mean dI':>9}{'template':>10}"
          f"{'template anchors':>17}{'verify LM':>10}{'apart':>8}")
    for name, lines in (("no template detection", None), (f"template_min_docs {min_docs}", pipe.line_store)):
        retrieval = dataclasses.replace(pipe.stage("retrieval"), lines=lines, template_min_docs=min_docs)
        verify = pipe.stage("verify", cache)
        candidates = retrieval.process(anchors).outputs
        deps = []
        for i in range(0, len(candidates), 2):
            deps += verify.process(candidates[i : i + 2]).outputs
        cache.save(WORK / "measurements.msgpack")
        summarize(name, deps, counts, min_docs, verify.stats)
        runs.append((name, deps))
    print("\nThe same measurements under other criteria (replays, no LM work): accepted pairs, share on template "
          "lines, mean dI")
    for crit_name, crit in CRITERIA.items():
        cells = []
        for _, deps in runs:
            accepted = [(rec, p) for rec in deps for p, ok in zip(
                rec.pairs, crit.decide([p.judged() for p in rec.pairs]),
                strict=True) if ok and not p.template]
            lines = {rec.doc_id: split_lines(rec.text) for rec in deps}
            on = sum(counts[lines[r.doc_id].hash_of_token(p.char_start, p.char_end)] >= min_docs
                     for r, p in accepted)
            mean = sum(p.d_i for _, p in accepted) / max(len(accepted), 1)
            cells.append(f"{len(accepted):>5} {on / max(len(accepted), 1):>6.1%} {mean:>5.2f}")
        print(f"  {crit_name:<26}" + "    ".join(cells))


if __name__ == "__main__":
    main()
