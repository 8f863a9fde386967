"""How long are the samples, and how long-range their dependencies, on real documentation?

The PostgreSQL manual from Debian (bench/debian_docs.py) with its page chrome: a pool of pages is
indexed whole (contexts are pool documents, cut around the retrieved chunks to the verifier's
room), target pages go through entropy, retrieval and verification with SmolLM2, and their samples
are built at pack.sample_tokens (32768 here). The targets are the later pages (4-9K characters)
whose body links name the most pool pages: each such link is a human-written dependency, the
truth bench/link_truth.py scores every criterion against (linked pages retrieved and accepted,
anchors inside link text, the share of accepted pairs whose context is linked), beside the share
of accepted pairs in chrome at line and word 6-gram grain. Every criterion is a replay of the same
measurements (H, H', NLL, NLL' per pair, and the NLLs summed over the anchor's word: verify.span_tokens,
--span-tokens; "word" rows judge on those), so one LM run answers for all of them.

Per criterion: acceptance, mean dI of the accepted pairs, samples' length (mean, median) and
verified contexts, the dependency distance (tokens from a context's end to its anchor in the
sample: median, p90, max), and LM tokens per emitted token (the entropy pass plus the exact tokens
of every verification forward, as a cold run computes them, over the tokens of the samples), and
the share of accepted pairs whose anchor is whitespace (the tabs of navigation bars). Each
sample that falls short of the target says what limited it: no candidates, too few accepted, or
the cap (retrieval.max_contexts bit, or contexts left out for room).

Then retrieval rounds (retrieval.rounds 2, 3, ...): anchors no context of round 1 resolved are
measured against their next top_k documents. Which pairs a later round measures depends on what the
criterion accepted before, so each (criterion, rounds) is verified, not replayed; round 1 comes
from the measurement cache, and so do later rounds another criterion measured already.

    .venv/bin/python bench/long_samples.py [--pool 400] [--targets 3] [--sample-tokens 32768] \
        [--rounds 2 3] [--span-tokens 8] [--set K=V ...]
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import time
from pathlib import Path

from debian_docs import PACKAGE, body_links, fetch_pages, index_once, link_spans, page_text
from link_truth import HEADER, Page, PoolCounts, Truth, without_ngram_chrome
from rich.progress import Progress

from entropylong_streamer.config import load_config
from entropylong_streamer.measurements import MemoryCache
from entropylong_streamer.method.dependency import Criterion
from entropylong_streamer.pipeline import Pipeline
from entropylong_streamer.quality.report import write_records
from entropylong_streamer.services.shards import spread, spread_text
from entropylong_streamer.sources import doc_id_for
from entropylong_streamer.stages.pack import sample_from
from entropylong_streamer.topics import DependenciesRecord, Doc

CRITERIA = {  # name -> (criterion, judged on the span's NLL (verify.span_tokens) or the anchor's alone)
    "paper (dI > 0.4)": (Criterion(0.4), False),
    "entropy+loss 0.2": (Criterion(0.4, "entropy+loss", 0.2), False),
    "specific 0.3": (Criterion(0.4, "specific", 0.3), False),
    "specific 0.3, 3 sources": (Criterion(0.4, "specific", 0.3, max_sources=3), False),
    **{f"shared 0.3, q {q}": (Criterion(0.4, "shared", 0.3, rival_quantile=q), False) for q in (0.5, 0.75)},
    "specific 0.3, word": (Criterion(0.4, "specific", 0.3), True),
    **{f"shared 0.3, q 0.75, word{f', best {b}' if b else ''}": (
        Criterion(0.4, "shared", 0.3, rival_quantile=0.75, best_share=b), True) for b in (0.0, 0.75, 0.9, 0.95)},
    **{f"shared 0.2, q 0.75, word, best {b}{' (default)' if b == 0.85 else ''}": (
        Criterion(0.4, "shared", 0.2, rival_quantile=0.75, best_share=b), True) for b in (0.75, 0.85, 0.9)},
}
DEFAULT = "shared 0.2, q 0.75, word, best 0.85 (default)"
NGRAM_CHROME = ("paper (dI > 0.4)", "specific 0.3", DEFAULT)  # replayed with 6-gram chrome too
MIN_DOCS = 10  # retrieval.template_min_docs
ROUND_CRITERIA = ("specific 0.3", DEFAULT)
WORK = Path(".elong/bench-templates").resolve()  # shares the package, model and pool with bench/templates.py


def measuring_tokens(rec: DependenciesRecord, sep: int, spans: bool) -> int:
    """The exact tokens of the record's verification forwards on a cold run: one per context and
    round, [sep C sep D[:t + 1]] up to the last position measured against it in that round (an
    anchor's, or under spans its span's last), and under spans one [sep D] for the spans' own NLL."""
    size = {c.context_id: len(c.token_ids) for c in rec.contexts}
    last: dict[tuple[str, int], int] = {}
    for p in rec.pairs:
        key = (p.context_id, p.round)
        last[key] = max(last.get(key, -1), p.span[1] - 1 if spans and p.span else p.anchor_index)
    baseline = sep + max(last.values()) + 1 if spans and last else 0
    return baseline + sum(2 * sep + size[ctx] + t + 1 for (ctx, _), t in last.items())


def replayed(rec: DependenciesRecord, crit: Criterion, spans: bool) -> DependenciesRecord:
    decided = crit.decide([p.judged(spans) for p in rec.pairs])
    pairs = [p.model_copy(update={"accepted": ok and not p.template}) for p, ok in zip(rec.pairs, decided, strict=True)]
    return rec.model_copy(update={"pairs": pairs})


def limit(rec: DependenciesRecord, sample, capped: bool, target: int) -> str:
    """What kept the sample below the target."""
    if len(sample) >= 0.9 * target:
        return "reached"
    if not rec.contexts:
        return "no candidates"
    if sample.offered > len(sample.context_ids):
        return "room (contexts left out)"
    if sample.offered == len(rec.contexts):
        return f"candidates ({len(rec.contexts)}{', max_contexts' if capped else ''}, all accepted)"
    return f"acceptance ({sample.offered} of {len(rec.contexts)})"


def corpus_arguments(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--pool", type=int, default=400, help="pool pages (>= 300)")
    ap.add_argument("--targets", type=int, default=6)
    ap.add_argument("--min-chars", type=int, default=1000)
    ap.add_argument("--target-min-chars", type=int, default=4000)
    ap.add_argument("--target-max-chars", type=int, default=9000, help="room for contexts within the verifier")


def linked_pages(args) -> tuple[list[Page], list[Page]]:
    """The pool as pool_and_targets takes it; the targets: the pages after it within the length bounds
    whose body links name the most distinct pool pages (hyperlink truth needs links into the pool)."""
    pages = [(p, t) for p, t in ((p, page_text(p)) for p in fetch_pages(WORK)) if len(t) >= args.min_chars]
    pool = [Page(doc_id_for(t), p.name, t) for p, t in pages[: args.pool]]
    names = {p.name for p in pool}
    rest = []
    for path, text in pages[args.pool :]:
        if args.target_min_chars <= len(text) <= args.target_max_chars:
            links = link_spans(text, body_links(path))
            rest.append((-len({t for _, _, t in links if t in names}), path.name, Page(doc_id_for(text), path.name,
                                                                                        text, tuple(links))))
    return pool, [page for _, _, page in sorted(rest)[: args.targets]]


def pool_and_targets(args) -> tuple[list[str], list[str]]:
    """The pool: the first pages of the manual; the targets: pages after them, so that another choice
    of targets keeps the pool (and its index) as it is."""
    texts = [t for t in (page_text(p) for p in fetch_pages(WORK)) if len(t) >= args.min_chars]
    pool = texts[: args.pool]
    rest = [t for t in texts[args.pool :] if args.target_min_chars <= len(t) <= args.target_max_chars]
    return pool, rest[:: max(1, len(rest) // args.targets)][: args.targets]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    corpus_arguments(ap)
    ap.add_argument("--sample-tokens", type=int, default=32768)
    ap.add_argument("--max-contexts", type=int, default=24, help="retrieval.max_contexts (LM cost on 2 cores)")
    ap.add_argument("--model", default="smollm2")
    ap.add_argument("--rounds", type=int, nargs="*", default=[2], help="retrieval.rounds to measure beyond 1")
    ap.add_argument("--span-tokens", type=int, default=8, help="verify.span_tokens of the run (the word rows)")
    ap.add_argument("--set", dest="sets", action="append", default=[])
    args = ap.parse_args()
    cfg = load_config(None, [f"model.path={args.model!r}", f"data_dir={str(WORK)!r}",
                             f"verify.span_tokens={args.span_tokens}",
                             f"pack.sample_tokens={args.sample_tokens}", f"retrieval.max_contexts={args.max_contexts}",
                             *args.sets])
    pool_pages, target_pages = linked_pages(args)
    pool, targets = [p.text for p in pool_pages], [p.text for p in target_pages]
    pipe = Pipeline(cfg, milvus_uri=str(WORK / "pool.db"))
    docs = [Doc(doc_id=doc_id_for(t), text=t) for t in targets]
    pool_docs = [Doc(doc_id=doc_id_for(t), text=t) for t in pool] + docs
    truth = TruthSet(target_pages, pool_pages)
    pool_tokens = sum(len(pipe.engine_tokenizer().tokenize(t).ids) for t in pool)
    print(f"{PACKAGE}: pool {len(pool)} pages ({pool_tokens:,} tokens, mean {pool_tokens / len(pool):,.0f}), "
          f"{len(targets)} targets; sample_tokens {args.sample_tokens:,}, verifier context {cfg.model.max_tokens:,}, "
          f"top_k {cfg.retrieval.top_k}, max_contexts {cfg.retrieval.max_contexts}")
    t0 = time.perf_counter()
    index_once(pipe, pool_docs, WORK)
    scores = MemoryCache.load(WORK / "scores.msgpack")
    anchors = pipe.stage("entropy", scores).process(docs).outputs
    scores.save(WORK / "scores.msgpack")
    retrieval = pipe.stage("retrieval")
    candidates = retrieval.process(anchors).outputs
    capped = {c.doc_id: len(c.candidates) >= cfg.retrieval.max_contexts for c in candidates}
    cache = MemoryCache.load(WORK / "measurements.msgpack")
    verify = pipe.stage("verify", cache)
    deps: list[DependenciesRecord] = []
    with Progress() as progress:
        task = progress.add_task("verify", total=len(candidates))
        for c in candidates:
            deps += verify.process([c]).outputs
            cache.save(WORK / "measurements.msgpack")
            progress.advance(task)
    write_records(WORK / "long-samples.msgpack", deps)  # for replays of other criteria
    k = len(pipe.separator)
    lm = sum(len(a.token_ids) + k for a in anchors) + sum(measuring_tokens(r, k, True) for r in deps)
    print(f"{time.perf_counter() - t0:.0f} s; {sum(len(a.anchors) for a in anchors)} anchors, "
          f"{sum(len(c.candidates) for c in candidates)} context documents ({retrieval.stats['contexts_cut']} cut "
          f"to the verifier's room, {retrieval.stats['contexts_capped']} over max_contexts), "
          f"{sum(len(r.pairs) for r in deps):,} pairs; LM tokens of a cold run {lm:,} "
          f"(this run: {verify.stats.get('lm_tokens', 0):,} verify)")
    entropy_lm = sum(len(a.token_ids) + k for a in anchors)
    print(f"\n{'criterion':<56}{'accepted':>9}{'rate':>7}{'dI':>6}{'tokens/sample':>15}{'contexts':>10}"
          f"{'distance (tokens)':>30}{'LM/emitted':>11}{'blank':>7}  limited by")
    replays = {name: [replayed(r, crit, spans) for r in deps] for name, (crit, spans) in CRITERIA.items()}
    replays.update({f"{name} + 6-gram chrome": [without_ngram_chrome(r, truth.counts, MIN_DOCS) for r in replays[name]]
                    for name in NGRAM_CHROME})
    for name, recs in replays.items():
        row(name, recs, entropy_lm, capped, pipe, cfg, CRITERIA[name.removesuffix(" + 6-gram chrome")][1])
    print(f"\nhyperlink truth ({truth.linked} body links from the {len(targets)} targets to pool pages) and "
          f"chrome of the accepted pairs (line or word 6-gram that >= {MIN_DOCS} pool pages hold)")
    print(f"{'criterion':<66}{HEADER}{'contexts/target (median)':>26}")
    for name, recs in replays.items():
        print(f"{name:<66}{truth.of(recs).cells()}"
              f"{statistics.median(len({p.context_id for p in r.pairs if p.accepted}) for r in recs):>26}")
    for rounds in args.rounds:
        deeper = dataclasses.replace(retrieval, rounds=rounds)
        more = deeper.process(anchors).outputs
        capped = {c.doc_id: len(c.candidates) >= rounds * cfg.retrieval.max_contexts for c in more}
        for name in ROUND_CRITERIA:
            crit, spans = CRITERIA[name]
            stage = dataclasses.replace(verify, criterion=crit, max_candidates=None,
                                        span_tokens=verify.span_tokens if spans else 1)
            recs = verified(stage, more, cache, f"{name}, {rounds} rounds")
            later = sum(p.round > 1 for r in recs for p in r.pairs)
            row(f"{name}, {rounds} rounds", recs, entropy_lm, capped, pipe, cfg, spans,
                f"{stage.stats['accepted_after_round_1']} accepted after round 1 of {later:,} later pairs "
                f"({sum(len(c.candidates) for c in more):,} contexts offered); "
                f"this run {stage.stats['lm_tokens']:,} LM tokens")


def verified(stage, candidates: list, cache: MemoryCache, label: str) -> list[DependenciesRecord]:
    """Each document's candidates verified in turn, the measurement cache saved after each (an
    interrupted bench resumes from there), with a progress bar."""
    recs: list[DependenciesRecord] = []
    with Progress(transient=True) as progress:
        task = progress.add_task(label, total=len(candidates))
        for c in candidates:
            recs += stage.process([c]).outputs
            cache.save(WORK / "measurements.msgpack")
            progress.advance(task)
    return recs


class TruthSet:
    """The targets' links and the pool's line and 6-gram counts, for Truth rows."""

    def __init__(self, targets: list[Page], pool: list[Page]) -> None:
        self.targets = {p.doc_id: p for p in targets}
        self.by_name = {p.name: p.doc_id for p in pool}
        self.counts = PoolCounts([p.text for p in pool])
        self.linked = sum(len({t for _, _, t in p.links if t in self.by_name}) for p in targets)

    def of(self, recs: list[DependenciesRecord]) -> Truth:
        truth = Truth()
        for rec in recs:
            truth.add(self.targets[rec.doc_id], rec, self.by_name, self.counts, MIN_DOCS)
        return truth


def row(name: str, recs: list[DependenciesRecord], entropy_lm: int, capped: dict[str, bool], pipe: Pipeline,
        cfg, spans: bool, note: str = "") -> None:
    k = len(pipe.separator)
    lm = entropy_lm + sum(measuring_tokens(r, k, spans) for r in recs)
    samples = [sample_from(r, pipe.separator, cfg.pack.seed, cfg.pack.sample_length) for r in recs]
    accepted = [p for r in recs for p in r.pairs if p.accepted]
    # accepted at a whitespace anchor: the tabs of page navigation bars, format, not content
    blank = sum(not r.text[p.char_start : p.char_end].strip() for r in recs for p in r.pairs if p.accepted)
    pairs = sum(len(r.pairs) for r in recs)
    lengths = [len(s) for s in samples]
    dist = [d.from_end for s in samples for d in s.dependencies]
    why = [limit(r, s, capped[r.doc_id], cfg.pack.sample_length) for r, s in zip(recs, samples, strict=True)]
    mean_di = statistics.mean(p.d_i for p in accepted) if accepted else float("nan")
    distance = spread_text(spread(dist)).replace("median ", "")
    print(f"{name:<56}{len(accepted):>9}{len(accepted) / max(pairs, 1):>7.3f}{mean_di:>6.2f}"
          f"{statistics.mean(lengths):>8,.0f} ({statistics.median(lengths):,.0f})"
          f"{statistics.mean(len(s.context_ids) for s in samples):>10.1f}{distance:>30}"
          f"{lm / max(sum(lengths), 1):>11.1f}{blank / max(len(accepted), 1):>7.0%}  {'; '.join(why)}")
    if note:
        print(f"{'':<56}{note}")


if __name__ == "__main__":
    main()
